"""Socket Mode ingestion: slack_sdk's ``websocket_client`` SocketModeClient feeding :class:`~slack.ingest.Ingester`.

Each ``events_api`` envelope is acked only **after** its transaction committed. When the database is down
nothing is acked and Slack redelivers later (dedupe keys absorb the repeats). A malformed envelope is
recorded as a ``failed`` event with its reason and acked, so the socket keeps flowing. The SDK reconnects on
``disconnect`` (``warning``, ``refresh_requested``) and on dropped connections; envelopes in flight at that
moment are redelivered by Slack and deduplicated here.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterable, Mapping
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
from slack.events import MalformedEventError, parse_envelope
from slack.ingest import Ingester, QueueFactory

_log = structlog.get_logger("athenaeum.slack.socket")

PING_INTERVAL_SECONDS = 10.0
CONCURRENCY = 10
STOP_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10.0
PING_TIMEOUT_RATIO = 0.8  # websocket-client needs ping_timeout < ping_interval


class _SocketModeClient(SocketModeClient):
    """slack_sdk's client, with a pong timeout: a dead link is noticed within ``ping_timeout``, and the reader
    wakes that often, so a stop or a reconnect never waits on the library's 10-second default."""

    ping_timeout: float = PING_INTERVAL_SECONDS * PING_TIMEOUT_RATIO

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
        concurrency: envelopes processed at once.
    """

    def __init__(
        self,
        app_token: str,
        web_client: WebClient,
        ingester: Ingester,
        *,
        ping_interval: float = PING_INTERVAL_SECONDS,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.ingester = ingester
        self.client = _SocketModeClient(
            app_token=app_token,
            web_client=web_client,
            ping_interval=ping_interval,
            concurrency=concurrency,
            logger=logging.getLogger("athenaeum.slack.socket_mode"),
            on_message_listeners=[self._on_raw_message],
        )
        self.client.ping_timeout = ping_interval * PING_TIMEOUT_RATIO
        self.client.message_listeners.append(self._on_message)
        self.stats = {"acked": 0, "duplicates": 0, "malformed": 0, "unacked_db_down": 0, "ignored": 0}
        self._stats_lock = threading.Lock()

    def start(self) -> None:
        """Open the connection (``apps.connections.open`` + WebSocket); the SDK's threads do the rest."""
        try:
            self.client.connect()
        except SlackApiError as exc:  # apps.connections.open refused the app token
            raise from_api_error("apps.connections.open", exc) from exc
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
        closer.join(max(0.0, deadline - time.monotonic()))
        _log.info("socket mode stopped", clean=not closer.is_alive(), **self.stats)
        return not closer.is_alive()

    def _handshake_done(self) -> bool:
        session = self.client.current_session
        sock = getattr(session, "sock", None)
        return bool(getattr(sock, "connected", False))

    def is_connected(self) -> bool:
        return bool(self.client.is_connected())

    # ------------------------------------------------------------------ listeners
    def _count(self, name: str) -> None:
        with self._stats_lock:
            self.stats[name] += 1

    def _on_raw_message(self, ws: Any, raw: str) -> None:
        """Frames that are not JSON never reach the message listeners: record them here."""
        try:
            json.loads(raw)
        except ValueError as exc:
            self._count("malformed")
            try:
                self.ingester.record_failure(raw, f"envelope is not JSON: {exc}")
            except DatabaseUnavailableError:
                _log.warning("database unavailable; malformed envelope not recorded")

    def _on_message(self, client: Any, message: dict[str, Any], raw: str | None) -> None:
        if not message:
            return  # not JSON: handled by _on_raw_message
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
        try:
            result = self.ingester.ingest(envelope.payload)
        except DatabaseUnavailableError:
            # No ack: Slack redelivers, and the dedupe key makes the redelivery count once.
            self._count("unacked_db_down")
            _log.warning(
                "database unavailable; envelope not acked",
                envelope_id=envelope.envelope_id,
                retry_attempt=envelope.retry_attempt,
            )
            return
        except MalformedEventError:
            self._count("malformed")
            self._ack(envelope.envelope_id)  # recorded as failed by the ingester
            return
        except DBAPIError as exc:
            # A database error (deadlock, statement timeout...) may be transient: no ack, Slack redelivers.
            self._count("unacked_db_down")
            _log.warning(
                "database error; envelope not acked",
                envelope_id=envelope.envelope_id,
                error=type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
            )
            return
        except Exception as exc:  # a poison event: isolate it with its reason, keep the socket flowing
            self._count("malformed")
            _log.exception("slack event could not be ingested", envelope_id=envelope.envelope_id)
            self._record_and_ack(
                envelope.payload,
                f"ingestion failed: {type(exc).__name__}: {exc}",
                envelope.envelope_id,
                key=_event_key(envelope.payload),
            )
            return
        if result.duplicate:
            self._count("duplicates")
        self._ack(envelope.envelope_id)

    def _record_and_ack(self, raw: Any, reason: str, envelope_id: Any, key: str | None = None) -> None:
        try:
            self.ingester.record_failure(raw, reason, key=key)
        except DatabaseUnavailableError:
            _log.warning("database unavailable; malformed envelope not recorded nor acked")
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
    handler = SocketModeIngestion(app_token, client.reads, ingester, ping_interval=ping_interval)
    handler.start()
    return handler
