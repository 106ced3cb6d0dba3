"""Question events, parsed once into frozen dataclasses, and the rules for which ones get an answer.

``slack.question`` (enqueued by Slack ingestion) carries ``team_id, channel_id, ts, thread_ts, user_id,
text, channel_type`` and optionally ``bot_id``, ``subtype``, ``user_team``, ``is_ext_shared``.
``chat.question`` (the terminal) carries ``conversation_id``, ``message_id`` and ``text``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.audience import Audience
from agent.errors import PermanentError
from agent.snapshot import EventSnapshot

SLACK_QUESTION = "slack.question"
CHAT_QUESTION = "chat.question"
QUESTION_EVENT_TYPES = (SLACK_QUESTION, CHAT_QUESTION)
MAX_QUESTION_CHARS = 40_000


class BadQuestionError(PermanentError):
    """A question event whose payload cannot be answered (missing fields, wrong types, too long)."""


@dataclass(frozen=True)
class Question:
    """One question to answer, wherever it came from."""

    source: str  # 'slack' or 'local'
    request_key: str
    event_id: int
    text: str
    channel_id: str
    channel_type: str
    ts: str | None = None
    thread_ts: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    bot_id: str | None = None
    subtype: str | None = None
    user_team: str | None = None
    is_shared: bool = False
    conversation_id: str | None = None
    message_id: int | None = None

    reply_to: str | None = None

    @property
    def reply_thread_ts(self) -> str | None:
        """The thread the answer goes to: the question's thread, or a new one under the question."""
        return self.reply_to or self.thread_ts or self.ts

    @property
    def audience(self) -> Audience:
        return Audience(
            channel_id=self.channel_id, channel_type=self.channel_type, is_shared=self.is_shared, user_id=self.user_id
        )


def _text(payload: Mapping[str, Any], name: str, required: bool = True) -> str | None:
    value = payload.get(name)
    if value is None or value == "":
        if required:
            raise BadQuestionError(f"question payload has no {name!r}")
        return None
    if not isinstance(value, str):
        raise BadQuestionError(f"question payload field {name!r} must be a string, got {type(value).__name__}")
    return value


def parse_question(event: EventSnapshot) -> Question:
    """Parse a question event; raise :class:`BadQuestionError` (permanent) for a malformed one."""
    payload = event.payload
    if not isinstance(payload, Mapping):
        raise BadQuestionError("question payload must be an object")
    key = event.dedupe_key or f"event:{event.id}"
    question = _text(payload, "text")
    assert question is not None
    if len(question) > MAX_QUESTION_CHARS or "\x00" in question:
        raise BadQuestionError(f"question text is too long or contains NUL ({len(question)} characters)")
    if event.event_type == CHAT_QUESTION:
        conversation = _text(payload, "conversation_id")
        message_id = payload.get("message_id")
        return Question(
            source="local",
            request_key=key,
            event_id=event.id,
            text=question,
            channel_id=f"local:{conversation}",
            channel_type="local",
            conversation_id=conversation,
            message_id=message_id if isinstance(message_id, int) else None,
        )
    if event.event_type != SLACK_QUESTION:
        raise BadQuestionError(f"not a question event: {event.event_type!r}")
    return Question(
        source="slack",
        request_key=key,
        event_id=event.id,
        text=question,
        channel_id=_text(payload, "channel_id") or "",
        channel_type=_text(payload, "channel_type", False) or "channel",
        ts=_text(payload, "ts"),
        thread_ts=_text(payload, "thread_ts", False),
        user_id=_text(payload, "user_id", False),
        team_id=_text(payload, "team_id", False),
        bot_id=_text(payload, "bot_id", False),
        subtype=_text(payload, "subtype", False),
        user_team=_text(payload, "user_team", False),
        is_shared=bool(payload.get("is_ext_shared") or payload.get("is_shared")),
        reply_to=_text(payload, "reply_thread_ts", False),
    )


_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def without_mention(text: str, bot_user_id: str | None) -> str:
    """The question without the leading ``<@BOT>`` that addressed it (other mentions stay)."""
    if not bot_user_id:
        return text
    return re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>\s*", "", text).strip() or text


def ignore_reason(question: Question, *, bot_user_id: str | None, allowed_channels: tuple[str, ...]) -> str | None:
    """Why this question must not be answered (no model call, no reply), or ``None`` to answer it."""
    if question.source == "local":
        return None
    if question.bot_id or question.subtype == "bot_message":
        return "sent by a bot"
    if bot_user_id and question.user_id == bot_user_id:
        return "our own message"
    if not question.user_id:
        return "no user"
    if allowed_channels and question.channel_id not in allowed_channels and question.channel_type != "im":
        return "channel not in ALLOWED_CHANNELS"
    if question.user_team and question.team_id and question.user_team != question.team_id:
        return "external (Slack Connect) user"
    return None
