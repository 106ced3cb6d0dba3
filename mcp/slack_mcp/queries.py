"""The Slack store's queries for the MCP tools: channels, users, history, threads, context and search.

Every function takes a session and an :class:`Audience` and applies its visibility filter in SQL, so content
a requester's audience may not see never leaves the database. Results are plain dicts in the compact shape
of mcp.md (channel → threads → messages, user ids resolved through one shared users map).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from database.errors import AthenaeumError
from slack_mcp.audience import Audience, visibility_sql
from slack_mcp.refs import ChannelRef, UserRef, parse_channel, parse_user, permalink, ts_to_iso

MESSAGE_COLUMNS = "m.channel_id, m.ts, m.thread_ts, m.user_id, m.bot_id, m.text, m.reply_count, m.subtype"
TS_CONFIG = "english"


class SlackQueryError(AthenaeumError):
    """A Slack query cannot be answered as asked; the message says what to change."""


@dataclass(frozen=True)
class Channel:
    """A resolved, visible channel."""

    id: str
    name: str | None


def escape_like(value: str) -> str:
    """``value`` with LIKE wildcards escaped (``ESCAPE '\\'``)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ---------------------------------------------------------------- resolving references
def resolve_channel(session: Session, audience: Audience, ref: str | ChannelRef) -> Channel:
    """The visible channel ``ref`` names.

    Raises:
        SlackQueryError: unknown, not visible to this audience (reported as unknown: fail closed, no hint),
            or a name matching several channels (candidates listed).
    """
    parsed = parse_channel(ref) if isinstance(ref, str) else ref
    condition, params = visibility_sql(session, audience)
    if parsed.id is not None:
        row = session.execute(
            text(f"SELECT ch.id, ch.name FROM slack_channels ch WHERE ch.id = :id AND {condition}"),
            {"id": parsed.id, **params},
        ).first()
        rows = [row] if row else []
    else:
        rows = list(
            session.execute(
                text(
                    f"SELECT ch.id, ch.name FROM slack_channels ch WHERE lower(ch.name) = :name AND {condition} "
                    "ORDER BY ch.is_archived, ch.id LIMIT 6"
                ),
                {"name": parsed.name, **params},
            ).all()
        )
    if not rows:
        shown = ref if isinstance(ref, str) else (parsed.id or parsed.name)
        raise SlackQueryError(f"no channel {shown!r} that this conversation may read; use list_channels to find one")
    if len(rows) > 1:
        raise SlackQueryError(
            f"channel name {parsed.name!r} is ambiguous; use an id: " + ", ".join(f"{r.id} (#{r.name})" for r in rows)
        )
    return Channel(rows[0].id, rows[0].name)


def resolve_user(session: Session, ref: str) -> str:
    """The user id ``ref`` names (id, ``@handle``, display or real name).

    Raises:
        SlackQueryError: unknown, or several matches (candidates listed).
    """
    parsed: UserRef = parse_user(ref)
    if parsed.id is not None:
        return parsed.id
    rows = session.execute(
        text(
            "SELECT id, name, display_name, real_name FROM slack_users WHERE NOT deleted AND "
            "(lower(name) = lower(:n) OR lower(display_name) = lower(:n) OR lower(real_name) = lower(:n)) "
            "ORDER BY id LIMIT 6"
        ),
        {"n": parsed.name},
    ).all()
    if not rows:
        raise SlackQueryError(f"no user {ref!r}; use find_users to look people up")
    if len(rows) > 1:
        raise SlackQueryError(
            f"user {ref!r} is ambiguous; use an id: "
            + ", ".join(f"{r.id} (@{r.name}, {r.real_name or r.display_name or ''})" for r in rows)
        )
    return str(rows[0].id)


# ---------------------------------------------------------------- channels and users
def list_channels(
    session: Session, audience: Audience, keyword: str | None, include_archived: bool, limit: int, after: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Visible channels by name (keyset after ``after``), with topic, purpose, members and last activity."""
    condition, params = visibility_sql(session, audience)
    where = [condition, "NOT ch.is_deleted", "NOT ch.is_im"]
    if not include_archived:
        where.append("NOT ch.is_archived")
    if keyword:
        where.append(
            "(ch.name ILIKE :kw ESCAPE '\\' OR ch.topic ILIKE :kw ESCAPE '\\' OR ch.purpose ILIKE :kw ESCAPE '\\')"
        )
        params["kw"] = f"%{escape_like(keyword)}%"
    if after:
        where.append("(coalesce(ch.name, ''), ch.id) > (:after_name, :after_id)")
        name, _, cid = after.partition("\x1f")
        params.update({"after_name": name, "after_id": cid})
    rows = (
        session.execute(
            text(
                "SELECT ch.id, ch.name, ch.topic, ch.purpose, ch.member_count, ch.is_private, ch.is_archived, "
                "ch.is_ext_shared, ch.is_mpim, last.created_at AS last_activity FROM slack_channels ch "
                "LEFT JOIN LATERAL (SELECT m.created_at FROM slack_messages m WHERE m.channel_id = ch.id "
                "ORDER BY m.ts DESC LIMIT 1) last ON TRUE "
                f"WHERE {' AND '.join(where)} ORDER BY coalesce(ch.name, ''), ch.id LIMIT :limit"
            ),
            {**params, "limit": limit + 1},
        )
        .mappings()
        .all()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "id": r["id"],
            "name": r["name"],
            "topic": r["topic"],
            "purpose": r["purpose"],
            "member_count": r["member_count"],
            "private": r["is_private"] or r["is_mpim"],
            "archived": r["is_archived"],
            "shared_externally": r["is_ext_shared"],
            "last_activity": r["last_activity"].isoformat() if r["last_activity"] else None,
        }
        for r in rows
    ]
    cursor = f"{rows[-1]['name'] or ''}\x1f{rows[-1]['id']}" if more and rows else None
    return items, cursor


def find_users(session: Session, keyword: str, limit: int) -> list[dict[str, Any]]:
    """People whose handle, display name, real name or title contains ``keyword`` (no emails)."""
    rows = (
        session.execute(
            text(
                "SELECT id, name, display_name, real_name, title, tz, is_bot FROM slack_users WHERE NOT deleted AND "
                "(name ILIKE :kw ESCAPE '\\' OR display_name ILIKE :kw ESCAPE '\\' OR real_name ILIKE :kw ESCAPE '\\' "
                "OR title ILIKE :kw ESCAPE '\\') ORDER BY is_bot, lower(coalesce(real_name, name, id)) LIMIT :limit"
            ),
            {"kw": f"%{escape_like(keyword)}%", "limit": limit},
        )
        .mappings()
        .all()
    )
    return [
        {
            "id": r["id"],
            "handle": r["name"],
            "display_name": r["display_name"],
            "real_name": r["real_name"],
            "title": r["title"],
            "timezone": r["tz"],
            "bot": r["is_bot"],
        }
        for r in rows
    ]


def users_map(session: Session, user_ids: Iterable[str | None]) -> dict[str, dict[str, Any]]:
    """The shared users map for the ids that appear in a result."""
    ids = sorted({u for u in user_ids if u})
    if not ids:
        return {}
    rows = session.execute(
        text("SELECT id, name, display_name, real_name FROM slack_users WHERE id = ANY(:ids)"), {"ids": ids}
    ).mappings()
    return {r["id"]: {"handle": r["name"], "name": r["display_name"] or r["real_name"] or r["name"]} for r in rows}


# ---------------------------------------------------------------- messages
def message_dict(row: Any, workspace_url: str) -> dict[str, Any]:
    """The compact shape of one message."""
    thread_ts = row["thread_ts"]
    return {
        "ts": row["ts"],
        "time": ts_to_iso(row["ts"]),
        "user": row["user_id"] or row["bot_id"],
        "text": row["text"],
        "thread_ts": thread_ts if thread_ts and thread_ts != row["ts"] else None,
        "reply_count": row["reply_count"] or None,
        "permalink": permalink(workspace_url, row["channel_id"], row["ts"], thread_ts),
    }


def channel_history(
    session: Session,
    channel: Channel,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    before_ts: str | None,
    replies_per_thread: int = 5,
) -> tuple[list[Any], dict[str, list[Any]], str | None]:
    """Top-level messages newest first (``limit`` of them, before ``before_ts``) and the replies of each thread."""
    where = ["m.channel_id = :c", "NOT m.is_deleted", "(m.thread_ts IS NULL OR m.thread_ts = m.ts)"]
    params: dict[str, Any] = {"c": channel.id, "limit": limit + 1}
    if since:
        where.append("m.created_at >= :since")
        params["since"] = since
    if until:
        where.append("m.created_at < :until")
        params["until"] = until
    if before_ts:
        where.append("m.ts < :before")
        params["before"] = before_ts
    roots = (
        session.execute(
            text(
                f"SELECT {MESSAGE_COLUMNS} FROM slack_messages m WHERE {' AND '.join(where)} ORDER BY m.ts DESC "
                "LIMIT :limit"
            ),
            params,
        )
        .mappings()
        .all()
    )
    more = len(roots) > limit
    roots = roots[:limit]
    threads = [r["ts"] for r in roots if r["reply_count"]]
    replies: dict[str, list[Any]] = {}
    if threads:
        rows = (
            session.execute(
                text(
                    f"SELECT * FROM (SELECT {MESSAGE_COLUMNS}, "
                    "row_number() OVER (PARTITION BY m.thread_ts ORDER BY m.ts) AS n FROM slack_messages m "
                    "WHERE m.channel_id = :c AND m.thread_ts = ANY(:threads) "
                    "AND m.ts <> m.thread_ts AND NOT m.is_deleted) x WHERE n <= :per ORDER BY ts"
                ),
                {"c": channel.id, "threads": threads, "per": replies_per_thread},
            )
            .mappings()
            .all()
        )
        for row in rows:
            replies.setdefault(row["thread_ts"], []).append(row)
    return list(roots), replies, roots[-1]["ts"] if more and roots else None


def thread(session: Session, channel: Channel, ts: str, limit: int) -> tuple[list[Any], bool]:
    """The whole thread that message ``ts`` belongs to (root first), at most ``limit`` messages.

    Raises:
        SlackQueryError: no such message in the channel.
    """
    row = session.execute(
        text("SELECT ts, thread_ts FROM slack_messages WHERE channel_id = :c AND ts = :ts"), {"c": channel.id, "ts": ts}
    ).first()
    if row is None:
        raise SlackQueryError(f"no message {ts} in #{channel.name or channel.id}; check the ts or paste a permalink")
    root = row.thread_ts or row.ts
    rows = (
        session.execute(
            text(
                f"SELECT {MESSAGE_COLUMNS} FROM slack_messages m WHERE m.channel_id = :c AND NOT m.is_deleted "
                "AND (m.ts = :root OR m.thread_ts = :root) ORDER BY m.ts LIMIT :limit"
            ),
            {"c": channel.id, "root": root, "limit": limit + 1},
        )
        .mappings()
        .all()
    )
    return list(rows[:limit]), len(rows) > limit


def context(session: Session, channel: Channel, ts: str, before: int, after: int) -> list[Any]:
    """Messages of the channel's main stream around ``ts`` (``before`` older, ``after`` newer, and itself)."""
    params = {"c": channel.id, "ts": ts, "before": before, "after": after}
    stream = "m.channel_id = :c AND NOT m.is_deleted AND (m.thread_ts IS NULL OR m.thread_ts = m.ts OR m.ts = :ts)"
    rows = (
        session.execute(
            text(
                f"(SELECT {MESSAGE_COLUMNS} FROM slack_messages m WHERE {stream} AND m.ts < :ts ORDER BY m.ts DESC "
                "LIMIT :before) UNION ALL "
                f"(SELECT {MESSAGE_COLUMNS} FROM slack_messages m WHERE {stream} AND m.ts >= :ts ORDER BY m.ts "
                "LIMIT :after + 1)"
            ),
            params,
        )
        .mappings()
        .all()
    )
    if not any(r["ts"] == ts for r in rows):
        raise SlackQueryError(f"no message {ts} in #{channel.name or channel.id}; check the ts or paste a permalink")
    return sorted(rows, key=lambda r: r["ts"])


def thread_context(session: Session, row: Any, replies: int = 3) -> list[Any]:
    """For a hit inside a thread: the root and up to ``replies`` replies nearest to it (the hit excluded)."""
    root = row["thread_ts"] or row["ts"]
    if not row["thread_ts"] and not row["reply_count"]:
        return []
    rows = (
        session.execute(
            text(
                f"SELECT {MESSAGE_COLUMNS} FROM slack_messages m WHERE m.channel_id = :c AND NOT m.is_deleted "
                "AND (m.ts = :root OR m.thread_ts = :root) AND m.ts <> :ts "
                "ORDER BY (m.ts = :root) DESC, abs(CAST(m.ts AS numeric) - CAST(:ts AS numeric)) LIMIT :n"
            ),
            {"c": row["channel_id"], "root": root, "ts": row["ts"], "n": replies + 1},
        )
        .mappings()
        .all()
    )
    return sorted(rows, key=lambda r: r["ts"])
