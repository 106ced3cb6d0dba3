"""Socket Mode group commit end to end: envelopes that arrive while a transaction is in flight are written
together and each is acked once, only after that commit; a bad envelope does not hold up the others; a
database that is down gets no acks at all."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from agent import EventProcessor
from agent.metrics import Metrics
from database import DatabaseConnection
from slack.socket_handler import SocketModeIngestion, start_socket_mode
from tests.e2e.conftest import WAIT, count, refuse_message_inserts, set_connections
from tests.fakes import slack_events as ev
from tests.fakes.slack import FakeSlack


@pytest.fixture
def handler(start_handler) -> SocketModeIngestion:
    # One ingest thread makes the grouping deterministic: whatever arrives while it writes is the next group.
    return start_handler(ingest_threads=1)


def lock_waiters(db: DatabaseConnection) -> int:
    return count(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
    )


def send_messages(fake: FakeSlack, channel: str, first: int, n: int) -> list[str]:
    return [
        fake.send_envelope(fake.event_callback(ev.message(channel, f"1700000400.{i:06d}", f"m{i}"), event_id=f"Ev{i}"))
        for i in range(first, first + n)
    ]


def test_envelopes_that_pile_up_are_written_together_and_each_acked_once_after_commit(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion
) -> None:
    blocker = db.new_session()
    blocker.execute(text("LOCK TABLE slack_messages IN EXCLUSIVE MODE"))
    try:
        [first] = send_messages(fake, "C1", 0, 1)
        assert fake.wait_for(lambda: lock_waiters(db) >= 1, WAIT)  # its transaction waits on the lock
        rest = send_messages(fake, "C1", 1, 5)
        assert fake.wait_for(lambda: handler.committer.pending() == 5, WAIT)  # queued behind the first
        assert not fake.acks  # nothing is committed yet, so nothing is acked
    finally:
        blocker.rollback()
        blocker.close()
    assert fake.wait_for_acks([first, *rest], WAIT)
    assert Counter(fake.acks) == Counter([first, *rest])  # each exactly once
    assert handler.committer.largest_batch == 5
    assert count(db, "SELECT count(*) FROM slack_messages") == 6
    # /metrics reports the two transactions as run.py wires it (Metrics.attach_slack(handler)).
    metrics = Metrics()
    metrics.attach_slack(handler)
    samples = {
        (s.name, s.labels.get("le")): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert samples[("athenaeum_slack_ingest_batches_total", None)] == 2
    assert samples[("athenaeum_slack_ingest_batch_size_bucket", "1.0")] == 1  # the first, alone
    assert samples[("athenaeum_slack_ingest_batch_size_bucket", "2.0")] == 1
    assert samples[("athenaeum_slack_ingest_batch_size_bucket", "5.0")] == 2  # the five that piled up
    assert samples[("athenaeum_slack_ingest_batch_size_sum", None)] == 6
    assert samples[("athenaeum_slack_ingest_largest_batch", None)] == 5
    # The five that piled up share one transaction; the first had its own.
    assert count(db, "SELECT count(DISTINCT xmin::text) FROM slack_messages WHERE ts > '1700000400.000000'") == 1
    assert count(db, "SELECT count(DISTINCT xmin::text) FROM slack_messages") == 2


def test_a_bad_envelope_in_a_group_does_not_hold_up_the_others(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion
) -> None:
    refuse_message_inserts(db, "NEW.channel_id = 'CBAD'")
    blocker = db.new_session()
    blocker.execute(text("LOCK TABLE slack_messages IN EXCLUSIVE MODE"))
    try:
        [first] = send_messages(fake, "C1", 0, 1)
        assert fake.wait_for(lambda: lock_waiters(db) >= 1, WAIT)
        good = send_messages(fake, "C1", 1, 2) + send_messages(fake, "C2", 3, 1)
        [bad] = send_messages(fake, "CBAD", 4, 1)
        good += send_messages(fake, "C1", 5, 2)
        assert fake.wait_for(lambda: handler.committer.pending() == 6, WAIT)  # one group behind the first
    finally:
        blocker.rollback()
        blocker.close()
    assert fake.wait_for_acks([first, *good], WAIT)
    assert fake.wait_for(lambda: handler.stats["unacked_db_down"] >= 1, WAIT)
    assert bad not in fake.acks  # a statement error is not acked: Slack redelivers it
    assert Counter(fake.acks) == Counter([first, *good])
    assert count(db, "SELECT count(*) FROM slack_messages") == 6
    assert count(db, "SELECT count(*) FROM events WHERE dedupe_key = 'T0FAKE:Ev4'") == 0
    assert handler.committer.largest_batch == 6


def test_no_envelope_of_a_group_is_acked_while_the_database_is_down(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion, pg_server: Any, database_url: str
) -> None:
    payloads = [
        fake.event_callback(ev.message("C1", f"1700000500.{i:06d}", f"d{i}"), event_id=f"EvDn{i}") for i in range(4)
    ]
    set_connections(pg_server, database_url, False)
    try:
        first = [fake.send_envelope(p) for p in payloads]
        assert fake.wait_for(lambda: handler.stats["unacked_db_down"] >= len(payloads), WAIT)
        assert not set(first) & set(fake.acks)
    finally:
        set_connections(pg_server, database_url, True)
    again = [fake.send_envelope(p, retry_attempt=1, retry_reason="timeout") for p in payloads]
    assert fake.wait_for_acks(again, WAIT)
    assert not set(first) & set(fake.acks)
    assert count(db, "SELECT count(*) FROM events WHERE event_type = 'slack.message'") == 4
    assert count(db, "SELECT count(*) FROM slack_messages") == 4


def test_a_frame_that_is_not_utf8_is_recorded_as_failed_and_the_socket_keeps_running(
    fake: FakeSlack, db: DatabaseConnection, handler: SocketModeIngestion
) -> None:
    fake.send_raw_bytes(b'{"envelope_id": "x\xff\xfe", "type": "events_api"}')
    [good] = send_messages(fake, "C1", 0, 1)
    assert fake.wait_for_acks([good], WAIT)
    assert fake.wait_for(lambda: count(db, "SELECT count(*) FROM events WHERE status = 'failed'") == 1, WAIT)
    with db.session() as s:
        reason = s.execute(text("SELECT error_message FROM events WHERE status = 'failed'")).scalar_one()
    assert "not UTF-8" in reason
    assert handler.is_connected()


def test_a_failed_start_leaves_no_ingest_threads_behind(fake: FakeSlack, db: DatabaseConnection) -> None:
    from slack.errors import SlackAuthError

    def ingest_threads() -> int:
        return sum(t.name.startswith("slack-socket-ingest") for t in threading.enumerate())

    before = ingest_threads()
    with pytest.raises(SlackAuthError):
        start_socket_mode(
            app_token="xapp-wrong",
            bot_token=fake.bot_token,
            api_url=fake.api_url,
            db=db,
            queue_factory=lambda s: EventProcessor(s),
        )
    assert fake.wait_for(lambda: ingest_threads() == before, WAIT)
