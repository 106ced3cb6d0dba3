"""Builders of Slack event objects as the Events API delivers them (inner ``event`` of an event_callback)."""

from __future__ import annotations

from typing import Any


def message(
    channel: str,
    ts: str,
    text: str = "hello",
    user: str | None = "U1",
    *,
    thread_ts: str | None = None,
    channel_type: str = "channel",
    **fields: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "ts": ts,
        "event_ts": ts,
        "text": text,
        "channel_type": channel_type,
        "team": "T0FAKE",
    }
    if user:
        event["user"] = user
    if thread_ts:
        event["thread_ts"] = thread_ts
    event.update(fields)
    return event


def app_mention(channel: str, ts: str, text: str, user: str = "U1", *, thread_ts: str | None = None) -> dict[str, Any]:
    event = message(channel, ts, text, user, thread_ts=thread_ts)
    event["type"] = "app_mention"
    del event["channel_type"]  # app_mention events carry no channel_type
    return event


def bot_message(
    channel: str, ts: str, text: str, bot_id: str = "BOTHER", user: str | None = None, **fields: Any
) -> dict[str, Any]:
    return message(channel, ts, text, user, subtype="bot_message", bot_id=bot_id, **fields)


def message_changed(channel: str, ts: str, new_text: str, edited_ts: str, user: str = "U1") -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": channel,
        "hidden": True,
        "ts": edited_ts,
        "event_ts": edited_ts,
        "channel_type": "channel",
        "message": {
            "type": "message",
            "user": user,
            "text": new_text,
            "ts": ts,
            "edited": {"user": user, "ts": edited_ts},
        },
        "previous_message": {"type": "message", "user": user, "text": "old", "ts": ts},
    }


def message_deleted(channel: str, ts: str, event_ts: str) -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "message_deleted",
        "channel": channel,
        "hidden": True,
        "deleted_ts": ts,
        "ts": event_ts,
        "event_ts": event_ts,
        "channel_type": "channel",
    }


def reaction(added: bool, channel: str, ts: str, name: str = "thumbsup", user: str = "U2") -> dict[str, Any]:
    return {
        "type": "reaction_added" if added else "reaction_removed",
        "user": user,
        "reaction": name,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": ts,
    }
