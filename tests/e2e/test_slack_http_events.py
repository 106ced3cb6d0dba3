"""HTTP Events API mode: signature checks (fault-suite row 5), url_verification, same dedupe as Socket Mode."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from agent import EventProcessor
from database import DatabaseConnection
from slack.client import BotIdentity
from slack.http_events import HttpEventsServer
from slack.ingest import Ingester
from tests.fakes import slack_events as ev
from tests.fakes.slack import FakeSlack

SECRET = "test-signing-secret"
fake = FakeSlack()  # payload builder only


@pytest.fixture
def server(db: DatabaseConnection) -> Iterator[HttpEventsServer]:
    ingester = Ingester(db, lambda s: EventProcessor(s, "http"), BotIdentity("T0FAKE", "UBOT", "BBOT"))
    srv = HttpEventsServer(ingester, SECRET, host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.stop()


def sign(body: bytes, ts: int, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def post(server: HttpEventsServer, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/slack/events",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def signed(body: bytes, ts: int | None = None) -> dict[str, str]:
    ts = ts or int(time.time())
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sign(body, ts)}


def stored(db: DatabaseConnection) -> int:
    with db.session() as s:
        return int(s.execute(text("SELECT count(*) FROM events")).scalar_one())


def test_url_verification_is_answered(server: HttpEventsServer) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"}).encode()
    assert post(server, body, signed(body)) == (200, {"challenge": "abc123"})


def test_bad_requests_get_401_and_store_nothing(server: HttpEventsServer, db: DatabaseConnection) -> None:
    """Row 5: bad signature, stale timestamp, altered body, missing headers, non-numeric timestamp."""
    body = json.dumps(fake.event_callback(ev.message("C1", "1700000300.000001", "hi"))).encode()
    now = int(time.time())
    cases = [
        {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": sign(body, now, "wrong-secret")},
        {"X-Slack-Request-Timestamp": str(now - 301), "X-Slack-Signature": sign(body, now - 301)},
        {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + "0" * 64},
        {},
        {"X-Slack-Request-Timestamp": str(now)},
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": sign(body, now)},
    ]
    for headers in cases:
        assert post(server, body, headers)[0] == 401, headers
    altered = body.replace(b'"hi"', b'"hacked"')
    assert post(server, altered, signed(body))[0] == 401
    assert stored(db) == 0


def test_valid_events_are_ingested_and_replays_deduped(server: HttpEventsServer, db: DatabaseConnection) -> None:
    body = json.dumps(
        fake.event_callback(ev.app_mention("C1", "1700000301.000001", "<@UBOT> q"), event_id="EvHttp")
    ).encode()
    assert post(server, body, signed(body))[0] == 200
    replay = {**signed(body), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert post(server, body, replay)[0] == 200
    with db.session() as s:
        rows = s.execute(text("SELECT event_type, dedupe_key FROM events ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [
        ("slack.app_mention", "T0FAKE:EvHttp"),
        ("slack.question", "T0FAKE:C1:1700000301.000001"),
    ]
