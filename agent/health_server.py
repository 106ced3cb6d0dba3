"""The HTTP server inside ``run``: health probes, Prometheus metrics and the admin dashboard.

Routes:

- ``GET /healthz``  200 while the process serves requests (liveness; never touches the database).
- ``GET /readyz``   200 or 503 with a JSON body naming each check (``agent.readiness``).
- ``GET /metrics``  Prometheus text format (``agent.metrics``).
- ``GET /``         the dashboard (``agent.dashboard``).
- ``POST /login``, ``POST /logout``, ``POST /events/<id>/retry``  admin actions (``agent.admin_auth``).

A stdlib ``ThreadingHTTPServer`` on its own daemon thread: a slow scrape never blocks a probe.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import structlog

from agent import dashboard
from agent.admin_auth import AdminAuth, same_origin
from agent.errors import ConfigError
from agent.metrics import CONTENT_TYPE, Metrics
from agent.readiness import Readiness
from database import DatabaseConnection

_log = structlog.get_logger("athenaeum.health")

HEALTH_PATHS = ("/healthz", "/readyz", "/metrics", "/")
MAX_FORM_BYTES = 4096
_RETRY_PATH = re.compile(r"^/events/(\d{1,18})/retry$")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"


class HealthServer:
    """Serve probes, metrics and the dashboard on ``host:port`` from a background thread.

    Args:
        port: TCP port; 0 picks a free one (tests). ``run`` does not start the server when
            ``HEALTH_PORT=0``.
        readiness: the checks behind ``/readyz``.
        metrics: the registry behind ``/metrics`` (``None``: 404).
        db: the database the dashboard reads (``None``: no dashboard).
        admin_token: enables admin actions (retry) in the dashboard.
        host: interface to bind (all interfaces by default, as a container needs).
    """

    def __init__(
        self,
        port: int,
        readiness: Readiness,
        metrics: Metrics | None = None,
        db: DatabaseConnection | None = None,
        admin_token: str | None = None,
        host: str = "0.0.0.0",
    ) -> None:
        self.readiness = readiness
        self.metrics = metrics
        self.db = db
        self.auth = AdminAuth(admin_token)
        self.renderer = dashboard.DashboardRenderer()
        self.started_monotonic = time.monotonic()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful when constructed with 0)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (for tests and logs)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="athenaeum-health", daemon=True)
        self._thread.start()
        _log.info("health server listening", port=self.port, paths=",".join(HEALTH_PATHS))

    def stop(self) -> None:
        """Stop serving (if started) and close the socket."""
        if self._thread is not None:  # shutdown() would wait forever for a loop that never ran
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()


def _handler_for(server: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        app = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    app: HealthServer
    server_version = "athenaeum"
    sys_version = ""

    # ----------------------------------------------------------------------------- routing
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            uptime = round(time.monotonic() - self.app.started_monotonic, 3)
            self._json(HTTPStatus.OK, {"status": "ok", "uptime_seconds": uptime})
        elif path == "/readyz":
            report = self.app.readiness.evaluate()
            self._json(HTTPStatus.OK if report.ready else HTTPStatus.SERVICE_UNAVAILABLE, report.as_dict())
        elif path == "/metrics" and self.app.metrics is not None:
            self._send(HTTPStatus.OK, self.app.metrics.render(), CONTENT_TYPE)
        elif path == "/" and self.app.db is not None:
            self._dashboard()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found", "paths": list(HEALTH_PATHS)})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if self.app.db is None or not self.app.auth.enabled:
            self._json(HTTPStatus.FORBIDDEN, {"error": "admin actions are disabled: set ADMIN_TOKEN"})
            return
        if not same_origin(self.headers.get("Origin"), self.headers.get("Referer"), self.headers.get("Host")):
            self._json(HTTPStatus.FORBIDDEN, {"error": "cross-origin request refused"})
            return
        form = self._form()
        if form is None:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "form too large"})
            return
        if path == "/login":
            if self.app.auth.check_token(form.get("token", "")):
                _log.info("dashboard admin signed in", client=self.client_address[0])
                self._redirect("/", cookie=self.app.auth.new_session_cookie())
            else:
                _log.warning("dashboard sign-in refused", client=self.client_address[0])
                self._redirect("/?" + urlencode({"error": "wrong admin token"}))
            return
        nonce = self.app.auth.session_nonce(self.headers.get("Cookie"))
        if not self.app.auth.check_csrf(nonce, form.get("csrf")):
            self._json(HTTPStatus.FORBIDDEN, {"error": "sign in first (missing or invalid session or CSRF token)"})
            return
        if path == "/logout":
            self._redirect("/", cookie=self.app.auth.clear_cookie())
            return
        match = _RETRY_PATH.match(path)
        if match is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        event_id = int(match.group(1))
        try:
            retried = dashboard.retry_event(self.app.db, event_id)
        except Exception as exc:
            _log.warning("dashboard retry failed", event_id=event_id, error=type(exc).__name__)
            self._redirect("/?" + urlencode({"error": f"could not retry event {event_id}: database error"}))
            return
        _log.info("dashboard retry", event_id=event_id, requeued=retried)
        note = f"event {event_id} requeued" if retried else f"event {event_id} is not failed; nothing changed"
        self._redirect("/?" + urlencode({"ok" if retried else "error": note}))

    # ----------------------------------------------------------------------------- pages
    def _dashboard(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        nonce = self.app.auth.session_nonce(self.headers.get("Cookie"))
        context: dict[str, Any] = {
            "admin_enabled": self.app.auth.enabled,
            "signed_in": nonce is not None,
            "csrf": self.app.auth.csrf_token(nonce) if nonce else None,
            "message": next(iter(query.get("ok") or query.get("error") or []), None),
            "message_bad": "error" in query,
        }
        status = HTTPStatus.OK
        try:
            data = dashboard.collect(self.app.db)  # type: ignore[arg-type]
        except Exception as exc:
            _log.warning("dashboard could not read the database", error=type(exc).__name__)
            data, status = None, HTTPStatus.SERVICE_UNAVAILABLE
            context["error"] = type(exc).__name__
        html = self.app.renderer.render(data, **context)
        self._send(status, html.encode(), "text/html; charset=utf-8", {"Content-Security-Policy": _HTML_CSP})

    # ----------------------------------------------------------------------------- plumbing
    def _form(self) -> dict[str, str] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            return None
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        return {k: v[0] for k, v in parse_qs(body).items()}

    def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body, default=str).encode(), "application/json")

    def _redirect(self, location: str, cookie: str | None = None) -> None:
        headers = {"Location": location}
        if cookie:
            headers["Set-Cookie"] = cookie
        self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", headers)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes arrive every few seconds: keep them at debug level, never with cookies or bodies.
        _log.debug("http request", method=self.command, path=urlsplit(self.path).path, client=self.client_address[0])


def start_health_server(
    port: int,
    db: DatabaseConnection,
    pool: Any,
    metrics: Metrics | None,
    *,
    admin_token: str | None = None,
    slack_connected: Any = None,
    host: str = "0.0.0.0",
) -> HealthServer | None:
    """Build the readiness checks ``run`` needs and start the server; ``None`` when ``port`` is 0.

    Raises:
        ConfigError: the port cannot be bound (in use, or privileged).

    Args:
        port: ``HEALTH_PORT`` (0 disables the server).
        db: the service's database.
        pool: the ``WorkerPool``.
        metrics: the service's metrics.
        admin_token: ``ADMIN_TOKEN``.
        slack_connected: when Slack is configured, a callable returning whether Socket Mode is connected.
        host: interface to bind.
    """
    if port == 0:
        _log.info("health server disabled (HEALTH_PORT=0)")
        return None
    from agent.readiness import database_check, migrations_check, pool_check

    readiness = Readiness()
    readiness.add_check("database", database_check(db))
    readiness.add_check("migrations", migrations_check(db))
    readiness.add_check("worker_pool", pool_check(pool))
    if slack_connected is not None:
        readiness.add_check("slack", lambda: (True, "") if slack_connected() else (False, "Socket Mode disconnected"))
    try:
        server = HealthServer(port, readiness, metrics=metrics, db=db, admin_token=admin_token, host=host)
    except OSError as exc:
        raise ConfigError(
            f"HEALTH_PORT={port} is not available ({exc.strerror or exc}): choose another port, or 0 to turn "
            "the health server off"
        ) from exc
    server.start()
    return server
