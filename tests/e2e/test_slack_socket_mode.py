"""Socket Mode ingestion end to end: fake Slack (HTTP + WebSocket) -> real slack_sdk -> real PostgreSQL.

Covers fault-suite rows 1, 2, 3, 4 and 6 of reliability.md, and malformed envelopes.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import text

from agent import EventProcessor
from database import DatabaseConnection
from slack.errors import SlackAuthError
from slack.socket_handler import SocketModeIngestion, start_socket_mode
from tests.e2e.conftest import WAIT, count, refuse_message_inserts, set_connections
from tests.fakes import slack_events as ev
from tests.fakes.slack import FakeSlack


@pytest.fixture
def handler(start_handler) -> SocketModeIngestion:
    return start_handler()


def test_the_same_event_three_times_is_acked_thrice_and_stored_once(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion
) -> None:
    """Row 1: two deliveries with retry_attempt 0 and one real retry: all acked; one row; one question."""
    payload = fake.event_callback(ev.app_mention("C1", "1700000100.000001", "<@UBOT> why?"), event_id="EvDup")
    ids = [
        fake.send_envelope(payload),
        fake.send_envelope(payload),
        fake.send_envelope(payload, retry_attempt=1, retry_reason="timeout"),
    ]
    assert fake.wait_for_acks(ids, WAIT)
    assert count(db, "SELECT count(*) FROM events WHERE dedupe_key = 'T0FAKE:EvDup'") == 1
    assert count(db, "SELECT count(*) FROM events WHERE event_type = 'slack.question'") == 1
    assert count(db, "SELECT count(*) FROM slack_messages") == 1


def test_message_and_app_mention_twins_become_one_question(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion
) -> None:
    """Row 2."""
    ts = "1700000101.000001"
    ids = [
        fake.send_envelope(fake.event_callback(ev.message("C1", ts, "<@UBOT> q"))),
        fake.send_envelope(fake.event_callback(ev.app_mention("C1", ts, "<@UBOT> q"))),
    ]
    assert fake.wait_for_acks(ids, WAIT)
    assert count(db, "SELECT count(*) FROM events WHERE event_type = 'slack.question'") == 1
    assert count(db, "SELECT count(*) FROM events WHERE event_type LIKE 'slack.%'") == 3


def test_no_ack_while_the_database_is_down_then_the_redelivery_is_stored_once(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion, pg_server: Any, database_url: str
) -> None:
    """Row 3: database unreachable -> no ack; Slack redelivers after recovery -> stored once, one question."""
    payload = fake.event_callback(
        ev.message("D1", "1700000102.000001", "help me", channel_type="im"), event_id="EvDown"
    )
    set_connections(pg_server, database_url, False)
    try:
        first = fake.send_envelope(payload)
        assert fake.wait_for(lambda: handler.stats["unacked_db_down"] >= 1, WAIT)
        assert first not in fake.acks
    finally:
        set_connections(pg_server, database_url, True)
    again = fake.send_envelope(payload, retry_attempt=1, retry_reason="timeout")
    assert fake.wait_for_acks([again], WAIT)
    assert first not in fake.acks
    assert count(db, "SELECT count(*) FROM events WHERE dedupe_key = 'T0FAKE:EvDown'") == 1
    assert count(db, "SELECT count(*) FROM events WHERE event_type = 'slack.question'") == 1


def test_a_database_error_is_not_acked_and_the_redelivery_is_stored(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion
) -> None:
    """A failing statement (not a lost connection) must not be acked as if it were stored."""
    refuse_message_inserts(db)
    payload = fake.event_callback(ev.message("C1", "1700000106.000001", "later"), event_id="EvErr")
    first = fake.send_envelope(payload)
    assert fake.wait_for(lambda: handler.stats["unacked_db_down"] >= 1, WAIT)
    assert first not in fake.acks
    assert count(db, "SELECT count(*) FROM events") == 0  # the whole transaction rolled back
    with db.session() as s:
        s.execute(text("DROP TRIGGER refuse ON slack_messages"))
    again = fake.send_envelope(payload, retry_attempt=1, retry_reason="timeout")
    assert fake.wait_for_acks([again], WAIT)
    assert count(db, "SELECT count(*) FROM slack_messages") == 1


def test_a_slow_insert_and_a_concurrent_redelivery_store_one_row(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion
) -> None:
    """Row 4: the first delivery is stuck in its transaction when Slack retries; both end acked, one row."""
    payload = fake.event_callback(ev.message("C1", "1700000103.000001", "slow"), event_id="EvSlow")
    blocker = db.new_session()
    blocker.execute(text("LOCK TABLE slack_messages IN EXCLUSIVE MODE"))
    try:
        first = fake.send_envelope(payload)
        retry = fake.send_envelope(payload, retry_attempt=1, retry_reason="timeout")
        # Both deliveries are now waiting on the lock (or on the first one's dedupe key).
        assert fake.wait_for(
            lambda: (
                count(
                    db,
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                    "'Lock' AND datname = current_database()",
                )
                >= 1
            ),
            WAIT,
        )
        assert first not in fake.acks and retry not in fake.acks
    finally:
        blocker.rollback()
        blocker.close()
    assert fake.wait_for_acks([first, retry], WAIT)
    assert count(db, "SELECT count(*) FROM events WHERE dedupe_key = 'T0FAKE:EvSlow'") == 1
    assert count(db, "SELECT count(*) FROM slack_messages") == 1


@pytest.mark.parametrize("how", ["refresh_requested", "warning", "dropped"])
def test_reconnects_without_losing_or_doubling_events(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion, how: str
) -> None:
    """Row 6: disconnect (refresh_requested, warning) or a dropped connection mid-stream."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def burst(start: int, n: int) -> None:
        for i in range(start, start + n):
            payload = fake.event_callback(ev.message("C1", f"1700000200.{i:06d}", f"m{i}"), event_id=f"Ev{i}")
            sent.append((fake.send_envelope(payload), payload))

    before = fake.connection_count()
    burst(0, 20)
    if how == "dropped":
        fake.drop_connections()
    else:
        fake.disconnect(how)
    assert fake.wait_for_connections(before + 1, WAIT)
    burst(20, 20)
    # Slack redelivers whatever was not acked (an envelope lost with the old connection).
    assert fake.wait_for(lambda: len(fake.acks) >= 20, WAIT)
    for envelope_id, payload in sent:
        if envelope_id not in fake.acks:
            fake.send_envelope(payload, retry_attempt=1, retry_reason="timeout")
    assert fake.wait_for(lambda: count(db, "SELECT count(*) FROM slack_messages") == 40, WAIT)
    assert count(db, "SELECT count(*) FROM events WHERE event_type = 'slack.message'") == 40
    if how != "dropped":
        old = fake.socket.connections[before - 1]
        assert fake.wait_for(lambda: not old.open, WAIT)  # the client closed the old connection itself


def test_malformed_envelopes_are_recorded_as_failed_and_the_socket_keeps_running(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion
) -> None:
    fake.send_raw("this is not json")
    fake.send_raw('{"type": "events_api", "payload": {}}')  # no envelope_id
    bad_payload = fake.send_envelope({"type": "event_callback", "team_id": "T0FAKE", "event": {"type": "message"}})
    no_ts = fake.send_envelope(fake.event_callback({"type": "message", "channel": "C1", "ts": "x"}, event_id="EvBad"))
    good = fake.send_envelope(fake.event_callback(ev.message("C1", "1700000104.000001", "still fine")))
    assert fake.wait_for_acks([bad_payload, no_ts, good], WAIT)
    assert fake.wait_for(lambda: count(db, "SELECT count(*) FROM events WHERE status = 'failed'") == 4, WAIT)
    with db.session() as s:
        reasons = sorted(r for (r,) in s.execute(text("SELECT error_message FROM events WHERE status = 'failed'")))
    assert any("not JSON" in r for r in reasons)
    assert any("envelope_id" in r for r in reasons)
    assert any("event_id" in r for r in reasons)
    assert any("valid ts" in r for r in reasons)
    assert count(db, "SELECT count(*) FROM slack_messages") == 1
    assert handler.is_connected()


def test_non_event_envelopes_are_acked_and_ignored(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion
) -> None:
    envelope = fake.send_envelope({"command": "/athenaeum"}, envelope_type="slash_commands")
    assert fake.wait_for_acks([envelope], WAIT)
    assert count(db, "SELECT count(*) FROM events") == 0


def test_a_bad_app_token_fails_fast_with_our_error(fake: FakeSlack, db: DatabaseConnection) -> None:
    with pytest.raises(SlackAuthError) as info:
        start_socket_mode(
            app_token="xapp-wrong",
            bot_token=fake.bot_token,
            api_url=fake.api_url,
            db=db,
            queue_factory=lambda s: EventProcessor(s),
        )
    assert info.value.code == "invalid_auth"


def test_events_wake_a_local_worker(fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion) -> None:
    from agent import wakeup

    woke = threading.Event()
    wakeup.register(woke.set)
    try:
        fake.send_envelope(fake.event_callback(ev.message("C1", "1700000105.000001", "wake")))
        assert woke.wait(WAIT)
    finally:
        wakeup.unregister(woke.set)
