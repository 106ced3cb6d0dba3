"""Parsing Slack payloads into frozen dataclasses: pure functions, no I/O.

``parse_envelope`` reads a Socket Mode envelope, ``parse_event_callback`` an Events API ``event_callback``
(the envelope's payload, or the body of an HTTP Events API request), and ``parse_effect`` turns the inner
event into the one change it makes to the store (:data:`Effect`). Anything unusable raises
:class:`MalformedEventError` with a reason fit to store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack.errors import SlackError
from slack.formats import is_valid_ts, ts_to_datetime

#: Message subtypes stored as messages (everything else with a subtype is recorded in ``events`` only).
STORED_SUBTYPES = frozenset({None, "bot_message", "thread_broadcast", "file_share", "me_message"})
#: Message subtypes that can be a question to the assistant (edits, broadcasts and bot posts cannot).
QUESTION_SUBTYPES = frozenset({None, "file_share"})
CHANNEL_EVENTS = frozenset(
    {
        "channel_created",
        "channel_rename",
        "channel_archive",
        "channel_unarchive",
        "channel_deleted",
        "group_rename",
        "group_archive",
        "group_unarchive",
        "group_deleted",
    }
)
FILE_SUMMARY_FIELDS = ("id", "name", "title", "mimetype", "filetype", "size", "permalink")


class MalformedEventError(SlackError):
    """A payload cannot be used (not JSON, missing fields, wrong types); the reason says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="malformed_event")
        self.reason = reason


@dataclass(frozen=True)
class Envelope:
    """A Socket Mode envelope (``events_api``, ``slash_commands``, ``interactive``...)."""

    envelope_id: str
    type: str
    payload: Mapping[str, Any]
    retry_attempt: int = 0
    retry_reason: str = ""


@dataclass(frozen=True)
class EventCallback:
    """An Events API ``event_callback``: the dedupe identity plus the inner event."""

    team_id: str
    event_id: str
    event_type: str
    event: Mapping[str, Any]
    payload: Mapping[str, Any]
    event_time: int | None = None

    @property
    def dedupe_key(self) -> str:
        """``team_id:event_id``: the same for every redelivery of this event."""
        return f"{self.team_id}:{self.event_id}"


@dataclass(frozen=True)
class MessageRecord:
    """One message as the store keeps it."""

    team_id: str | None
    channel_id: str
    ts: str
    user_id: str | None
    bot_id: str | None
    text: str
    thread_ts: str | None
    subtype: str | None
    edited_at: datetime | None
    reply_count: int
    latest_reply: str | None
    files: tuple[Mapping[str, Any], ...] | None
    raw: Mapping[str, Any] = field(repr=False)
    channel_type: str | None = None

    @property
    def created_at(self) -> datetime:
        return ts_to_datetime(self.ts)

    @property
    def is_reply(self) -> bool:
        """A reply in a thread (not the thread's root)."""
        return self.thread_ts is not None and self.thread_ts != self.ts


@dataclass(frozen=True)
class MessagePosted:
    record: MessageRecord
    mention: bool = False  # delivered as ``app_mention``


@dataclass(frozen=True)
class MessageChanged:
    record: MessageRecord


@dataclass(frozen=True)
class MessageDeleted:
    channel_id: str
    ts: str
    deleted_at: datetime


@dataclass(frozen=True)
class ReactionChanged:
    added: bool
    channel_id: str
    ts: str
    name: str
    user_id: str


@dataclass(frozen=True)
class ChannelChanged:
    """``kind`` is created, rename, archive, unarchive or deleted; ``channel`` holds what the event said."""

    kind: str
    channel_id: str
    channel: Mapping[str, Any]


@dataclass(frozen=True)
class MemberJoined:
    channel_id: str
    user_id: str


@dataclass(frozen=True)
class UserChanged:
    user: Mapping[str, Any]


@dataclass(frozen=True)
class Ignored:
    reason: str


Effect = (
    MessagePosted
    | MessageChanged
    | MessageDeleted
    | ReactionChanged
    | ChannelChanged
    | MemberJoined
    | UserChanged
    | Ignored
)


# --------------------------------------------------------------------------------------------- envelopes
def parse_envelope(raw: str | Mapping[str, Any]) -> Envelope:
    """A Socket Mode envelope from its JSON text (or decoded dict).

    Raises:
        MalformedEventError: not JSON, not an object, or no ``envelope_id``/``type``.
    """
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise MalformedEventError(f"envelope is not JSON: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise MalformedEventError(f"envelope is a JSON {type(raw).__name__}, not an object")
    envelope_id, kind = raw.get("envelope_id"), raw.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedEventError("envelope has no 'type'")
    if not isinstance(envelope_id, str) or not envelope_id:
        raise MalformedEventError(f"{kind} envelope has no 'envelope_id'")
    payload = raw.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise MalformedEventError(f"{kind} envelope's payload is a JSON {type(payload).__name__}, not an object")
    retry = raw.get("retry_attempt")
    return Envelope(
        envelope_id, kind, payload, retry if isinstance(retry, int) else 0, str(raw.get("retry_reason") or "")
    )


def parse_event_callback(payload: Mapping[str, Any]) -> EventCallback:
    """The ``event_callback`` inside an ``events_api`` envelope or an HTTP Events API request.

    Raises:
        MalformedEventError: a field needed to dedupe or route the event is missing.
    """
    if payload.get("type") != "event_callback":
        raise MalformedEventError(f"payload type is {payload.get('type')!r}, not 'event_callback'")
    team_id = payload.get("team_id") or _first_authorization_team(payload)
    event_id, event = payload.get("event_id"), payload.get("event")
    if not isinstance(team_id, str) or not team_id:
        raise MalformedEventError("event_callback has no team_id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEventError("event_callback has no event_id")
    if not isinstance(event, Mapping):
        raise MalformedEventError("event_callback has no 'event' object")
    event_type = event.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEventError("event has no 'type'")
    event_time = payload.get("event_time")
    return EventCallback(
        team_id, event_id, event_type, event, payload, event_time if isinstance(event_time, int) else None
    )


def _first_authorization_team(payload: Mapping[str, Any]) -> str | None:
    auths = payload.get("authorizations")
    if isinstance(auths, list) and auths and isinstance(auths[0], Mapping):
        team = auths[0].get("team_id")
        return team if isinstance(team, str) else None
    return None


# --------------------------------------------------------------------------------------------- messages
def message_record(
    message: Mapping[str, Any], channel_id: str, team_id: str | None = None, channel_type: str | None = None
) -> MessageRecord:
    """A stored message from a Slack message object (from an event or from history).

    Raises:
        MalformedEventError: no valid ``ts``.
    """
    ts = message.get("ts")
    if not is_valid_ts(ts):
        raise MalformedEventError(f"message has no valid ts ({ts!r})")
    thread_ts = message.get("thread_ts")
    edited = message.get("edited")
    edited_at = None
    if isinstance(edited, Mapping) and is_valid_ts(edited.get("ts")):
        edited_at = ts_to_datetime(edited["ts"])
    files = message.get("files")
    text = message.get("text")
    reply_count = message.get("reply_count")
    return MessageRecord(
        team_id=_str(message.get("team")) or team_id,
        channel_id=channel_id,
        ts=str(ts),
        user_id=_str(message.get("user")),
        bot_id=_str(message.get("bot_id")),
        text=text if isinstance(text, str) else "",
        thread_ts=thread_ts if is_valid_ts(thread_ts) else None,
        subtype=_str(message.get("subtype")),
        edited_at=edited_at,
        reply_count=reply_count if isinstance(reply_count, int) else 0,
        latest_reply=_str(message.get("latest_reply")),
        files=tuple({k: f[k] for k in FILE_SUMMARY_FIELDS if k in f} for f in files if isinstance(f, Mapping))
        if isinstance(files, list)
        else None,
        raw=message,
        channel_type=channel_type,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _require_str(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedEventError(f"{event.get('type')} event has no {key!r}")
    return value


def _item_channel(value: Any) -> str | None:
    """A channel id given as a string or as an object with ``id`` (both appear in channel events)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def parse_effect(callback: EventCallback) -> Effect:
    """What ``callback``'s inner event changes in the store.

    Raises:
        MalformedEventError: the event lacks what its type needs (a channel, a ts, a user...).
    """
    event, kind, team = callback.event, callback.event_type, callback.team_id
    if kind in ("message", "app_mention"):
        channel = _require_str(event, "channel")
        subtype = event.get("subtype")
        channel_type = _str(event.get("channel_type"))
        if subtype == "message_changed":
            inner = event.get("message")
            if not isinstance(inner, Mapping):
                raise MalformedEventError("message_changed event has no 'message'")
            return MessageChanged(message_record(inner, channel, team, channel_type))
        if subtype == "message_deleted":
            deleted_ts = event.get("deleted_ts")
            if not is_valid_ts(deleted_ts):
                raise MalformedEventError("message_deleted event has no valid deleted_ts")
            when = event.get("event_ts") if is_valid_ts(event.get("event_ts")) else deleted_ts
            return MessageDeleted(channel, str(deleted_ts), ts_to_datetime(str(when)))
        if subtype not in STORED_SUBTYPES:
            return Ignored(f"message subtype {subtype!r} is not stored")
        return MessagePosted(message_record(event, channel, team, channel_type), mention=kind == "app_mention")
    if kind in ("reaction_added", "reaction_removed"):
        item = event.get("item")
        if not isinstance(item, Mapping):
            raise MalformedEventError(f"{kind} event has no 'item'")
        if item.get("type") != "message":
            return Ignored(f"reaction on a {item.get('type')!r}, not a message")
        ts = item.get("ts")
        if not is_valid_ts(ts):
            raise MalformedEventError(f"{kind} item has no valid ts")
        return ReactionChanged(
            kind == "reaction_added",
            _require_str(item, "channel"),
            str(ts),
            _require_str(event, "reaction"),
            _require_str(event, "user"),
        )
    if kind in CHANNEL_EVENTS:
        channel_id = _item_channel(event.get("channel"))
        if channel_id is None:
            raise MalformedEventError(f"{kind} event has no channel")
        raw_channel = event.get("channel")
        return ChannelChanged(
            kind.split("_", 1)[1], channel_id, raw_channel if isinstance(raw_channel, Mapping) else {}
        )
    if kind == "member_joined_channel":
        return MemberJoined(_require_str(event, "channel"), _require_str(event, "user"))
    if kind in ("user_change", "team_join"):
        user = event.get("user")
        if not isinstance(user, Mapping) or not isinstance(user.get("id"), str):
            raise MalformedEventError(f"{kind} event has no user object")
        return UserChanged(user)
    return Ignored(f"event type {kind!r} is recorded but not handled")
