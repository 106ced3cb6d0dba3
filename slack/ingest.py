"""Live ingestion: one Events API ``event_callback`` -> one transaction (raw event + store + question).

For each event, in **one transaction**:

1. the raw event is recorded in ``events`` as ``slack.<type>`` (``slack.message``, ``slack.reaction_added``...)
   with the dedupe key ``team_id:event_id``; a redelivery inserts nothing and changes nothing else;
2. its effect is applied to the Slack store (message upsert, edit, delete, reaction, channel, user);
3. a message addressed to the assistant also enqueues a ``slack.question`` event with the request key
   ``team_id:channel_id:ts``, so the ``message`` and ``app_mention`` twins of one post become one question.

The caller (Socket Mode handler, HTTP endpoint) acks only after this returns. Workers are woken when the
transaction commits (``EventProcessor.enqueue_event`` arranges it).

The ``slack.<type>`` raw events need no work from a worker (their effect is already in the store); a
``process_func`` should complete them at once and answer only ``slack.question``.

``slack.question`` payload (what the assistant consumes; every field always present)::

    {
      "team_id":      "T…",            # workspace
      "channel_id":   "C…" | "D…" | "G…",
      "ts":           "1700000000.000100",   # the user's message
      "thread_ts":    "1700000000.000001" | null,   # its thread, null for a top-level message
      "reply_thread_ts": "…",          # where to answer: thread_ts, or ts for a top-level message
      "user_id":      "U…",            # who asked
      "text":         "<@UBOT> how do I …",   # raw Slack text (mentions included)
      "channel_type": "channel" | "group" | "im" | "mpim",  # group = private channel; unknown -> channel
      "reason":       "mention" | "direct_message" | "thread",
      "source_event_id":   "Ev…",      # the event that produced it (message or app_mention)
      "source_event_type": "message" | "app_mention"
    }

Who may trigger a question: never a bot (``bot_id`` set), never our own user, never an edit, delete or
broadcast; only in ``ALLOWED_CHANNELS`` when that list is set (direct messages with the assistant are
always allowed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import structlog
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from database import DatabaseConnection
from database.errors import DatabaseUnavailableError
from database.models import Event
from slack.client import BotIdentity
from slack.events import (
    QUESTION_SUBTYPES,
    Effect,
    EventCallback,
    Ignored,
    MalformedEventError,
    MessageChanged,
    MessagePosted,
    MessageRecord,
    parse_effect,
    parse_event_callback,
)
from slack.formats import mentions_user
from slack.store import apply_effect, bot_in_thread, channel_type, clean

QUESTION_EVENT_TYPE = "slack.question"
#: Computing message embeddings is a worker's job (the model is slow next to an ack). New or edited text
#: schedules one such event per minute, due at the start of the next minute, that embeds everything
#: still missing; the handler lives with the Slack MCP server (slack_mcp.embedding_jobs), wired by athenaeum.py.
EMBED_EVENT_TYPE = "slack_embed_messages"


def _embed_due(now: datetime | None) -> tuple[datetime, str]:
    now = now or datetime.now(UTC)
    due = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return due, f"embed:{due:%Y-%m-%dT%H:%M}"


def schedule_embeddings(queue: EventQueue, now: datetime | None = None) -> str:
    """Make sure an embedding job is due at the start of the next minute (one per minute, deduplicated).

    Returns the job's dedupe key.
    """
    due, key = _embed_due(now)
    queue.enqueue_event(EMBED_EVENT_TYPE, {}, key=key, run_after=due)
    return key


FAILED_EVENT_TYPE = "slack.malformed"
RAW_FAILED_MAX_CHARS = 65536

_log = structlog.get_logger("athenaeum.slack.ingest")


class EventQueue(Protocol):
    """What ingestion needs of the queue: ``agent.EventProcessor`` satisfies it (slack/ never imports agent)."""

    def enqueue_event(
        self, event_type: str, payload: Mapping[str, Any], key: str | None = None, run_after: Any = None
    ) -> Any: ...


QueueFactory = Callable[[Session], EventQueue]


@dataclass(frozen=True)
class Question:
    """A message addressed to the assistant (the ``slack.question`` payload)."""

    team_id: str
    channel_id: str
    ts: str
    thread_ts: str | None
    reply_thread_ts: str
    user_id: str
    text: str
    channel_type: str
    reason: str
    source_event_id: str
    source_event_type: str

    @property
    def key(self) -> str:
        """``team_id:channel_id:ts``: the same for the ``message`` and ``app_mention`` twins."""
        return f"{self.team_id}:{self.channel_id}:{self.ts}"

    def payload(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did."""

    event_key: str
    event_type: str
    duplicate: bool
    effect: str
    question_key: str | None = None


@dataclass(frozen=True)
class _Parsed:
    """An event callback parsed ahead of its transaction."""

    callback: EventCallback
    effect: Effect
    stored: dict[str, Any]  # the payload as recorded in ``events``


def question_reason(
    record: MessageRecord,
    *,
    mention: bool,
    conversation_type: str,
    bot: BotIdentity,
    allowed_channels: frozenset[str],
    bot_in_thread: Callable[[], bool],
) -> str | None:
    """Why ``record`` is a question to the assistant (``mention``, ``direct_message``, ``thread``), or None.

    Pure apart from ``bot_in_thread``, which is asked only for replies that nothing else qualified.
    """
    if record.subtype not in QUESTION_SUBTYPES or record.bot_id is not None:
        return None
    if record.user_id is None or record.user_id == bot.user_id:
        return None
    if allowed_channels and conversation_type != "im" and record.channel_id not in allowed_channels:
        return None
    if mention or mentions_user(record.text, bot.user_id):
        return "mention"
    if conversation_type == "im":
        return "direct_message"
    if record.is_reply and bot_in_thread():
        return "thread"
    return None


class Ingester:
    """Records Slack events and keeps the store current; thread-safe (one session per call).

    Args:
        db: the database.
        queue_factory: builds the queue over a session, e.g. ``lambda s: EventProcessor(s, "slack-socket")``.
        bot: the assistant's identity (``SlackClient.auth_test()``).
        allowed_channels: channel ids the assistant answers in; empty means everywhere.
        clock: the current time (tests pass a fixed one); decides which minute's embedding job to schedule.
    """

    def __init__(
        self,
        db: DatabaseConnection,
        queue_factory: QueueFactory,
        bot: BotIdentity,
        allowed_channels: Iterable[str] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.clock = clock
        self.queue_factory = queue_factory
        self.bot = bot
        self.allowed_channels = frozenset(allowed_channels)
        self._embed_job_committed: str | None = None  # the newest embedding job known to be in the database

    def ingest(self, payload: Mapping[str, Any]) -> IngestResult:
        """Record one ``event_callback`` and apply it, in one transaction.

        Raises:
            MalformedEventError: the payload is unusable; it was recorded as a failed event (when its
                key could be read) and must be acked, not redelivered.
            DatabaseUnavailableError: the database is down; nothing was recorded; do not ack.
        """
        parsed = self._parse(payload)
        scheduled: list[str] = []
        with self.db.session() as session:
            result = self._apply(session, parsed, scheduled)
        self._committed([parsed], scheduled)
        return result

    def ingest_many(self, payloads: Sequence[Mapping[str, Any]]) -> list[IngestResult | Exception]:
        """Ingest event callbacks that arrived together: one transaction for the group (group commit).

        Returns one outcome per payload, in order: its :class:`IngestResult`, or the exception that ingesting
        it alone raised (what :meth:`ingest` would have raised). Every result is committed when this returns.
        When the group transaction fails for a reason other than a lost database, each payload is retried in
        a transaction of its own, so one bad event never costs the others; when the database is unreachable,
        every payload gets the :class:`DatabaseUnavailableError` (nothing was stored: do not ack).
        """
        outcomes: list[IngestResult | Exception | None] = [None] * len(payloads)
        good: list[tuple[int, _Parsed]] = []
        for i, payload in enumerate(payloads):
            try:
                good.append((i, self._parse(payload)))
            except Exception as exc:  # MalformedEventError (recorded as failed), or the database is down
                outcomes[i] = exc
        if len(good) > 1:
            scheduled: list[str] = []
            try:
                with self.db.session() as session:
                    results = [self._apply(session, parsed, scheduled) for _, parsed in good]
            except DatabaseUnavailableError as exc:
                # One by one would only wait for the same unreachable server once per event.
                for i, _ in good:
                    outcomes[i] = exc
                good = []
            except Exception as exc:
                _log.info(
                    "slack event group rolled back; ingesting one by one", size=len(good), error=type(exc).__name__
                )
            else:
                self._committed([parsed for _, parsed in good], scheduled)
                for (i, _), result in zip(good, results, strict=True):
                    outcomes[i] = result
                good = []
        down: DatabaseUnavailableError | None = None
        for i, parsed in good:
            if down is not None:
                outcomes[i] = down
                continue
            scheduled = []
            try:
                with self.db.session() as session:
                    outcomes[i] = self._apply(session, parsed, scheduled)
                self._committed([parsed], scheduled)
            except DatabaseUnavailableError as exc:
                outcomes[i] = down = exc
            except Exception as exc:
                outcomes[i] = exc
        assert all(o is not None for o in outcomes)
        return cast("list[IngestResult | Exception]", outcomes)

    def _parse(self, payload: Mapping[str, Any]) -> _Parsed:
        try:
            callback = parse_event_callback(payload)
        except MalformedEventError as exc:
            self.record_failure(payload, exc.reason)
            raise
        try:
            effect = parse_effect(callback)
        except MalformedEventError as exc:
            self.record_failure(payload, exc.reason, key=callback.dedupe_key)
            raise
        stored = clean({k: v for k, v in payload.items() if k != "token"})  # the legacy verification token
        return _Parsed(callback, effect, stored)

    def _apply(self, session: Session, parsed: _Parsed, scheduled: list[str]) -> IngestResult:
        """Record and apply one parsed event in ``session``'s transaction (the caller commits).

        Appends to ``scheduled`` the key of an embedding job it enqueued.
        """
        callback, effect = parsed.callback, parsed.effect
        queue = self.queue_factory(session)
        recorded = queue.enqueue_event(f"slack.{callback.event_type}", parsed.stored, key=callback.dedupe_key)
        if getattr(recorded, "duplicate", False):  # recorded by an earlier delivery
            return IngestResult(callback.dedupe_key, callback.event_type, True, type(effect).__name__)
        apply_effect(session, effect, callback.team_id)
        # One embedding job per minute is enough, and once its key is in the database every later enqueue of it
        # is a no-op that still costs two statements (the insert that conflicts, the read of the existing row).
        if isinstance(effect, MessagePosted | MessageChanged):
            now = self.clock()
            if _embed_due(now)[1] != self._embed_job_committed and _embed_due(now)[1] not in scheduled:
                scheduled.append(schedule_embeddings(queue, now))
        question = self._question(session, callback, effect)
        if question is not None:
            queue.enqueue_event(QUESTION_EVENT_TYPE, question.payload(), key=question.key)
        return IngestResult(
            callback.dedupe_key, callback.event_type, False, type(effect).__name__, question.key if question else None
        )

    def _committed(self, parsed: Sequence[_Parsed], scheduled: Sequence[str]) -> None:
        """Bookkeeping after a commit: remember the embedding job now in the database, log what was ingested."""
        if scheduled:
            self._embed_job_committed = max(self._embed_job_committed or "", *scheduled)
        for item in parsed:
            if isinstance(item.effect, Ignored):
                _log.info(
                    "slack event recorded, not handled", event_type=item.callback.event_type, reason=item.effect.reason
                )
            _log.debug("slack event ingested", event_key=item.callback.dedupe_key, event_type=item.callback.event_type)

    def _question(self, session: Session, callback: EventCallback, effect: Any) -> Question | None:
        if not isinstance(effect, MessagePosted):
            return None
        record = effect.record
        conversation = record.channel_type or channel_type(session, record.channel_id)
        reason = question_reason(
            record,
            mention=effect.mention,
            conversation_type=conversation,
            bot=self.bot,
            allowed_channels=self.allowed_channels,
            bot_in_thread=lambda: bot_in_thread(
                session, record.channel_id, str(record.thread_ts), self.bot.user_id, self.bot.bot_id
            ),
        )
        if reason is None or record.user_id is None:
            return None
        return Question(
            team_id=callback.team_id,
            channel_id=record.channel_id,
            ts=record.ts,
            thread_ts=record.thread_ts,
            reply_thread_ts=record.thread_ts or record.ts,
            user_id=record.user_id,
            text=clean(record.text),
            channel_type=conversation,
            reason=reason,
            source_event_id=callback.event_id,
            source_event_type=callback.event_type,
        )

    def record_failure(self, raw: Any, reason: str, key: str | None = None) -> None:
        """Record an unusable payload as a ``failed`` event with ``reason`` (once per key).

        Raises:
            DatabaseUnavailableError: the database is down (the caller must not ack).
        """
        text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
        if key is None:
            key = "malformed:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        payload = {
            "reason": reason,
            "raw": clean(text[:RAW_FAILED_MAX_CHARS]),
            "truncated": len(text) > RAW_FAILED_MAX_CHARS,
        }
        with self.db.session() as session:
            session.execute(
                pg_insert(Event)
                .values(
                    event_type=FAILED_EVENT_TYPE,
                    payload=payload,
                    dedupe_key=key,
                    status="failed",
                    error_message=clean(reason)[:4000],
                    processed_at=func.now(),
                )
                .on_conflict_do_nothing(index_elements=[Event.dedupe_key])
            )
        _log.warning("malformed slack event recorded as failed", reason=reason, key=key)
