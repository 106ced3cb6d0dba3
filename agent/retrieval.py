"""Answers without Claude: the best matches of the MCP search tools, clearly labelled as search results."""

from __future__ import annotations

import json
from typing import Any

from agent import texts
from agent.audience import Audience
from agent.tools import ToolHub

SEARCH_TOOLS = ("search_docs", "search_messages")
RESULTS_PER_TOOL = 5
SNIPPET_CHARS = 300


def _items(data: Any) -> list[dict[str, Any]]:
    """Every dict in ``data`` that looks like a hit (it has a link or a title)."""
    found: list[dict[str, Any]] = []
    if isinstance(data, list):
        for value in data:
            found.extend(_items(value))
    elif isinstance(data, dict):
        if any(k in data for k in ("url", "permalink", "title")) and any(
            k in data for k in ("snippet", "text", "content", "title")
        ):
            found.append(data)
        else:
            for value in data.values():
                found.extend(_items(value))
    return found


def _line(item: dict[str, Any]) -> str:
    title = item.get("title") or item.get("heading_path") or item.get("channel_name") or item.get("channel") or "result"
    if isinstance(title, list):
        title = " › ".join(str(t) for t in title)
    link = item.get("url") or item.get("permalink")
    snippet = str(item.get("snippet") or item.get("text") or item.get("content") or "").strip().replace("\n", " ")
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[:SNIPPET_CHARS].rstrip() + "…"
    head = f"[{title}]({link})" if link else str(title)
    return f"- **{head}**: {snippet}" if snippet else f"- **{head}**"


def retrieval_answer(hub: ToolHub | None, question: str, audience: Audience) -> str:
    """Search every available search tool for ``question`` and list the hits with their links (Markdown)."""
    if hub is None:
        return texts.RETRIEVAL_NO_TOOLS
    names = {t["name"] for t in hub.tool_definitions(audience)}
    tools = [n for n in names for wanted in SEARCH_TOOLS if n == wanted or n.endswith(wanted)]
    if not tools:
        return texts.RETRIEVAL_NO_TOOLS
    sections: list[str] = []
    for name in sorted(tools):
        result = hub.call(name, {"query": question, "limit": RESULTS_PER_TOOL}, audience)
        if result.is_error:
            continue
        try:
            items = _items(json.loads(result.text))
        except ValueError:
            items = []
        if items:
            label = "Documentation" if "docs" in name else "Slack threads"
            sections.append(f"**{label}**\n" + "\n".join(_line(i) for i in items[:RESULTS_PER_TOOL]))
    if not sections:
        return texts.RETRIEVAL_NOTHING
    return texts.RETRIEVAL_HEADER + "\n\n" + "\n\n".join(sections)
