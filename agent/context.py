"""Thread context from the database: the latest messages of a conversation that fit a token budget.

Two stores, one shape: Slack threads (``slack_messages``, written by ingestion) and local terminal
conversations (``chat_messages``). The question itself is never part of the context: the prompt puts
it last, on its own. Tokens are estimated (about four characters each), which is enough to stay well
inside the model's window; the newest messages win, and the selection says when older ones were left out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 8
MAX_MESSAGE_CHARS = 4_000  # one huge message must not crowd out the rest


@dataclass(frozen=True)
class ContextMessage:
    """One earlier message of the conversation, as the prompt shows it."""

    author: str
    text: str
    is_bot: bool
    time: str


@dataclass(frozen=True)
class ThreadContext:
    """The selected messages (oldest first) and whether older ones were left out."""

    messages: tuple[ContextMessage, ...]
    truncated: bool


def estimate_tokens(value: str) -> int:
    return len(value) // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS


def select_context(messages: list[ContextMessage], budget_tokens: int, max_messages: int) -> ThreadContext:
    """Keep the newest messages (given oldest first) that fit ``budget_tokens`` and ``max_messages``."""
    chosen: list[ContextMessage] = []
    used = 0
    for message in reversed(messages):
        if len(message.text) > MAX_MESSAGE_CHARS:
            message = ContextMessage(
                message.author, message.text[:MAX_MESSAGE_CHARS] + " […]", message.is_bot, message.time
            )
        cost = estimate_tokens(message.text)
        if len(chosen) >= max_messages or used + cost > budget_tokens:
            break
        chosen.append(message)
        used += cost
    return ThreadContext(tuple(reversed(chosen)), truncated=len(chosen) < len(messages))


def format_time(value: datetime | str | None, tz: ZoneInfo) -> str:
    """A timestamp (datetime or Slack ``ts``) as ``YYYY-MM-DD HH:MM`` in ``tz``."""
    if value is None:
        return "?"
    if isinstance(value, str):
        try:
            moment = datetime.fromtimestamp(float(value), tz=UTC)
        except ValueError:
            return value
    else:
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


SCHEMA_CACHE_SECONDS = 30.0
_schema_cache: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}
_schema_lock = threading.Lock()


def _columns(session: Session, table: str) -> frozenset[str]:
    """The columns of ``table`` (empty when it does not exist), cached briefly per database.

    The Slack store belongs to ingestion and may be absent (a terminal-only install); looking it up on every
    question would cost round trips the answer does not need.
    """
    key = (str(session.get_bind().engine.url), table)
    now = time.monotonic()
    with _schema_lock:
        cached = _schema_cache.get(key)
    if cached is not None and now - cached[0] < SCHEMA_CACHE_SECONDS:
        return cached[1]
    columns = frozenset(
        r[0]
        for r in session.execute(
            text("SELECT column_name FROM information_schema.columns WHERE table_name = :t"), {"t": table}
        )
    )
    with _schema_lock:
        _schema_cache[key] = (now, columns)
    return columns


def load_local_context(
    session: Session, conversation_id: str, before_id: int | None, limit: int, tz: ZoneInfo, user_name: str = "you"
) -> list[ContextMessage]:
    """The latest ``limit`` turns of a local conversation before message ``before_id`` (oldest first)."""
    rows = session.execute(
        text(
            """
            SELECT role, text, created_at FROM chat_messages
            WHERE conversation_id = :c AND (CAST(:before AS bigint) IS NULL OR id < :before)
            ORDER BY id DESC LIMIT :n
            """
        ),
        {"c": conversation_id, "before": before_id, "n": limit},
    ).all()
    return [
        ContextMessage(
            author="assistant" if r.role == "assistant" else user_name,
            text=r.text,
            is_bot=r.role == "assistant",
            time=format_time(r.created_at, tz),
        )
        for r in reversed(rows)
    ]


def load_slack_context(
    session: Session,
    channel_id: str,
    thread_ts: str | None,
    question_ts: str,
    limit: int,
    tz: ZoneInfo,
    bot_user_id: str | None,
) -> list[ContextMessage]:
    """The latest ``limit`` messages of a Slack thread before the question (oldest first).

    Reads ``slack_messages`` (written by ingestion); without it (ingestion not installed) there is no context.
    """
    if not thread_ts or not _columns(session, "slack_messages"):
        return []
    not_deleted = "AND NOT coalesce(is_deleted, false)" if "is_deleted" in _columns(session, "slack_messages") else ""
    rows = session.execute(
        text(
            f"""
            SELECT user_id, text, ts FROM slack_messages
            WHERE channel_id = :c AND (ts = :t OR thread_ts = :t) AND ts <> :q {not_deleted}
            ORDER BY ts DESC LIMIT :n
            """
        ),
        {"c": channel_id, "t": thread_ts, "q": question_ts, "n": limit},
    ).all()
    rows = [r for r in rows if r.text]
    names = user_names(session, {r.user_id for r in rows if r.user_id})
    return [
        ContextMessage(
            author=names.get(r.user_id or "", "assistant" if r.user_id == bot_user_id else r.user_id or "someone"),
            text=r.text,
            is_bot=bool(bot_user_id) and r.user_id == bot_user_id,
            time=format_time(r.ts, tz),
        )
        for r in reversed(rows)
    ]


def user_names(session: Session, user_ids: set[str]) -> dict[str, str]:
    """Display names of Slack users from ``slack_users`` when it exists (ids stay as they are otherwise)."""
    if not user_ids or not _columns(session, "slack_users"):
        return {}
    columns = _columns(session, "slack_users")
    id_col = "user_id" if "user_id" in columns else "id"
    name_cols = [c for c in ("display_name", "real_name", "name") if c in columns]
    if id_col not in columns or not name_cols:
        return {}
    expr = "COALESCE(" + ", ".join(f"NULLIF({c}, '')" for c in name_cols) + ")"
    rows = session.execute(
        text(f"SELECT {id_col} AS id, {expr} AS name FROM slack_users WHERE {id_col} = ANY(:ids)"),
        {"ids": list(user_ids)},
    ).all()
    return {r.id: r.name for r in rows if r.name}


def channel_is_shared(session: Session, channel_id: str) -> bool:
    """Whether the channel is shared with another organisation (Slack Connect), per ``slack_channels``."""
    if not _columns(session, "slack_channels"):
        return False
    columns = _columns(session, "slack_channels")
    flags = [c for c in ("is_ext_shared", "is_shared") if c in columns]
    id_col = "channel_id" if "channel_id" in columns else "id"
    if not flags or id_col not in columns:
        return False
    expr = " OR ".join(f"coalesce({c}, false)" for c in flags)
    value = session.execute(text(f"SELECT {expr} FROM slack_channels WHERE {id_col} = :c"), {"c": channel_id}).scalar()
    return bool(value)


def channel_name(session: Session, channel_id: str) -> str | None:
    """A channel's name from ``slack_channels`` when it exists."""
    if not _columns(session, "slack_channels"):
        return None
    columns = _columns(session, "slack_channels")
    id_col = "channel_id" if "channel_id" in columns else "id"
    if "name" not in columns or id_col not in columns:
        return None
    value = session.execute(text(f"SELECT name FROM slack_channels WHERE {id_col} = :c"), {"c": channel_id}).scalar()
    return str(value) if value else None
