"""Who will read an answer, and the rule that keeps content from reaching people who could not see it.

An answer posted in a channel may only use content that everyone in that channel can read: messages
from public channels, and from the very conversation being answered in. Content from private channels
and DMs elsewhere is removed from tool results before Claude sees them (fail closed: an item that says
it is private, or from a DM, goes). Shared (Slack Connect) channels also lose ``internal_only`` servers.
A local terminal conversation is run by an operator with database access and sees everything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PRIVATE_CHANNEL_TYPES = frozenset({"group", "private_channel", "im", "mpim", "private", "dm"})
REMOVED_NOTE = "[{n} result(s) from private channels or direct messages removed: not visible where this answer goes]"


@dataclass(frozen=True)
class Audience:
    """Where an answer will be posted."""

    channel_id: str
    channel_type: str = "channel"  # Slack's channel_type: channel, group, im, mpim; 'local' for the terminal
    is_shared: bool = False
    user_id: str | None = None

    @property
    def is_local(self) -> bool:
        return self.channel_type == "local"

    @property
    def is_public(self) -> bool:
        return self.channel_type == "channel"

    def as_meta(self) -> dict[str, Any]:
        """The audience as MCP request ``_meta``: the Slack MCP server filters by ``athenaeum/audience_channel``."""
        return {
            "athenaeum/audience_channel": self.channel_id,
            "athenaeum/audience": {"channel_type": self.channel_type, "is_shared": self.is_shared},
        }


def _is_private_item(item: dict[str, Any], audience: Audience) -> bool:
    channel = item.get("channel_id") or item.get("channel")
    if isinstance(channel, dict):
        if _is_private_item(channel, audience):
            return True
        channel = channel.get("id")
    if isinstance(channel, str) and channel == audience.channel_id:
        return False  # the conversation being answered in: its members are the audience
    kind = item.get("channel_type") or item.get("conversation_type")
    if isinstance(kind, str) and kind.lower() in PRIVATE_CHANNEL_TYPES:
        return True
    return any(item.get(flag) is True for flag in ("is_private", "is_im", "is_mpim", "private"))


def _filter(value: Any, audience: Audience, removed: list[int]) -> Any:
    if isinstance(value, list):
        kept = []
        for item in value:
            if isinstance(item, dict) and _is_private_item(item, audience):
                removed[0] += 1
                continue
            kept.append(_filter(item, audience, removed))
        return kept
    if isinstance(value, dict):
        return {k: _filter(v, audience, removed) for k, v in value.items()}
    return value


def filter_tool_result(text: str, audience: Audience) -> str:
    """Remove private-channel and DM items from a JSON tool result for ``audience``.

    Non-JSON results pass unchanged: the servers that return conversation content (Slack MCP) return
    JSON and also filter by the audience they are given; this is the second net.
    """
    if audience.is_local:
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and _is_private_item(data, audience):
        return REMOVED_NOTE.format(n=1)
    removed = [0]
    filtered = _filter(data, audience, removed)
    if not removed[0]:
        return text
    return json.dumps(filtered, ensure_ascii=False) + "\n" + REMOVED_NOTE.format(n=removed[0])
