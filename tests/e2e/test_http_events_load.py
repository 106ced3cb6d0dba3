"""The load script against the real HTTP Events API endpoint: every signed request acked, every distinct
event stored once, every redelivery dropped (fault row 5's replay half, under concurrent load)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from agent import EventProcessor
from database import DatabaseConnection
from slack.client import BotIdentity
from slack.http_events import EVENTS_PATH, HttpEventsServer
from slack.ingest import Ingester
from tests.performance.slack_load import run_load

SECRET = "load-test-signing-secret"


@pytest.fixture
def endpoint(db: DatabaseConnection) -> Iterator[str]:
    ingester = Ingester(db, lambda s: EventProcessor(s, "http-load"), BotIdentity("T0LOAD", "U0BOT", "B0BOT"))
    server = HttpEventsServer(ingester, SECRET, host="127.0.0.1", port=0)
    server.start()
    yield f"http://127.0.0.1:{server.port}{EVENTS_PATH}"
    server.stop()


def test_concurrent_signed_events_and_redeliveries_are_stored_once(endpoint: str, db: DatabaseConnection) -> None:
    """Fault row 5 (replay under load): 150 signed requests from 6 threads, one in ten a redelivery."""
    report = run_load(endpoint, SECRET, rate=300, seconds=0.5, threads=6, duplicates=0.1)
    assert report["requests"] == report["acked"] == 150 and report["errors"] == {}
    with db.session() as s:
        rows, keys = s.execute(
            text("SELECT count(*), count(DISTINCT dedupe_key) FROM events WHERE event_type = 'slack.app_mention'")
        ).one()
    assert rows == keys == 150 - report["duplicates_sent"] == 135


def test_a_wrong_secret_stores_nothing(endpoint: str, db: DatabaseConnection) -> None:
    """Fault row 5 (bad signature under load): every request 401, nothing stored."""
    report = run_load(endpoint, "not-the-secret", rate=200, seconds=0.1, threads=2, duplicates=0)
    assert report["acked"] == 0 and report["errors"] == {"HTTP 401": 20}
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM events")).scalar() == 0
