"""Writes to the Slack store (messages, reactions, channels, users). Functions take a Session; none commits.

Every write is idempotent: re-applying an event or re-importing history changes nothing, and an upsert whose
values are unchanged does not write the row again (so a re-import costs reads, not WAL).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from database.slack_models import SlackChannel, SlackMessage, SlackReaction, SlackUser
from slack.events import (
    ChannelChanged,
    Effect,
    Ignored,
    MemberJoined,
    MessageChanged,
    MessageDeleted,
    MessagePosted,
    MessageRecord,
    ReactionChanged,
    UserChanged,
)
from slack.formats import ts_to_datetime

MESSAGE_BATCH = 1000
_NUL = "\x00"

# Columns an upsert may change, and whose change makes it worth writing the row again.
_MUTABLE = (
    "team_id",
    "user_id",
    "bot_id",
    "text",
    "thread_ts",
    "subtype",
    "edited_at",
    "reply_count",
    "latest_reply",
    "files",
    "raw",
)


def clean(value: Any) -> Any:
    """``value`` with NUL characters replaced (PostgreSQL text and JSONB cannot hold them)."""
    if isinstance(value, str):
        return value.replace(_NUL, "\ufffd") if _NUL in value else value
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _has_nul(raw: Mapping[str, Any]) -> bool:
    return "\\u0000" in json.dumps(raw)


def message_row(record: MessageRecord) -> dict[str, Any]:
    """The ``slack_messages`` row of a record."""
    raw = record.raw if not _has_nul(record.raw) else clean(record.raw)
    return {
        "channel_id": record.channel_id,
        "ts": record.ts,
        "created_at": record.created_at,
        "team_id": record.team_id,
        "user_id": record.user_id,
        "bot_id": record.bot_id,
        "text": clean(record.text),
        "thread_ts": record.thread_ts,
        "subtype": record.subtype,
        "edited_at": record.edited_at,
        "reply_count": record.reply_count,
        "latest_reply": record.latest_reply,
        "files": clean(list(record.files)) if record.files is not None else None,
        "raw": dict(raw),
    }


_ARRAY_TYPES = {
    "channel_id": "text",
    "ts": "text",
    "created_at": "timestamptz",
    "team_id": "text",
    "user_id": "text",
    "bot_id": "text",
    "text": "text",
    "thread_ts": "text",
    "subtype": "text",
    "edited_at": "timestamptz",
    "reply_count": "int",
    "latest_reply": "text",
    "files": "jsonb",
    "raw": "jsonb",
}
_JSON_COLUMNS = ("files", "raw")
# One statement per batch with one array per column: compiled once, one round trip, no per-row binds.
BULK_UPSERT_SQL = text(
    f"INSERT INTO slack_messages ({', '.join(_ARRAY_TYPES)}) SELECT * FROM unnest("
    + ", ".join(
        f"CAST(CAST(:{c} AS text[]) AS jsonb[])" if t == "jsonb" else f"CAST(:{c} AS {t}[])"
        for c, t in _ARRAY_TYPES.items()
    )
    + ") ON CONFLICT (channel_id, ts, created_at) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _MUTABLE)
    + ", updated_at = now() WHERE slack_messages.is_deleted = false AND ("
    + " OR ".join(f"slack_messages.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in _MUTABLE)
    + ")"
)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    encoded = json.dumps(value, separators=(",", ":"))
    return json.dumps(clean(value), separators=(",", ":")) if "\\u0000" in encoded else encoded


def upsert_messages(session: Session, records: Sequence[MessageRecord]) -> int:
    """Insert new messages and update changed ones (the import path), a batch per statement; returns len(records).

    Rows whose values are unchanged are not rewritten; deleted messages are never resurrected.
    """
    for start in range(0, len(records), MESSAGE_BATCH):
        batch = records[start : start + MESSAGE_BATCH]
        columns: dict[str, list[Any]] = {c: [] for c in _ARRAY_TYPES}
        for r in batch:
            columns["channel_id"].append(r.channel_id)
            columns["ts"].append(r.ts)
            columns["created_at"].append(r.created_at)
            columns["team_id"].append(r.team_id)
            columns["user_id"].append(r.user_id)
            columns["bot_id"].append(r.bot_id)
            columns["text"].append(clean(r.text))
            columns["thread_ts"].append(r.thread_ts)
            columns["subtype"].append(r.subtype)
            columns["edited_at"].append(r.edited_at)
            columns["reply_count"].append(r.reply_count)
            columns["latest_reply"].append(r.latest_reply)
            columns["files"].append(_json(list(r.files)) if r.files is not None else None)
            columns["raw"].append(_json(dict(r.raw)))
        session.execute(BULK_UPSERT_SQL, columns)
    return len(records)


# The live path: one prepared-once statement; a live event carries no reply_count, so keep what the store
# learned from replies. xmax = 0 only on a freshly inserted row: a reply is counted once however often it
# is redelivered.
LIVE_UPSERT_SQL = text(
    f"INSERT INTO slack_messages ({', '.join(_ARRAY_TYPES)}) VALUES ("
    + ", ".join(f"CAST(:{c} AS jsonb)" if t == "jsonb" else f":{c}" for c, t in _ARRAY_TYPES.items())
    + ") ON CONFLICT (channel_id, ts, created_at) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _MUTABLE if c not in ("reply_count", "latest_reply"))
    + ", reply_count = greatest(slack_messages.reply_count, EXCLUDED.reply_count)"
    + ", latest_reply = coalesce(EXCLUDED.latest_reply, slack_messages.latest_reply)"
    + ", updated_at = now() WHERE slack_messages.is_deleted = false AND ("
    + " OR ".join(f"slack_messages.{c} IS DISTINCT FROM EXCLUDED.{c}" for c in _MUTABLE)
    + ") RETURNING (xmax = 0)"
)
BUMP_ROOT_SQL = text(
    "UPDATE slack_messages SET reply_count = reply_count + 1, "
    "latest_reply = greatest(coalesce(latest_reply, :ts), :ts), updated_at = now() "
    "WHERE channel_id = :channel_id AND ts = :root_ts AND created_at = :root_created_at"
)


def _post_message(session: Session, record: MessageRecord) -> None:
    row = message_row(record)
    row["files"] = _json(row["files"])
    row["raw"] = _json(row["raw"])
    inserted = session.execute(LIVE_UPSERT_SQL, row).scalar()
    if inserted and record.is_reply and record.thread_ts:
        session.execute(
            BUMP_ROOT_SQL,
            {
                "ts": record.ts,
                "channel_id": record.channel_id,
                "root_ts": record.thread_ts,
                "root_created_at": ts_to_datetime(record.thread_ts),
            },
        )


def _change_message(session: Session, record: MessageRecord) -> None:
    row = message_row(record)
    stmt = pg_insert(SlackMessage).values(**row)
    target = SlackMessage.__table__.c
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["channel_id", "ts", "created_at"],
        set_={
            "text": ex.text,
            "edited_at": ex.edited_at,
            "files": ex.files,
            "raw": ex.raw,
            "subtype": ex.subtype,
            "reply_count": func.greatest(target.reply_count, ex.reply_count),
            "latest_reply": func.coalesce(ex.latest_reply, target.latest_reply),
            "updated_at": func.now(),
        },
        # An older edit delivered late must not overwrite a newer one.
        where=and_(
            target.is_deleted.is_(False),
            or_(target.edited_at.is_(None), ex.edited_at.is_(None), target.edited_at <= ex.edited_at),
        ),
    )
    session.execute(stmt)


def _delete_message(session: Session, effect: MessageDeleted) -> None:
    session.execute(
        update(SlackMessage)
        .where(
            SlackMessage.channel_id == effect.channel_id,
            SlackMessage.ts == effect.ts,
            SlackMessage.created_at == ts_to_datetime(effect.ts),
        )
        .values(
            is_deleted=True,
            deleted_at=effect.deleted_at,
            text="",
            files=None,
            raw={"deleted": True},
            updated_at=func.now(),
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(SlackReaction).where(SlackReaction.channel_id == effect.channel_id, SlackReaction.ts == effect.ts)
    )


def _react(session: Session, effect: ReactionChanged) -> None:
    key = {"channel_id": effect.channel_id, "ts": effect.ts, "name": effect.name, "user_id": effect.user_id}
    if effect.added:
        session.execute(pg_insert(SlackReaction).values(**key).on_conflict_do_nothing())
    else:
        session.execute(delete(SlackReaction).filter_by(**key))


# --------------------------------------------------------------------------------------------- channels
def channel_row(channel: Mapping[str, Any], team_id: str | None = None) -> dict[str, Any]:
    """A ``slack_channels`` row from a Slack conversation object."""
    topic, purpose = channel.get("topic"), channel.get("purpose")
    created = channel.get("created")
    return {
        "id": channel["id"],
        "team_id": channel.get("context_team_id") or team_id,
        "name": channel.get("name") or channel.get("name_normalized"),
        "topic": topic.get("value") if isinstance(topic, Mapping) else topic,
        "purpose": purpose.get("value") if isinstance(purpose, Mapping) else purpose,
        "is_private": bool(channel.get("is_private") or channel.get("is_group")),
        "is_archived": bool(channel.get("is_archived")),
        "is_ext_shared": bool(channel.get("is_ext_shared")),
        "is_im": bool(channel.get("is_im")),
        "is_mpim": bool(channel.get("is_mpim")),
        "member_count": channel.get("num_members") if isinstance(channel.get("num_members"), int) else None,
        "created_at": datetime.fromtimestamp(created, tz=UTC) if isinstance(created, int | float) else None,
        "raw": clean(dict(channel)),
    }


def upsert_channels(session: Session, channels: Iterable[Mapping[str, Any]], team_id: str | None = None) -> int:
    """Insert or update channels from ``conversations.list``/``conversations.info`` objects."""
    rows = [channel_row(c, team_id) for c in channels if isinstance(c.get("id"), str)]
    if not rows:
        return 0
    stmt = pg_insert(SlackChannel)
    cols = [k for k in rows[0] if k != "id"]
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={**{k: stmt.excluded[k] for k in cols}, "is_deleted": False, "updated_at": func.now()},
    )
    session.execute(stmt, rows)
    return len(rows)


def _channel_event(session: Session, effect: ChannelChanged, team_id: str | None) -> None:
    if effect.kind in ("created", "rename"):
        fields: dict[str, Any] = {"id": effect.channel_id, "team_id": team_id}
        if effect.channel.get("name"):
            fields["name"] = effect.channel["name"]
        created = effect.channel.get("created")
        if isinstance(created, int | float):
            fields["created_at"] = datetime.fromtimestamp(created, tz=UTC)
        stmt = pg_insert(SlackChannel).values(**fields)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"name": func.coalesce(stmt.excluded.name, SlackChannel.name), "updated_at": func.now()},
        )
        session.execute(stmt)
        return
    values = {
        "archive": {"is_archived": True},
        "unarchive": {"is_archived": False},
        "deleted": {"is_deleted": True, "is_archived": True},
    }[effect.kind]
    stmt = pg_insert(SlackChannel).values(id=effect.channel_id, team_id=team_id, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={**values, "updated_at": func.now()}))


def _member_joined(session: Session, effect: MemberJoined) -> None:
    session.execute(
        update(SlackChannel)
        .where(SlackChannel.id == effect.channel_id)
        .values(member_count=func.coalesce(SlackChannel.member_count, 0) + 1, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )


# --------------------------------------------------------------------------------------------- users
def user_row(user: Mapping[str, Any]) -> dict[str, Any]:
    """A ``slack_users`` row from a Slack user object."""
    raw_profile = user.get("profile")
    profile: Mapping[str, Any] = raw_profile if isinstance(raw_profile, Mapping) else {}
    return {
        "id": user["id"],
        "team_id": user.get("team_id"),
        "name": user.get("name"),
        "real_name": user.get("real_name") or profile.get("real_name"),
        "display_name": profile.get("display_name") or None,
        "title": profile.get("title") or None,
        "tz": user.get("tz"),
        "is_bot": bool(user.get("is_bot")),
        "deleted": bool(user.get("deleted")),
        "raw": clean(dict(user)),
    }


def upsert_users(session: Session, users: Iterable[Mapping[str, Any]]) -> int:
    """Insert or update users from ``users.list``/``users.info``/``user_change`` objects."""
    rows = [user_row(u) for u in users if isinstance(u.get("id"), str)]
    if not rows:
        return 0
    stmt = pg_insert(SlackUser)
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={**{k: stmt.excluded[k] for k in rows[0] if k != "id"}, "updated_at": func.now()},
    )
    session.execute(stmt, rows)
    return len(rows)


# --------------------------------------------------------------------------------------------- dispatch
def apply_effect(session: Session, effect: Effect, team_id: str | None = None) -> None:
    """Apply one parsed event's change to the store (in the caller's transaction)."""
    if isinstance(effect, MessagePosted):
        _post_message(session, effect.record)
    elif isinstance(effect, MessageChanged):
        _change_message(session, effect.record)
    elif isinstance(effect, MessageDeleted):
        _delete_message(session, effect)
    elif isinstance(effect, ReactionChanged):
        _react(session, effect)
    elif isinstance(effect, ChannelChanged):
        _channel_event(session, effect, team_id)
    elif isinstance(effect, MemberJoined):
        _member_joined(session, effect)
    elif isinstance(effect, UserChanged):
        upsert_users(session, [effect.user])
    elif isinstance(effect, Ignored):
        pass


# --------------------------------------------------------------------------------------------- reads
def bot_in_thread(session: Session, channel_id: str, thread_ts: str, bot_user_id: str, bot_id: str | None) -> bool:
    """Whether the assistant has posted in the thread ``thread_ts`` (root or reply)."""
    who = SlackMessage.user_id == bot_user_id
    if bot_id:
        who = or_(who, SlackMessage.bot_id == bot_id)
    stmt = (
        select(literal(1))
        .where(
            SlackMessage.channel_id == channel_id,
            or_(
                SlackMessage.thread_ts == thread_ts,
                and_(SlackMessage.ts == thread_ts, SlackMessage.created_at == ts_to_datetime(thread_ts)),
            ),
            who,
        )
        .limit(1)
    )
    return session.execute(stmt).first() is not None


def channel_type(session: Session, channel_id: str) -> str:
    """``im``, ``mpim``, ``group`` (private) or ``channel`` (public) for a channel id.

    Unknown channels count as public ``channel``: the assistant then uses only public content there
    (fail closed).
    """
    if channel_id.startswith("D"):
        return "im"
    row = session.execute(
        select(SlackChannel.is_im, SlackChannel.is_mpim, SlackChannel.is_private).where(SlackChannel.id == channel_id)
    ).first()
    if row is None:
        return "group" if channel_id.startswith("G") else "channel"
    if row.is_im:
        return "im"
    if row.is_mpim:
        return "mpim"
    return "group" if row.is_private else "channel"
