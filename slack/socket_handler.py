"""Socket Mode ingestion: slack_sdk's ``websocket_client`` SocketModeClient feeding :class:`~slack.ingest.Ingester`.

Each ``events_api`` envelope is acked only **after** its transaction committed. When the database is down
nothing is acked and Slack redelivers later (dedupe keys absorb the repeats). A malformed envelope is
recorded as a ``failed`` event with its reason and acked, so the socket keeps flowing. The SDK reconnects on
``disconnect`` (``warning``, ``refresh_requested``) and on dropped connections; envelopes in flight at that
moment are redelivered by Slack and deduplicated here.

The hot path is kept short (the ack-latency target is p99 < 20 ms on a busy 2-core machine): the WebSocket
reader decodes each frame once (C-speed UTF-8 check instead of websocket-client's per-byte Python validator)
and hands ``events_api`` envelopes straight to the group committer (:mod:`slack.group_commit`), skipping the
SDK's queue thread and listener pool. Envelopes that arrive together are written in one transaction and each
is acked after that commit; if the group fails for any reason but a lost database, each envelope is retried
in its own transaction. Other envelope types (``hello``, ``disconnect``, ``slash_commands``...) still go
through the SDK's own processing.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.socket_mode.websocket_client import SocketModeClient
from slack_sdk.web import WebClient
from sqlalchemy.exc import DBAPIError

from database import DatabaseConnection
from database.errors import DatabaseUnavailableError
from slack.client import SlackClient, from_api_error
from slack.events import Envelope, MalformedEventError, parse_envelope
from slack.group_commit import DEFAULT_MAX_BATCH, GroupCommitter
from slack.ingest import Ingester, IngestResult, QueueFactory

_log = structlog.get_logger("athenaeum.slack.socket")

PING_INTERVAL_SECONDS = 10.0
CONCURRENCY = 2  # the SDK's listener threads: only hello, disconnect and non-event envelopes go there now
#: Threads writing ``events_api`` groups. Several, because on a busy machine one round trip to PostgreSQL now
#: and then stalls for tens of milliseconds (the backend waits for a CPU): with one thread every envelope
#: behind it waits too; with 8, the others flow past (ack p99 with two extra CPU burners on 2 cores:
#: 1 thread 250-400 ms, 4 threads 50-106 ms, 8 threads 18-40 ms).
INGEST_THREADS = 8
STOP_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10.0
PING_TIMEOUT_RATIO = 0.8  # websocket-client needs ping_timeout < ping_interval


@dataclass(frozen=True)
class _Unusable:
    """A frame or envelope that cannot be ingested: recorded as a failed event, acked when it has an id."""

    raw: Any
    reason: str
    envelope_id: Any = None


class _SocketModeClient(SocketModeClient):
    """slack_sdk's client, with a pong timeout (a dead link is noticed within ``ping_timeout``, and the reader
    wakes that often, so a stop or a reconnect never waits on the library's 10-second default) and a router
    that takes ``events_api`` envelopes off the reader thread's hands before the SDK's queue sees them."""

    ping_timeout: float = PING_INTERVAL_SECONDS * PING_TIMEOUT_RATIO
    #: Called with each text frame; returns True when it took the frame (the SDK then never sees it).
    route: Any = None

    def enqueue_message(self, message: str | bytes) -> None:
        # Frames arrive as bytes (see _run_current_session): decoding checks UTF-8 in C.
        if isinstance(message, bytes):
            try:
                text = message.decode("utf-8")
            except UnicodeDecodeError as exc:
                if self.route is not None:
                    self.route(_Unusable(message.decode("utf-8", "replace"), f"envelope is not UTF-8: {exc}"))
                return
        else:
            text = message
        if self.route is not None and self.route(text):
            return
        super().enqueue_message(text)

    def _run_current_session(self) -> None:
        if self.current_session is not None:
            try:
                self.current_session.run_forever(
                    ping_interval=self.ping_interval,
                    ping_timeout=self.ping_timeout,
                    http_proxy_host=self.http_proxy_host,
                    http_proxy_port=self.http_proxy_port,
                    http_proxy_auth=self.http_proxy_auth,
                    proxy_type=self.proxy_type,
                    # websocket-client validates UTF-8 in pure Python, byte by byte (about 0.1 ms per small
                    # envelope, 6 ms per 40 kB, on the reader thread and under the GIL); enqueue_message
                    # decodes strictly instead, which checks the same thing in C.
                    skip_utf8_validation=True,
                )
            except Exception:
                self.logger.exception("socket mode session failed; reconnecting")
                if self.current_session is not None:
                    self.current_session.close()


class SocketModeIngestion:
    """Receives Socket Mode envelopes and ingests them; ``start()`` returns once connected.

    Args:
        app_token: the app-level token (``xapp-…``).
        web_client: a WebClient whose ``base_url`` is the Slack API (used for ``apps.connections.open``).
        ingester: where events go.
        ping_interval: seconds between WebSocket pings; also how often a dead session is noticed.
        concurrency: the SDK's listener threads (envelopes other than ``events_api``).
        ingest_threads: ``events_api`` batches written at once (see :mod:`slack.group_commit`).
        max_batch: the most envelopes written in one transaction.
    """

    def __init__(
        self,
        app_token: str,
        web_client: WebClient,
        ingester: Ingester,
        *,
        ping_interval: float = PING_INTERVAL_SECONDS,
        concurrency: int = CONCURRENCY,
        ingest_threads: int = INGEST_THREADS,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.ingester = ingester
        self.stats = {"acked": 0, "duplicates": 0, "malformed": 0, "unacked_db_down": 0, "ignored": 0}
        self._stats_lock = threading.Lock()
        self.committer: GroupCommitter[Envelope | _Unusable] = GroupCommitter(
            self._ingest_batch, threads=ingest_threads, max_batch=max_batch, name="slack-socket-ingest"
        )
        self.client = _SocketModeClient(
            app_token=app_token,
            web_client=web_client,
            ping_interval=ping_interval,
            concurrency=concurrency,
            logger=logging.getLogger("athenaeum.slack.socket_mode"),
        )
        self.client.ping_timeout = ping_interval * PING_TIMEOUT_RATIO
        self.client.route = self._route
        self.client.message_listeners.append(self._on_message)

    def start(self) -> None:
        """Open the connection (``apps.connections.open`` + WebSocket); the SDK's threads do the rest."""
        try:
            self.client.connect()
        except BaseException as exc:
            self.committer.stop(0.0)  # its threads would otherwise wait for envelopes forever
            if isinstance(exc, SlackApiError):  # apps.connections.open refused the app token
                raise from_api_error("apps.connections.open", exc) from exc
            raise
        # connect() only prepares the session; wait until the runner thread has it open, or the SDK's monitor
        # sees "no socket" and opens a second connection.
        deadline = time.monotonic() + CONNECT_TIMEOUT_SECONDS
        while not self._handshake_done() and time.monotonic() < deadline:
            time.sleep(0.01)
        _log.info("socket mode connected", connected=self._handshake_done())

    def stop(self, timeout_seconds: float = STOP_TIMEOUT_SECONDS) -> bool:
        """Close the connection and wait (bounded) for envelopes being processed; returns whether it finished.

        Unacked envelopes are simply redelivered by Slack to another connection or after a restart.
        """
        client = self.client
        deadline = time.monotonic() + timeout_seconds
        # slack_sdk's close() disconnects first and stops its session runner second; in between the runner
        # may call run_forever() again on the closed app, which reconnects and blocks. Stop the runners first.
        client.closed = True
        client.auto_reconnect_enabled = False
        for runner in (client.current_session_runner, client.current_app_monitor, client.message_processor):
            runner.event.set()
        session_thread = client.current_session_runner.thread
        while session_thread is not None and session_thread.is_alive() and time.monotonic() < deadline:
            _shutdown_session(client.current_session)
            session_thread.join(0.1)
        closer = threading.Thread(target=client.close, name="slack-socket-close", daemon=True)
        closer.start()
        committed = self.committer.stop(max(0.0, deadline - time.monotonic()))
        closer.join(max(0.0, deadline - time.monotonic()))
        clean = committed and not closer.is_alive()
        _log.info("socket mode stopped", clean=clean, batches=self.committer.batches, **self.stats)
        return clean

    def _handshake_done(self) -> bool:
        session = self.client.current_session
        sock = getattr(session, "sock", None)
        return bool(getattr(sock, "connected", False))

    def is_connected(self) -> bool:
        return bool(self.client.is_connected())

    def batch_sizes(self) -> dict[int, int]:
        """Transactions written by the group committer so far, by envelopes per transaction (for metrics)."""
        return self.committer.batch_sizes()

    # ------------------------------------------------------------------ listeners
    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def _route(self, frame: str | _Unusable) -> bool:
        """On the reader thread: hand ``events_api`` envelopes and unusable frames to the group committer."""
        if isinstance(frame, _Unusable):
            self.committer.submit(frame)
            return True
        try:
            message = json.loads(frame)
        except ValueError as exc:
            self.committer.submit(_Unusable(frame, f"envelope is not JSON: {exc}"))
            return True
        if isinstance(message, dict) and message.get("type") != "events_api":
            return False  # hello, disconnect, other envelope types: the SDK's path (_on_message)
        try:
            self.committer.submit(parse_envelope(message))
        except MalformedEventError as exc:
            envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
            self.committer.submit(_Unusable(message, exc.reason, envelope_id))
        return True

    def _ingest_batch(self, batch: list[Envelope | _Unusable]) -> None:
        """On a committer thread: write the envelopes of ``batch`` in one transaction, then ack each one."""
        envelopes: list[Envelope] = []
        for item in batch:
            if isinstance(item, _Unusable):
                self._count("malformed")
                self._record_and_ack(item.raw, item.reason, item.envelope_id)
            else:
                envelopes.append(item)
        if envelopes:
            outcomes = self.ingester.ingest_many([e.payload for e in envelopes])
            for envelope, outcome in zip(envelopes, outcomes, strict=True):
                self._settle(envelope, outcome)

    def _on_message(self, client: Any, message: dict[str, Any], raw: str | None) -> None:
        """The SDK's listener, for every envelope that is not ``events_api`` (see :meth:`_route`)."""
        if not message:
            return
        kind = message.get("type")
        if kind == "hello":
            _log.info("socket mode hello", connections=message.get("num_connections"))
            return
        if kind == "disconnect":
            _log.info("socket mode disconnect requested", reason=message.get("reason"))
            return
        try:
            envelope = parse_envelope(message)
        except MalformedEventError as exc:
            self._count("malformed")
            self._record_and_ack(message, exc.reason, message.get("envelope_id"))
            return
        if envelope.type != "events_api":
            self._count("ignored")
            _log.info("socket mode envelope ignored", envelope_type=envelope.type)
            self._ack(envelope.envelope_id)
            return
        self._settle(envelope, _ingest_one(self.ingester, envelope))

    def _settle(self, envelope: Envelope, outcome: IngestResult | Exception) -> None:
        """Ack an ingested envelope; leave it unacked when the database failed (Slack redelivers)."""
        if isinstance(outcome, IngestResult):
            if outcome.duplicate:
                self._count("duplicates")
            self._ack(envelope.envelope_id)
        elif isinstance(outcome, DatabaseUnavailableError):
            # No ack: Slack redelivers, and the dedupe key makes the redelivery count once.
            self._count("unacked_db_down")
            _log.warning(
                "database unavailable; envelope not acked",
                envelope_id=envelope.envelope_id,
                retry_attempt=envelope.retry_attempt,
            )
        elif isinstance(outcome, MalformedEventError):
            self._count("malformed")
            self._ack(envelope.envelope_id)  # recorded as failed by the ingester
        elif isinstance(outcome, DBAPIError):
            # A database error (deadlock, statement timeout...) may be transient: no ack, Slack redelivers.
            self._count("unacked_db_down")
            _log.warning(
                "database error; envelope not acked",
                envelope_id=envelope.envelope_id,
                error=type(outcome.orig).__name__ if outcome.orig is not None else type(outcome).__name__,
            )
        else:  # a poison event: isolate it with its reason, keep the socket flowing
            self._count("malformed")
            _log.error(
                "slack event could not be ingested",
                envelope_id=envelope.envelope_id,
                exc_info=(type(outcome), outcome, outcome.__traceback__),
            )
            self._record_and_ack(
                envelope.payload,
                f"ingestion failed: {type(outcome).__name__}: {outcome}",
                envelope.envelope_id,
                key=_event_key(envelope.payload),
            )

    def _record_and_ack(self, raw: Any, reason: str, envelope_id: Any, key: str | None = None) -> None:
        try:
            self.ingester.record_failure(raw, reason, key=key)
        except DatabaseUnavailableError:
            _log.warning("database unavailable; malformed envelope not recorded nor acked")
            return
        except DBAPIError as exc:  # not recorded: leave it unacked so that Slack redelivers it
            _log.warning("malformed envelope not recorded nor acked", error=type(exc).__name__)
            return
        if isinstance(envelope_id, str) and envelope_id:
            self._ack(envelope_id)

    def _ack(self, envelope_id: str) -> None:
        try:
            self.client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id))
        except Exception as exc:  # the connection dropped after the commit: Slack redelivers, we dedupe
            _log.warning("ack not sent", envelope_id=envelope_id, error=type(exc).__name__)
            return
        self._count("acked")


def _ingest_one(ingester: Ingester, envelope: Envelope) -> IngestResult | Exception:
    try:
        return ingester.ingest(envelope.payload)
    except Exception as exc:
        return exc


def _shutdown_session(session: Any) -> None:
    """Close a WebSocketApp so that its reader wakes up: closing an fd does not wake a poll() on it, shutdown does."""
    if session is None:
        return
    raw = getattr(getattr(session, "sock", None), "sock", None)
    if raw is not None:
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    session.close()


def _event_key(payload: Mapping[str, Any]) -> str | None:
    team, event_id = payload.get("team_id"), payload.get("event_id")
    return f"{team}:{event_id}" if isinstance(team, str) and isinstance(event_id, str) else None


def start_socket_mode(
    *,
    app_token: str,
    bot_token: str,
    api_url: str,
    db: DatabaseConnection,
    queue_factory: QueueFactory,
    allowed_channels: Iterable[str] = (),
    ping_interval: float = PING_INTERVAL_SECONDS,
    ingest_threads: int = INGEST_THREADS,
) -> SocketModeIngestion:
    """Build and start Socket Mode ingestion from plain configuration values (for ``run``).

    Calls ``auth.test`` to learn the bot's identity, then connects. Stop it with ``.stop()``.

    Raises:
        SlackAuthError: a token is invalid (the message says which call failed).
        SlackError: Slack could not be reached.
    """
    client = SlackClient(bot_token, base_url=api_url)
    bot = client.auth_test()
    ingester = Ingester(db, queue_factory, bot, allowed_channels)
    handler = SocketModeIngestion(
        app_token, client.reads, ingester, ping_interval=ping_interval, ingest_threads=ingest_threads
    )
    handler.start()
    return handler
