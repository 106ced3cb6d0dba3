"""Thread context selection (latest N within a token budget) and prompt rendering with overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.context import ContextMessage, estimate_tokens, select_context
from agent.errors import ConfigError
from agent.prompts import PromptRenderer


def msgs(n: int, size: int = 40) -> list[ContextMessage]:
    return [
        ContextMessage(author=f"u{i}", text=f"m{i:03d} " + "x" * size, is_bot=i % 3 == 0, time="t") for i in range(n)
    ]


def test_the_newest_messages_win_within_the_token_budget() -> None:
    history = msgs(100)
    per = estimate_tokens(history[0].text)
    selected = select_context(history, budget_tokens=per * 10, max_messages=50)
    assert [m.text[:4] for m in selected.messages] == [f"m{i:03d}" for i in range(90, 100)]  # oldest first
    assert selected.truncated


def test_the_message_cap_applies_before_the_budget() -> None:
    selected = select_context(msgs(30), budget_tokens=1_000_000, max_messages=5)
    assert [m.author for m in selected.messages] == ["u25", "u26", "u27", "u28", "u29"]


def test_everything_fits_without_truncation() -> None:
    selected = select_context(msgs(3), budget_tokens=10_000, max_messages=50)
    assert len(selected.messages) == 3 and not selected.truncated


def test_one_huge_message_is_cut_not_dropped() -> None:
    huge = [ContextMessage("a", "y" * 50_000, False, "t")]
    selected = select_context(huge, budget_tokens=5_000, max_messages=5)
    assert len(selected.messages) == 1 and selected.messages[0].text.endswith("[…]")


def test_prompts_render_with_bot_turns_labelled_and_the_question_last() -> None:
    r = PromptRenderer()
    context = r.render(
        "context.md.j2",
        truncated=True,
        messages=[
            {"author": "alice", "text": "how do leases work?", "is_bot": False, "time": "10:00"},
            {"author": "Athenaeum", "text": "They expire.", "is_bot": True, "time": "10:01"},
        ],
    )
    user = r.render(
        "user.md.j2",
        context=context,
        channel_description="Slack, a public channel",
        user_name="alice",
        local_time="Sunday",
        question="and heartbeats?",
    )
    assert "older ones left out" in context
    assert "Athenaeum (you, the assistant): They expire." in context
    assert "alice: how do leases work?" in context
    assert user.rstrip().endswith("and heartbeats?")
    assert "You are Bot" in r.render("system.md.j2", assistant_name="Bot")


def test_a_missing_variable_fails_loudly() -> None:
    with pytest.raises(ConfigError, match="undefined"):
        PromptRenderer().render("user.md.j2", question="q")


def test_prompts_dir_overrides_one_template_and_keeps_the_others(tmp_path: Path) -> None:
    (tmp_path / "system.md.j2").write_text("Custom system for {{ assistant_name }}.")
    r = PromptRenderer(tmp_path)
    assert r.render("system.md.j2", assistant_name="X") == "Custom system for X."
    assert "The question" in r.render(
        "user.md.j2", context="", channel_description="c", user_name="u", local_time="t", question="q"
    )


def test_a_prompts_dir_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PROMPTS_DIR"):
        PromptRenderer(tmp_path / "missing")
