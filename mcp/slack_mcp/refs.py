"""Channel, user and message references as people paste them, and permalinks (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_TS = re.compile(r"^\d{9,11}\.\d{1,6}$")
_PERMALINK = re.compile(r"/archives/([CGD][A-Z0-9]{2,})/p(\d{16})(?:\?(.*))?$")
_CHANNEL_MENTION = re.compile(r"^<#([CGD][A-Z0-9]{2,})(?:\|[^>]*)?>$")
_USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>$")


@dataclass(frozen=True)
class ChannelRef:
    """A channel given by id or by name (without ``#``); ``ts``/``thread_ts`` come from a permalink."""

    id: str | None = None
    name: str | None = None
    ts: str | None = None
    thread_ts: str | None = None


@dataclass(frozen=True)
class UserRef:
    """A user given by id or by name (handle, display or real name, without ``@``)."""

    id: str | None = None
    name: str | None = None


def parse_permalink(value: str) -> ChannelRef | None:
    """``https://x.slack.com/archives/C123/p1700000000123456?thread_ts=…`` as a reference, else ``None``."""
    match = _PERMALINK.search(value.strip())
    if not match:
        return None
    digits = match.group(2)
    thread_ts = None
    if match.group(3):
        found = re.search(r"thread_ts=(\d{9,11}\.\d{1,6})", match.group(3))
        thread_ts = found.group(1) if found else None
    return ChannelRef(id=match.group(1), ts=f"{digits[:10]}.{digits[10:]}", thread_ts=thread_ts)


def parse_channel(value: str) -> ChannelRef:
    """A channel reference from an id, ``#name``, ``name``, ``<#C123|name>`` or a permalink."""
    value = value.strip()
    if (link := parse_permalink(value)) is not None:
        return link
    if match := _CHANNEL_MENTION.match(value):
        return ChannelRef(id=match.group(1))
    if _CHANNEL_ID.match(value):
        return ChannelRef(id=value)
    return ChannelRef(name=value.lstrip("#").strip().lower())


def parse_user(value: str) -> UserRef:
    """A user reference from an id, ``@name``, ``name`` or ``<@U123>``."""
    value = value.strip()
    if match := _USER_MENTION.match(value):
        return UserRef(id=match.group(1))
    if _USER_ID.match(value):
        return UserRef(id=value)
    return UserRef(name=value.lstrip("@").strip())


def parse_ts(value: str) -> str | None:
    """A Slack timestamp (``1700000000.123456``) from itself or a permalink, else ``None``."""
    value = value.strip()
    if _TS.match(value):
        return value
    link = parse_permalink(value)
    return link.ts if link else None


def ts_to_iso(ts: str) -> str:
    """A Slack ``ts`` as an ISO-8601 UTC time."""
    return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def permalink(workspace_url: str, channel_id: str, ts: str, thread_ts: str | None = None) -> str:
    """The Slack permalink of a message (replies carry their thread, as Slack's own links do)."""
    link = f"{workspace_url.rstrip('/')}/archives/{channel_id}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel_id}"
    return link
