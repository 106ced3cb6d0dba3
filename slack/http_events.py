"""The optional HTTP Events API transport: ``POST /slack/events`` feeding the same :class:`~slack.ingest.Ingester`.

Every request must carry a valid ``X-Slack-Signature`` (v0 HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the
signing secret) and an ``X-Slack-Request-Timestamp`` within 5 minutes; anything else gets 401 and stores
nothing. ``url_verification`` is answered with its challenge. Events are answered 200 after their transaction
committed (same dedupe keys as Socket Mode, so Slack's retries count once), 503 while the database is down
(Slack retries), and 200 for malformed events (recorded as failed; a retry would not help).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.exc import DBAPIError

from database.errors import DatabaseUnavailableError
from slack.events import MalformedEventError
from slack.ingest import Ingester

EVENTS_PATH = "/slack/events"
MAX_BODY_BYTES = 1_000_000
SIGNATURE_WINDOW_SECONDS = 300  # enforced by SignatureVerifier

_log = structlog.get_logger("athenaeum.slack.http")


class HttpEventsServer:
    """A small threaded HTTP server for the Events API.

    Args:
        ingester: where verified events go.
        signing_secret: the app's signing secret (``SLACK_SIGNING_SECRET``).
        host: interface to bind.
        port: TCP port (0 picks a free one; see :attr:`port`).
        verifier: a ``SignatureVerifier`` (tests pass one with a fake clock).
    """

    def __init__(
        self,
        ingester: Ingester,
        signing_secret: str,
        *,
        host: str = "0.0.0.0",
        port: int = 3000,
        verifier: SignatureVerifier | None = None,
    ) -> None:
        self.ingester = ingester
        self.verifier = verifier or SignatureVerifier(signing_secret)
        outer = self

        class Handler(_Handler):
            server_ref = outer

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="slack-http-events", daemon=True
        )
        self._thread.start()
        _log.info("slack events endpoint listening", port=self.port, path=EVENTS_PATH)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, body: bytes, headers: Any) -> tuple[int, dict[str, Any]]:
        """Answer one request: ``(status, JSON body)``."""
        timestamp = headers.get("X-Slack-Request-Timestamp")
        signature = headers.get("X-Slack-Signature")
        try:
            valid = bool(timestamp and signature and self.verifier.is_valid(body, timestamp, signature))
        except (TypeError, ValueError):  # a timestamp that is not a number
            valid = False
        if not valid:
            _log.warning("slack request rejected: bad or missing signature")
            return 401, {"ok": False, "error": "invalid_signature"}
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {"ok": False, "error": "invalid_json"}
        if not isinstance(payload, dict):
            return 400, {"ok": False, "error": "invalid_payload"}
        if payload.get("type") == "url_verification":
            return 200, {"challenge": payload.get("challenge")}
        if payload.get("type") != "event_callback":
            return 200, {"ok": True}
        try:
            self.ingester.ingest(payload)
        except (DatabaseUnavailableError, DBAPIError):
            return 503, {"ok": False, "error": "database_unavailable"}  # Slack retries; the key dedupes
        except MalformedEventError:
            return 200, {"ok": True}  # recorded as failed with its reason
        return 200, {"ok": True}


class _Handler(BaseHTTPRequestHandler):
    server_ref: HttpEventsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != EVENTS_PATH:
            self._send(404, {"ok": False, "error": "not_found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, {"ok": False, "error": "too_large"})
            return
        body = self.rfile.read(length)
        status, answer = self.server_ref.handle(body, self.headers)
        self._send(status, answer)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start_http_events(
    *,
    port: int,
    signing_secret: str,
    bot_token: str,
    api_url: str,
    db: Any,
    queue_factory: Any,
    allowed_channels: Any = (),
    host: str = "0.0.0.0",
) -> HttpEventsServer:
    """Build and start the Events API endpoint from plain configuration values (for ``run --http PORT``).

    Raises:
        SlackAuthError: the bot token is invalid (``auth.test`` failed).
    """
    from slack.client import SlackClient

    bot = SlackClient(bot_token, base_url=api_url).auth_test()
    server = HttpEventsServer(Ingester(db, queue_factory, bot, allowed_channels), signing_secret, host=host, port=port)
    server.start()
    return server
