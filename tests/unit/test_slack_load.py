"""The Python-only load script against a local endpoint that checks Slack's signature as slack.md specifies."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.performance.slack_load import run_load

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


class Endpoint(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.event_ids: list[str] = []
        self.retries: list[str] = []
        self.rejected = 0
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Endpoint

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        timestamp = self.headers.get("X-Slack-Request-Timestamp", "")
        expected = "v0=" + hmac.new(SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 300
        if not fresh or not hmac.compare_digest(expected, self.headers.get("X-Slack-Signature", "")):
            with self.server.lock:
                self.server.rejected += 1
            self.send_response(401)
            self.end_headers()
            return
        with self.server.lock:
            event_id = json.loads(body)["event_id"]
            if self.headers.get("X-Slack-Retry-Num"):
                self.server.retries.append(event_id)
            else:
                self.server.event_ids.append(event_id)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_every_request_is_signed_acked_and_redeliveries_repeat_an_event(endpoint: Endpoint) -> None:
    url = f"http://127.0.0.1:{endpoint.server_address[1]}/slack/events"
    report = run_load(url, SECRET, rate=400, seconds=0.2, threads=4, duplicates=0.1)
    assert report["requests"] == 80 and report["acked"] == 80 and report["errors"] == {}
    assert endpoint.rejected == 0
    assert len(set(endpoint.event_ids)) == len(endpoint.event_ids) == 80 - report["duplicates_sent"]
    assert len(endpoint.retries) == report["duplicates_sent"] == 8
    assert set(endpoint.retries) <= set(endpoint.event_ids) | {f"Ev{n:012d}" for n in range(80)}


def test_a_wrong_secret_is_reported_as_errors(endpoint: Endpoint) -> None:
    url = f"http://127.0.0.1:{endpoint.server_address[1]}/slack/events"
    report = run_load(url, "not-the-secret", rate=200, seconds=0.05, threads=2, duplicates=0)
    assert report["acked"] == 0 and report["errors"] == {"HTTP 401": 10}
