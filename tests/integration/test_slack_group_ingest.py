"""Group commit of live events (Ingester.ingest_many): one transaction for events that arrived together, and
a fall-back to one transaction per event so that one bad event never costs the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from agent import EventProcessor
from database import DatabaseConnection
from database.errors import DatabaseUnavailableError
from slack.client import BotIdentity
from slack.events import MalformedEventError
from slack.ingest import EMBED_EVENT_TYPE, QUESTION_EVENT_TYPE, Ingester, IngestResult
from tests.fakes import slack_events as ev
from tests.fakes.slack import FakeSlack

BOT = BotIdentity(team_id="T0FAKE", user_id="UBOT", bot_id="BBOT")
fake = FakeSlack()  # used only to build payloads (never started)


def ingester(db: DatabaseConnection) -> Ingester:
    return Ingester(db, lambda s: EventProcessor(s, worker_id="test-group"), BOT)


def scalar(db: DatabaseConnection, sql: str) -> Any:
    with db.session() as s:
        return s.execute(text(sql)).scalar_one()


def refuse_channel(db: DatabaseConnection, channel: str) -> None:
    """A trigger that makes storing a message of ``channel`` fail (a statement error, not a lost database)."""
    with db.session() as s:
        s.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN IF NEW.channel_id = '{channel}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
            )
        )
        s.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON slack_messages FOR EACH ROW EXECUTE FUNCTION refuse()"))


def test_events_that_arrive_together_are_written_in_one_transaction(db: DatabaseConnection) -> None:
    payloads = [
        fake.event_callback(ev.message("C1", f"1700000300.00000{i}", f"m{i}"), event_id=f"EvG{i}") for i in range(5)
    ]
    outcomes = ingester(db).ingest_many(payloads)
    assert [o.event_key for o in outcomes if isinstance(o, IngestResult)] == [f"T0FAKE:EvG{i}" for i in range(5)]
    assert all(isinstance(o, IngestResult) and not o.duplicate for o in outcomes)
    assert scalar(db, "SELECT count(*) FROM slack_messages") == 5
    # One transaction: every row written by the group carries the same xmin (writing transaction id).
    assert scalar(db, "SELECT count(DISTINCT xmin::text) FROM events WHERE event_type = 'slack.message'") == 1
    assert scalar(db, "SELECT count(DISTINCT xmin::text) FROM slack_messages") == 1
    assert scalar(db, f"SELECT count(*) FROM events WHERE event_type = '{EMBED_EVENT_TYPE}'") == 1


def test_redeliveries_and_twins_inside_one_group_count_once(db: DatabaseConnection) -> None:
    post = fake.event_callback(ev.message("C1", "1700000301.000001", "<@UBOT> why?"), event_id="EvM")
    mention = fake.event_callback(ev.app_mention("C1", "1700000301.000001", "<@UBOT> why?"), event_id="EvA")
    outcomes = ingester(db).ingest_many([post, mention, post])
    assert [isinstance(o, IngestResult) and o.duplicate for o in outcomes] == [False, False, True]
    assert scalar(db, "SELECT count(*) FROM events WHERE dedupe_key = 'T0FAKE:EvM'") == 1
    assert scalar(db, f"SELECT count(*) FROM events WHERE event_type = '{QUESTION_EVENT_TYPE}'") == 1
    assert scalar(db, "SELECT count(*) FROM slack_messages") == 1


def test_a_failing_event_does_not_cost_the_others(db: DatabaseConnection) -> None:
    refuse_channel(db, "CBAD")
    payloads = [
        fake.event_callback(ev.message("C1", "1700000302.000001", "before"), event_id="EvOk1"),
        fake.event_callback(ev.message("CBAD", "1700000302.000002", "refused"), event_id="EvBad"),
        fake.event_callback(ev.message("C1", "1700000302.000003", "after"), event_id="EvOk2"),
    ]
    outcomes = ingester(db).ingest_many(payloads)
    assert isinstance(outcomes[0], IngestResult) and isinstance(outcomes[2], IngestResult)
    assert isinstance(outcomes[1], Exception) and not isinstance(outcomes[1], IngestResult)
    assert "refused" in str(outcomes[1])
    assert scalar(db, "SELECT count(*) FROM slack_messages") == 2
    # The refused event left nothing behind: its redelivery will be stored once the cause is fixed.
    assert scalar(db, "SELECT count(*) FROM events WHERE dedupe_key = 'T0FAKE:EvBad'") == 0


def test_a_malformed_event_is_recorded_as_failed_and_the_rest_of_the_group_is_stored(db: DatabaseConnection) -> None:
    payloads = [
        fake.event_callback(ev.message("C1", "1700000303.000001", "fine"), event_id="EvFine1"),
        fake.event_callback({"type": "message", "channel": "C1", "ts": "x"}, event_id="EvNoTs"),
        fake.event_callback(ev.message("C1", "1700000303.000002", "fine too"), event_id="EvFine2"),
    ]
    outcomes = ingester(db).ingest_many(payloads)
    assert isinstance(outcomes[1], MalformedEventError)
    assert isinstance(outcomes[0], IngestResult) and isinstance(outcomes[2], IngestResult)
    assert scalar(db, "SELECT count(*) FROM slack_messages") == 2
    assert scalar(db, "SELECT status FROM events WHERE dedupe_key = 'T0FAKE:EvNoTs'") == "failed"


def test_when_the_database_is_unreachable_every_event_of_the_group_reports_it(db: DatabaseConnection) -> None:
    broken = DatabaseConnection(db.url.set(port=1))  # nothing listens there: connection refused
    try:
        ing = Ingester(broken, lambda s: EventProcessor(s, worker_id="test-group"), BOT)
        payloads = [
            fake.event_callback(ev.message("C1", f"1700000304.00000{i}", "x"), event_id=f"EvD{i}") for i in range(3)
        ]
        outcomes = ing.ingest_many(payloads)
    finally:
        broken.dispose()
    assert len(outcomes) == 3 and all(isinstance(o, DatabaseUnavailableError) for o in outcomes)
    assert scalar(db, "SELECT count(*) FROM events") == 0


def test_the_embedding_job_of_a_minute_is_enqueued_once_then_remembered(db: DatabaseConnection) -> None:
    now = [datetime(2026, 1, 5, 10, 0, 10, tzinfo=UTC)]
    ing = Ingester(db, lambda s: EventProcessor(s, worker_id="test-group"), BOT, clock=lambda: now[0])
    jobs = f"SELECT count(*) FROM events WHERE event_type = '{EMBED_EVENT_TYPE}'"
    ing.ingest(fake.event_callback(ev.message("C1", "1700000305.000001", "one"), event_id="EvE1"))
    assert scalar(db, jobs) == 1
    with db.session() as s:  # take it out of the way: the ingester must not even try to enqueue it again
        s.execute(text(f"DELETE FROM events WHERE event_type = '{EMBED_EVENT_TYPE}'"))
    ing.ingest(fake.event_callback(ev.message("C1", "1700000305.000002", "two"), event_id="EvE2"))
    assert scalar(db, jobs) == 0
    now[0] += timedelta(minutes=1)
    ing.ingest(fake.event_callback(ev.message("C1", "1700000305.000003", "three"), event_id="EvE3"))
    assert (
        scalar(db, f"SELECT dedupe_key FROM events WHERE event_type = '{EMBED_EVENT_TYPE}'") == "embed:2026-01-05T10:02"
    )


def test_an_embedding_job_rolled_back_is_not_remembered(db: DatabaseConnection) -> None:
    """Only a committed job is remembered: after a failed transaction the next message enqueues it again."""
    now = datetime(2026, 1, 5, 11, 0, 10, tzinfo=UTC)
    refuse_channel(db, "CBAD")
    ing = Ingester(db, lambda s: EventProcessor(s, worker_id="test-group"), BOT, clock=lambda: now)
    outcomes = ing.ingest_many([fake.event_callback(ev.message("CBAD", "1700000306.000001", "no"), event_id="EvR")])
    assert not isinstance(outcomes[0], IngestResult)
    ing.ingest(fake.event_callback(ev.message("C1", "1700000306.000002", "yes"), event_id="EvY"))
    assert scalar(db, f"SELECT count(*) FROM events WHERE event_type = '{EMBED_EVENT_TYPE}'") == 1
