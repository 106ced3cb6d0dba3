"""Queue invariants for the fault suite and the soak run, checked in SQL (reliability.md, "after every fault test").

``assert_queue_invariants`` (in ``waiting.py``) holds at any moment; the helpers here add what holds once
work has settled: every event terminal by a deadline, and completions recorded exactly once per event
(proved with a trigger that logs every transition into ``completed``).
"""

from __future__ import annotations

from sqlalchemy import text

from database import DatabaseConnection
from tests.support.waiting import assert_queue_invariants, wait_for

COMPLETION_LOG_DDL = """
CREATE TABLE IF NOT EXISTS completion_log (
    event_id bigint NOT NULL, claimed_by text, at timestamptz DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION log_completion() RETURNS trigger AS $$
BEGIN
    INSERT INTO completion_log (event_id, claimed_by) VALUES (NEW.id, NEW.claimed_by);
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS events_completion_log ON events;
CREATE TRIGGER events_completion_log AFTER UPDATE OF status ON events
    FOR EACH ROW WHEN (NEW.status = 'completed' AND OLD.status IS DISTINCT FROM 'completed')
    EXECUTE FUNCTION log_completion();
"""


def install_completion_log(db: DatabaseConnection) -> None:
    """Record every transition into ``completed`` (a second one for the same event would be a bug)."""
    with db.session() as s:
        s.execute(text(COMPLETION_LOG_DDL))


def unsettled(db: DatabaseConnection) -> int:
    with db.session() as s:
        return int(s.execute(text("SELECT count(*) FROM events WHERE status IN ('pending', 'processing')")).scalar())


def assert_all_terminal(db: DatabaseConnection, timeout: float) -> None:
    """Every event reaches ``completed`` or ``failed`` within ``timeout`` seconds."""
    wait_for(lambda: unsettled(db) == 0, timeout=timeout, interval=0.1, what="every event terminal")


def assert_completed_exactly_once(db: DatabaseConnection, expected: int) -> None:
    """``expected`` events completed, each by exactly one transition (needs ``install_completion_log``)."""
    with db.session() as s:
        completed = s.execute(text("SELECT count(*) FROM events WHERE status = 'completed'")).scalar()
        transitions, distinct = s.execute(text("SELECT count(*), count(DISTINCT event_id) FROM completion_log")).one()
    assert completed == expected, f"{completed} of {expected} events completed"
    assert transitions == distinct == expected, f"{transitions} completions for {distinct} events"


def settled_invariants(db: DatabaseConnection, max_retry_count: int, timeout: float) -> None:
    """The full post-fault check: terminal by the deadline, then the always-true invariants."""
    assert_all_terminal(db, timeout)
    assert_queue_invariants(db, max_retry_count)
