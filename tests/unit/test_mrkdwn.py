"""Markdown to mrkdwn, and row 21: deterministic splitting within Slack's limits."""

from __future__ import annotations

from agent.mrkdwn import MESSAGE_LIMIT_CHARS, markdown_to_mrkdwn, split_message


def test_common_markdown_becomes_mrkdwn() -> None:
    md = "# Title\n**bold** and *it* and ~~gone~~, see [the docs](https://x.example/a?b=1).\n- one\n- two\n`a<b`"
    assert markdown_to_mrkdwn(md).split("\n") == [
        "*Title*",
        "*bold* and _it_ and ~gone~, see <https://x.example/a?b=1|the docs>.",
        "• one",
        "• two",
        "`a&lt;b`",
    ]


def test_code_blocks_are_kept_verbatim_apart_from_escaping() -> None:
    md = "```python\nx = **not bold** < 3\n```"
    assert markdown_to_mrkdwn(md) == "```\nx = **not bold** &lt; 3\n```"


def test_row21_a_45000_character_answer_is_split_within_limits_deterministically() -> None:
    sections = []
    for n in range(30):
        sections.append(f"## Section {n}\n" + " ".join(f"word{n}-{i}" for i in range(180)))
        sections.append("```\n" + "\n".join(f"line {n}.{i} of code" for i in range(60)) + "\n```")
    text = "\n\n".join(sections)
    text = text + "\n\n" + "z" * max(0, 45_000 - len(text))
    assert len(text) >= 45_000
    parts = split_message(text)
    assert parts == split_message(text)  # deterministic
    assert len(parts) >= 45_000 // MESSAGE_LIMIT_CHARS
    assert all(len(p) <= MESSAGE_LIMIT_CHARS for p in parts)
    for part in parts:  # every part renders alone: fences balanced
        assert sum(1 for line in part.split("\n") if line.strip().startswith("```")) % 2 == 0

    def normal(value: str) -> str:
        return value.replace("```", "").replace("\n", "").replace(" ", "")

    assert normal("".join(parts)) == normal(text)  # nothing lost, nothing doubled


def test_short_text_is_one_part() -> None:
    assert split_message("hello") == ["hello"]
