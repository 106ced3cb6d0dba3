"""Replies into Slack through the reply ledger: one message per answer (plus parts beyond the size limit).

``SlackWriter`` is the reply path's use of the Slack seam (``slack/client.py``): no automatic retry of
writes (a reset after Slack stored a post would post twice), 429 ``Retry-After`` honoured (a 429 means nothing
was stored, so repeating is safe), posts paced per channel. ``SlackReplySink`` implements ``ReplySink``:
native streaming (``chat.startStream/appendStream/stopStream``) with a fallback to a posted placeholder
updated by throttled ``chat.update``, the ledger written around every call, metadata on every reply
naming its request key so a retry can find a post whose outcome it never saw.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from agent import texts
from agent.mrkdwn import MESSAGE_LIMIT_CHARS, markdown_to_mrkdwn, split_message
from agent.questions import Question
from agent.replies import LedgerEntry, ReplyError, ReplyOutcomeUnknown, ledger_begin, ledger_update
from database import DatabaseConnection
from slack.client import SlackClient
from slack.errors import SlackConnectionError, SlackError, SlackServerError

_log = structlog.get_logger("athenaeum.replies")

METADATA_EVENT_TYPE = "athenaeum_reply"
STREAM_LIMIT_CHARS = 11_000  # markdown_text of a streamed message stays under Slack's 12,000
PACED_METHODS = frozenset({"chat.postMessage", "chat.startStream"})
READ_METHODS = frozenset({"conversations.replies", "auth.test"})


class SlackWriter:
    """The reply path's use of the Slack seam (``slack.client.SlackClient``).

    Writes are never retried on a connection error or a 5xx (Slack may have stored them): those become
    :class:`ReplyOutcomeUnknown` and the ledger decides. 429s are waited out (``Retry-After``) by the seam;
    posts to one channel are paced here.

    Args:
        token: the bot token.
        base_url: ``SLACK_API_URL``.
        post_interval: seconds between posts to one channel (Slack allows about one per second).
        sleep / clock: injectable for tests (``waits`` records every wait).
    """

    def __init__(
        self,
        token: str,
        base_url: str = "https://slack.com/api/",
        *,
        post_interval: float = 1.0,
        timeout: int = 30,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.post_interval = post_interval
        self._sleep = sleep
        self._clock = clock
        self._last_post: dict[str, float] = {}
        self._lock = threading.Lock()
        self.waits: list[float] = []
        # Pacing is done here (for stream starts too), so the seam's own post pacing is off.
        self.slack = SlackClient(token, base_url, timeout_seconds=timeout, post_interval_seconds=0.0, sleep=self._wait)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Call ``method``; raise :class:`ReplyOutcomeUnknown` when a write's outcome is unknown."""
        params = {k: v for k, v in params.items() if v is not None}
        is_read = method in READ_METHODS
        channel = params.get("channel") or params.get("channel_id")
        if method in PACED_METHODS and channel:
            self._pace(str(channel))
        try:
            return self.slack.read(method, **params) if is_read else self.slack.write(method, **params)
        except (SlackConnectionError, SlackServerError) as exc:
            if is_read:
                raise ReplyError(f"Slack {method}: {exc.code}") from exc
            raise ReplyOutcomeUnknown(f"Slack {method}: no clear answer ({exc.code}); it may have been stored") from exc
        except SlackError as exc:
            raise ReplyError(f"Slack {method} failed: {exc.code}") from exc

    def _pace(self, channel: str) -> None:
        with self._lock:
            now = self._clock()
            due = self._last_post.get(channel, float("-inf")) + self.post_interval
            wait = max(0.0, due - now)
            self._last_post[channel] = max(now, due)
        if wait > 0:
            self._wait(wait)

    def _wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self._sleep(seconds)


class SlackReplySink:
    """A ``ReplySink`` for one question in one Slack thread.

    Args:
        writer: the Slack write seam.
        db: the database holding the ledger (each ledger write commits at once).
        request_key: the event's dedupe key (or ``event:<id>``); tags the reply's metadata.
        channel_id / thread_ts: where the answer goes (``thread_ts`` is the question's thread, or its ts).
        question_ts: the user's message (gets the failure reaction).
        user_id / team_id: the recipient (native streaming needs them in threads).
        mode: ``native``, ``update`` or ``off`` (post only the final answer).
        update_interval: seconds between streamed updates.
        assistant_thread: the conversation is an assistant thread (a DM with the app), where statuses show.
    """

    def __init__(
        self,
        writer: SlackWriter,
        db: DatabaseConnection,
        *,
        request_key: str,
        event_id: int | None,
        channel_id: str,
        thread_ts: str,
        question_ts: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
        mode: str = "native",
        update_interval: float = 1.0,
        assistant_thread: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = writer
        self.db = db
        self.key = request_key
        self.event_id = event_id
        self.channel = channel_id
        self.thread_ts = thread_ts
        self.question_ts = question_ts
        self.user_id = user_id
        self.team_id = team_id
        self.mode = mode
        self.update_interval = update_interval
        self.assistant_thread = assistant_thread
        self._clock = clock
        self.ts: str | None = None
        self.extra_ts: list[str] = []
        self.streaming = False
        self.delivered = ""
        self._last_push = float("-inf")
        self.entry: LedgerEntry | None = None

    @classmethod
    def for_question(
        cls,
        writer: SlackWriter,
        db: DatabaseConnection,
        question: Question,
        *,
        mode: str = "native",
        update_interval: float = 1.0,
    ) -> SlackReplySink:
        """The sink that answers ``question`` in its thread (the one mapping from a question to a reply)."""
        return cls(
            writer,
            db,
            request_key=question.request_key,
            event_id=question.event_id,
            channel_id=question.channel_id,
            thread_ts=question.reply_thread_ts or "",
            question_ts=question.ts,
            user_id=question.user_id,
            team_id=question.team_id,
            mode=mode,
            update_interval=update_interval,
            assistant_thread=question.channel_type == "im",
        )

    # ------------------------------------------------------------------ ReplySink
    def open(self) -> bool:
        with self.db.session() as s:
            entry = ledger_begin(s, self.key, self.event_id, self.channel, self.thread_ts)
        self.entry = entry
        if entry.state in ("final", "failed"):
            return True
        self.ts, self.extra_ts = entry.message_ts, list(entry.extra_ts)
        if entry.attempts > 1 and (entry.state == "unknown" or self.ts is None):
            self._reconcile(entry)
        if self.ts is not None:
            # A retry: never append to an old stream (appends are not idempotent); edit the message instead.
            if entry.streaming:
                self._stop_stream_quietly()
            self.mode = "update" if self.mode != "off" else "off"
        return False

    def status(self, text: str) -> None:
        if not self.assistant_thread:
            return  # Slack shows statuses only in assistant threads (DMs with the app): elsewhere it is a wasted call
        try:
            self.writer.call(
                "assistant.threads.setStatus", channel_id=self.channel, thread_ts=self.thread_ts, status=text[:50]
            )
        except ReplyError:
            pass  # not an assistant thread, or no scope: status is a nicety

    def update(self, text: str) -> None:
        if self.mode == "off" or not text.strip():
            return
        if self._clock() - self._last_push < self.update_interval:
            return
        self._push(text)

    def finish(self, text: str) -> None:
        parts = split_message(markdown_to_mrkdwn(text), MESSAGE_LIMIT_CHARS)
        if self.streaming and text.startswith(self.delivered) and len(text) <= STREAM_LIMIT_CHARS:
            rest = text[len(self.delivered) :]
            self.writer.call(
                "chat.stopStream",
                channel=self.channel,
                ts=self.ts,
                markdown_text=rest or None,
                metadata=self._metadata(0),
            )
            self.streaming = False
            parts = []  # the streamed message (Markdown, up to STREAM_LIMIT_CHARS) holds the whole answer
            first_done = True
        else:
            if self.streaming:
                self._stop_stream_quietly()
            first_done = False
        if not first_done:
            if not self._ensure_message(parts[0], post_mode=True):  # posted just now with this text: done
                self.writer.call(
                    "chat.update", channel=self.channel, ts=self.ts, text=parts[0], metadata=self._metadata(0)
                )
            parts = parts[1:]
        for index, part in enumerate(parts, start=1):
            if index <= len(self.extra_ts):  # posted by an earlier attempt: make it right
                self.writer.call("chat.update", channel=self.channel, ts=self.extra_ts[index - 1], text=part)
                continue
            ts = self._post(part, part_index=index)
            self.extra_ts.append(ts)
            self._ledger(extra_ts=self.extra_ts)
        self._ledger(state="final", streaming=False, delivered_chars=len(text))

    def note_retry(self, text: str) -> None:
        try:
            if self.streaming:
                self._stop_stream_quietly()
            if self.ts is None:
                self._ensure_message(text, post_mode=True)
            else:
                self.writer.call("chat.update", channel=self.channel, ts=self.ts, text=text, metadata=self._metadata(0))
            self.delivered = ""
            self._ledger(delivered_chars=0)
        except ReplyError as exc:
            _log.warning("could not show the retry note", reason=str(exc))

    def fail(self, text: str) -> None:
        if self.streaming:
            self._stop_stream_quietly()
        if self.ts is None:
            self._ensure_message(text, post_mode=True)
        else:
            self.writer.call("chat.update", channel=self.channel, ts=self.ts, text=text, metadata=self._metadata(0))
        if self.question_ts:
            try:
                self.writer.call(
                    "reactions.add", channel=self.channel, timestamp=self.question_ts, name=texts.FAILURE_REACTION
                )
            except ReplyError:
                pass
        self._ledger(state="failed")

    # ------------------------------------------------------------------ internals
    def _metadata(self, part: int) -> dict[str, Any]:
        return {"event_type": METADATA_EVENT_TYPE, "event_payload": {"request_key": self.key, "part": part}}

    def _ledger(self, **fields: Any) -> None:
        with self.db.session() as s:
            ledger_update(s, self.key, **fields)

    def _post(self, text: str, *, part_index: int) -> str:
        try:
            response = self.writer.call(
                "chat.postMessage",
                channel=self.channel,
                thread_ts=self.thread_ts,
                text=text,
                metadata=self._metadata(part_index),
                unfurl_links=False,
                unfurl_media=False,
            )
        except ReplyOutcomeUnknown:
            self._ledger(state="unknown")
            raise
        return str(response["ts"])

    def _ensure_message(self, initial: str, *, post_mode: bool = False) -> bool:
        """Start the reply message unless it exists; ``True`` when a message was posted with ``initial`` now."""
        if self.ts is not None:
            return False
        if self.mode == "native" and not post_mode:
            try:
                response = self.writer.call(
                    "chat.startStream",
                    channel=self.channel,
                    thread_ts=self.thread_ts,
                    recipient_user_id=self.user_id,
                    recipient_team_id=self.team_id,
                )
                self.ts, self.streaming = str(response["ts"]), True
                self._ledger(state="posted", message_ts=self.ts, stream_mode="native", streaming=True)
                return False
            except ReplyOutcomeUnknown:
                self._ledger(state="unknown")
                raise
            except ReplyError as exc:
                _log.info("native streaming unavailable; posting and updating instead", reason=str(exc))
                self.mode = "update"
        self.ts = self._post(initial or texts.PLACEHOLDER, part_index=0)
        self._ledger(state="posted", message_ts=self.ts, stream_mode=self.mode, streaming=False)
        return bool(initial)

    def _push(self, text: str) -> None:
        self._last_push = self._clock()
        if self.ts is None:
            self._ensure_message(markdown_to_mrkdwn(text)[:MESSAGE_LIMIT_CHARS])
            if not self.streaming:
                self.delivered = text
                return
        if self.streaming:
            if text.startswith(self.delivered) and len(text) <= STREAM_LIMIT_CHARS:
                delta = text[len(self.delivered) :]
                if delta:
                    self.writer.call("chat.appendStream", channel=self.channel, ts=self.ts, markdown_text=delta)
                    # The fence is ``self.delivered``: only this attempt appends to its stream, and a later attempt
                    # never appends to it (it edits the message), so the count is stored once, at the end.
                    self.delivered = text
                return
            self._stop_stream_quietly()  # regenerated or too long: continue by editing the message
        first = split_message(markdown_to_mrkdwn(text), MESSAGE_LIMIT_CHARS)[0]
        self.writer.call("chat.update", channel=self.channel, ts=self.ts, text=first)
        self.delivered = text

    def _stop_stream_quietly(self) -> None:
        try:
            self.writer.call("chat.stopStream", channel=self.channel, ts=self.ts, metadata=self._metadata(0))
        except ReplyError:
            pass  # expired streams are already stopped
        self.streaming = False
        self.mode = "update" if self.mode == "native" else self.mode
        self._ledger(streaming=False)

    def _reconcile(self, entry: LedgerEntry) -> None:
        """Look in the thread for replies tagged with our key before posting again."""
        response = self.writer.call(
            "conversations.replies", channel=self.channel, ts=self.thread_ts, include_all_metadata=True, limit=200
        )
        found: dict[int, str] = {}
        for message in response.get("messages", []):
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == METADATA_EVENT_TYPE and payload.get("request_key") == self.key:
                found.setdefault(int(payload.get("part", 0)), str(message["ts"]))
        if 0 in found:
            self.ts = found[0]
            self.extra_ts = [found[i] for i in sorted(found) if i > 0]
            _log.warning("reconciled a reply whose post was not recorded", request_key=self.key, ts=self.ts)
            self._ledger(
                state="posted",
                message_ts=self.ts,
                extra_ts=self.extra_ts,
                streaming=False,
                reconciled=entry.reconciled + 1,
            )
        else:
            self._ledger(state="intent")
