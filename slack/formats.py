"""Pure helpers for Slack's wire formats: timestamps, mentions, permalinks. No I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

USER_MENTION_RE = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
CHANNEL_MENTION_RE = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")


def ts_to_datetime(ts: str | float) -> datetime:
    """A Slack ``ts`` (``"1700000000.123456"``) as an aware UTC datetime, to the microsecond.

    Raises:
        ValueError: ``ts`` is not a Slack timestamp.
    """
    try:
        value = Decimal(str(ts))
    except InvalidOperation as exc:
        raise ValueError(f"not a Slack timestamp: {ts!r}") from exc
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a Slack timestamp: {ts!r}")
    seconds = int(value)
    micros = int((value - seconds) * 1_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)


def datetime_to_ts(moment: datetime) -> str:
    """An aware datetime as a Slack ``ts`` string with six decimals (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    delta = moment - epoch
    seconds = delta.days * 86400 + delta.seconds
    return f"{seconds}.{delta.microseconds:06d}"


def is_valid_ts(ts: object) -> bool:
    """Whether ``ts`` looks like a Slack message timestamp (digits, a dot, digits)."""
    return isinstance(ts, str) and re.fullmatch(r"\d{1,12}\.\d{1,6}", ts) is not None


def user_mentions(text: str | None) -> list[str]:
    """User ids mentioned as ``<@U…>`` in ``text``, in order, without duplicates."""
    return list(dict.fromkeys(USER_MENTION_RE.findall(text or "")))


def channel_mentions(text: str | None) -> list[str]:
    """Channel ids mentioned as ``<#C…>`` or ``<#C…|name>`` in ``text``, in order, without duplicates."""
    return list(dict.fromkeys(m[0] for m in CHANNEL_MENTION_RE.findall(text or "")))


def mentions_user(text: str | None, user_id: str | None) -> bool:
    """Whether ``text`` mentions ``user_id``."""
    return bool(user_id) and user_id in user_mentions(text)


def strip_mention(text: str | None, user_id: str) -> str:
    """``text`` without the ``<@user_id>`` mentions (what a question to the bot really asks)."""
    pattern = re.compile(r"<@" + re.escape(user_id) + r"(?:\|[^>]*)?>")
    return re.sub(r"\s{2,}", " ", pattern.sub("", text or "")).strip()


def permalink(workspace_url: str, channel_id: str, ts: str, thread_ts: str | None = None) -> str:
    """The web permalink of a message, built locally (no ``chat.getPermalink`` round trip).

    Args:
        workspace_url: the workspace's URL as ``auth.test`` reports it (``https://acme.slack.com/``).
        channel_id: the channel the message is in.
        ts: the message's timestamp.
        thread_ts: the thread's root timestamp, for a reply.

    Raises:
        ValueError: ``ts`` is not a Slack timestamp or the URL is not http(s).
    """
    if not is_valid_ts(ts):
        raise ValueError(f"not a Slack timestamp: {ts!r}")
    parts = urlsplit(workspace_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not a workspace URL: {workspace_url!r}")
    link = f"{parts.scheme}://{parts.netloc}/archives/{channel_id}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel_id}"
    return link


def parse_permalink(url: str) -> tuple[str, str] | None:
    """``(channel_id, ts)`` of a Slack message permalink, or ``None`` when ``url`` is not one."""
    match = re.search(r"/archives/([CGD][A-Z0-9]+)/p(\d{10,})(?:$|[?#])", url)
    if not match:
        return None
    digits = match.group(2)
    return match.group(1), f"{digits[:-6]}.{digits[-6:]}"
