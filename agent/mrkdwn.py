"""Markdown (as Claude writes it) to Slack's mrkdwn, and deterministic splitting of long answers.

Slack truncates ``text`` beyond 40,000 characters and recommends 4,000; a long answer becomes several
messages, split at the best boundary before the limit (blank line, line, sentence, space, hard cut).
Code fences cut by a split are closed and reopened so each part renders on its own. The same input
always gives the same parts, so a retried reply updates the same messages with the same content.
"""

from __future__ import annotations

import re

MESSAGE_LIMIT_CHARS = 3_900

_FENCE = re.compile(r"^```")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_BOLD_UNDERSCORE = re.compile(r"__(?=\S)(.+?)(?<=\S)__")
_ITALIC_STAR = re.compile(r"(?<![*\w])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_INLINE_CODE = re.compile(r"(`[^`\n]+`)")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _inline(text: str) -> str:
    parts = _INLINE_CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 1:  # inline code: escape only
            out.append(_escape(part))
            continue
        # Links are set aside as numbered markers so escaping and emphasis rules leave their URLs alone.
        links = [f"<{m.group(2)}|{_escape(m.group(1))}>" for m in _LINK.finditer(part)]
        pieces = _LINK.split(part)[::3]  # text between links (split yields text, label, url, text, ...)
        part = "".join(p + (f"\x00{i}\x00" if i < len(links) else "") for i, p in enumerate(pieces))
        part = _escape(part)
        part = _ITALIC_STAR.sub(r"_\1_", part)
        part = _BOLD.sub(r"*\1*", part)
        part = _BOLD_UNDERSCORE.sub(r"*\1*", part)
        part = _STRIKE.sub(r"~\1~", part)
        for number, link in enumerate(links):
            part = part.replace(f"\x00{number}\x00", link)
        out.append(part)
    return "".join(out)


def markdown_to_mrkdwn(markdown: str) -> str:
    """Convert Markdown to Slack mrkdwn (bold, italics, strike, links, headings, bullets; code kept)."""
    lines = markdown.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    in_fence = False
    for line in lines:
        if _FENCE.match(line.strip()):
            in_fence = not in_fence
            out.append("```")
            continue
        if in_fence:
            out.append(_escape(line))
            continue
        heading = _HEADING.match(line)
        if heading:
            out.append(f"*{_inline(heading.group(1)).strip('*')}*")
            continue
        bullet = _BULLET.match(line)
        if bullet:
            line = f"{bullet.group(1)}• {line[bullet.end() :]}"
        out.append(_inline(line))
    return "\n".join(out)


def _cut_point(text: str, limit: int) -> int:
    window = text[:limit]
    for separator in ("\n\n", "\n", ". ", " "):
        at = window.rfind(separator)
        if at >= limit // 2:
            return at + len(separator)
    return limit


def split_message(text: str, limit: int = MESSAGE_LIMIT_CHARS) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters, deterministically.

    A part that ends inside a code fence gets a closing fence, and the next part reopens it.
    """
    if limit < 20:
        raise ValueError("limit must leave room for code fences")
    parts: list[str] = []
    rest = text
    reopen = ""
    while rest:
        budget = limit - len(reopen) - 4  # room for a closing fence
        if len(reopen) + len(rest) <= limit:
            parts.append(reopen + rest)
            break
        cut = _cut_point(rest, budget)
        piece = rest[:cut]
        rest = rest[cut:]
        fences = sum(1 for line in (reopen + piece).split("\n") if line.strip().startswith("```"))
        if fences % 2 == 1:
            parts.append((reopen + piece).rstrip("\n") + "\n```")
            reopen = "```\n"
        else:
            parts.append((reopen + piece).rstrip())
            reopen = ""
        rest = rest.lstrip("\n") if not reopen else rest
    return [p for p in parts if p.strip()]
