"""EventProcessor against a real PostgreSQL: claims, fencing, retries, reclaims, administration."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from agent import EventProcessor, LeaseLostError, PermanentError
from database import DatabaseConnection


def proc(db: DatabaseConnection, worker: str = "w1", **kw: object) -> EventProcessor:
    return EventProcessor(db.new_session(), worker_id=worker, **kw)  # type: ignore[arg-type]


def row(db: DatabaseConnection, event_id: int) -> dict:
    with db.session() as s:
        return dict(s.execute(text("SELECT * FROM events WHERE id = :id"), {"id": event_id}).mappings().one())


def test_a_duplicate_key_returns_the_existing_event_and_inserts_nothing(db: DatabaseConnection) -> None:
    with db.session() as s:
        p = EventProcessor(s)
        first = p.enqueue_event("slack.message", {"n": 1}, key="T1:Ev1")
        again = p.enqueue_event("slack.message", {"n": 2}, key="T1:Ev1")
        other = p.enqueue_event("slack.message", {"n": 3})
    assert again.id == first.id and again.payload == {"n": 1}
    assert again.duplicate and not first.duplicate and not other.duplicate
    assert other.id != first.id
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM events")).scalar() == 2


def test_enqueue_joins_the_callers_transaction(db: DatabaseConnection) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        EventProcessor(s).enqueue_event("t", {})
        raise RuntimeError("the surrounding unit of work fails")
    with db.session() as s:
        assert EventProcessor(s).get_queue_stats()["pending"] == 0


def test_bad_input_is_refused_with_a_clear_error(db: DatabaseConnection) -> None:
    with db.session() as s:
        p = EventProcessor(s)
        with pytest.raises(ValueError, match="event_type"):
            p.enqueue_event("", {})
        with pytest.raises(ValueError, match="JSON object"):
            p.enqueue_event("t", ["not", "a", "mapping"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="NUL"):
            p.enqueue_event("t", {"text": "a\x00b"})
        with pytest.raises(ValueError, match="serialisable"):
            p.enqueue_event("t", {"when": object()})


def test_claims_are_fifo_by_due_time_and_respect_run_after(db: DatabaseConnection) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with db.session() as s:
        p = EventProcessor(s)
        a = p.enqueue_event("t", {"n": "a"})
        future = p.enqueue_event("t", {"n": "future"}, run_after=later)
        b = p.enqueue_event("t", {"n": "b"})
    p = proc(db)
    assert [p.claim_event().id, p.claim_event().id] == [a.id, b.id]  # type: ignore[union-attr]
    assert p.claim_event() is None  # the future one is not due
    assert row(db, future.id)["status"] == "pending"


def test_a_claim_sets_a_lease_and_a_fresh_fencing_token(db: DatabaseConnection) -> None:
    with db.session() as s:
        EventProcessor(s).enqueue_events([("t", {"i": i}) for i in range(3)])
    p = proc(db, visibility_timeout=60)
    claimed = p.claim_events(3)
    assert len(claimed) == 3
    assert len({e.lease_token for e in claimed}) == 3
    for e in claimed:
        r = row(db, e.id)
        assert r["status"] == "processing" and r["claimed_by"] == "w1" and r["attempts"] == 1
        assert timedelta(seconds=55) < r["visibility_timeout"] - r["claimed_at"] <= timedelta(seconds=60)


def test_a_stale_owner_cannot_complete_or_fail(db: DatabaseConnection) -> None:
    """Fault row 10: after losing the lease, the old owner's writes change nothing."""
    with db.session() as s:
        event = EventProcessor(s).enqueue_event("t", {})
    old = proc(db, "old", visibility_timeout=0.05)
    mine = old.claim_event()
    assert mine is not None
    with db.session() as s:  # the lease runs out, the reaper returns the event, a new worker takes it
        s.execute(text("UPDATE events SET visibility_timeout = now() - interval '1 second'"))
    assert proc(db, "reaper").reclaim_expired() == 1
    new = proc(db, "new")
    theirs = new.claim_event()
    assert theirs is not None and theirs.id == event.id and theirs.lease_token != mine.lease_token
    with pytest.raises(LeaseLostError):
        old.complete_event(mine)
    with pytest.raises(LeaseLostError):
        old.fail_event(mine, "late failure")
    with pytest.raises(LeaseLostError):
        old.heartbeat(mine)
    assert old.release_event(mine) is False
    r = row(db, event.id)
    assert r["status"] == "processing" and r["claimed_by"] == "new" and r["error_message"] != "late failure"
    new.complete_event(theirs)
    assert row(db, event.id)["status"] == "completed"


def test_heartbeat_extends_the_lease(db: DatabaseConnection) -> None:
    with db.session() as s:
        EventProcessor(s).enqueue_event("t", {})
    p = proc(db, visibility_timeout=30)
    e = p.claim_event()
    assert e is not None
    with db.session() as s:
        s.execute(text("UPDATE events SET visibility_timeout = now() + interval '1 second'"))
    expiry = p.heartbeat(e)
    assert expiry - datetime.now(UTC) > timedelta(seconds=25)


def test_failures_retry_with_exponential_backoff_then_fail(db: DatabaseConnection) -> None:
    """Fault row 11, asserted from the database: 10/20/40 s (±10 %), then failed with the error."""
    with db.session() as s:
        event = EventProcessor(s).enqueue_event("t", {})
    p = proc(db, retry_base_delay=10, max_retry_count=3)
    delays = []
    for expected_status in ("pending", "pending", "pending", "failed"):
        with db.session() as s:  # make it due now so we can claim without waiting
            s.execute(text("UPDATE events SET run_after = now() WHERE status = 'pending'"))
        claimed = p.claim_event()
        assert claimed is not None
        assert p.fail_event(claimed, RuntimeError("upstream said no")) == expected_status
        r = row(db, event.id)
        if expected_status == "pending":
            with db.session() as s:
                delays.append(
                    s.execute(
                        text("SELECT extract(epoch FROM run_after - now()) FROM events WHERE id = :i"),
                        {"i": event.id},
                    ).scalar()
                )
    assert [round(float(d) / n) for d, n in zip(delays, (10, 20, 40), strict=True)] == [1, 1, 1]
    for d, nominal in zip(delays, (10, 20, 40), strict=True):
        assert nominal * 0.85 <= float(d) <= nominal * 1.1
    assert r["status"] == "failed" and r["retry_count"] == 3
    assert r["error_message"] == "RuntimeError: upstream said no"
    assert [entry["outcome"] for entry in r["attempt_log"]] == ["retry", "retry", "retry", "failed"]
    assert [entry["attempt"] for entry in r["attempt_log"]] == [1, 2, 3, 4]
    assert r["processed_at"] is not None


def test_permanent_errors_fail_on_the_first_attempt(db: DatabaseConnection) -> None:
    """Fault row 12 (queue side)."""
    with db.session() as s:
        a = EventProcessor(s).enqueue_event("t", {"n": 1})
        b = EventProcessor(s).enqueue_event("t", {"n": 2})
    p = proc(db, max_retry_count=5)
    assert p.fail_event(p.claim_event(), PermanentError("payload has no 'channel'")) == "failed"  # type: ignore[arg-type]
    assert p.fail_event(p.claim_event(), "spend limit reached", permanent=True) == "failed"  # type: ignore[arg-type]
    assert row(db, a.id)["retry_count"] == 0 and row(db, a.id)["status"] == "failed"
    assert row(db, b.id)["error_message"] == "spend limit reached"


def test_stored_errors_are_redacted_and_bounded(db: DatabaseConnection) -> None:
    with db.session() as s:
        e = EventProcessor(s).enqueue_event("t", {})
    p = proc(db)
    p.fail_event(p.claim_event(), "token xoxb-1234567890-canary leaked " + "x" * 10_000, permanent=True)  # type: ignore[arg-type]
    stored = row(db, e.id)["error_message"]
    assert "xoxb-1234567890-canary" not in stored and "***" in stored
    assert len(stored) <= 4000


def test_expired_leases_are_reclaimed_and_count_as_attempts(db: DatabaseConnection) -> None:
    with db.session() as s:
        ids = EventProcessor(s).enqueue_events([("t", {"i": 1}), ("t", {"i": 2})])
    p = proc(db, max_retry_count=1)
    p.claim_events(2)
    with db.session() as s:
        s.execute(text("UPDATE events SET visibility_timeout = now() - interval '1 second'"))
        s.execute(text("UPDATE events SET retry_count = 1 WHERE id = :i"), {"i": ids[1]})
    assert p.reclaim_expired() == 2
    first, second = row(db, ids[0]), row(db, ids[1])
    assert first["status"] == "pending" and first["retry_count"] == 1 and first["lease_token"] is None
    assert second["status"] == "failed" and "lease expired" in second["error_message"]
    assert first["attempt_log"][-1]["error"] == "lease expired"
    assert p.reclaim_expired() == 0


def test_release_returns_an_event_without_counting_an_attempt(db: DatabaseConnection) -> None:
    with db.session() as s:
        e = EventProcessor(s).enqueue_event("t", {})
    p = proc(db)
    assert p.release_event(p.claim_event())  # type: ignore[arg-type]
    r = row(db, e.id)
    assert r["status"] == "pending" and r["retry_count"] == 0 and r["claimed_by"] is None


def test_stats_depth_age_retry_and_purge(db: DatabaseConnection) -> None:
    with db.session() as s:
        ids = EventProcessor(s).enqueue_events([("t", {"i": i}) for i in range(4)])
        s.execute(text("UPDATE events SET run_after = now() - interval '30 seconds'"))
    p = proc(db)
    assert p.get_queue_depth() == 4
    assert p.oldest_pending_age() >= 29  # type: ignore[operator]
    done, failed = p.claim_event(), p.claim_event()
    p.complete_event(done)  # type: ignore[arg-type]
    p.fail_event(failed, "bad", permanent=True)  # type: ignore[arg-type]
    p.claim_event()
    assert p.get_queue_stats() == {"pending": 1, "processing": 1, "completed": 1, "failed": 1}
    with db.session() as s:
        assert EventProcessor(s).retry_failed([failed.id]) == 1  # type: ignore[union-attr]
        s.execute(text("UPDATE events SET processed_at = now() - interval '8 days' WHERE status = 'completed'"))
    with db.session() as s:
        assert EventProcessor(s).purge_completed(7) == 1
    assert row(db, failed.id)["status"] == "pending"  # type: ignore[union-attr]
    assert p.get_queue_stats() == {"pending": 2, "processing": 1, "completed": 0, "failed": 0}
    assert len(ids) == 4


def test_bulk_enqueue_skips_duplicates(db: DatabaseConnection) -> None:
    with db.session() as s:
        p = EventProcessor(s)
        first = p.enqueue_events([{"event_type": "t", "payload": {"i": i}, "key": f"k{i}"} for i in range(100)])
        second = p.enqueue_events([{"event_type": "t", "payload": {"i": i}, "key": f"k{i}"} for i in range(50, 150)])
    assert len(first) == 100 and len(second) == 50
    with db.session() as s:
        assert EventProcessor(s).get_queue_depth() == 150


def test_claim_uses_the_partial_index(db: DatabaseConnection) -> None:
    with db.session() as s:
        s.execute(
            text(
                "INSERT INTO events (event_type, payload, status, processed_at) "
                "SELECT 't', '{}'::jsonb, 'completed', now() FROM generate_series(1, 20000)"
            )
        )
        EventProcessor(s).enqueue_event("t", {})
        s.execute(text("ANALYZE events"))
    with db.session() as s:
        plan = "\n".join(
            r[0]
            for r in s.execute(
                text(
                    "EXPLAIN SELECT id FROM events WHERE status = 'pending' AND run_after <= now() "
                    "ORDER BY run_after, id LIMIT 4 FOR UPDATE SKIP LOCKED"
                )
            )
        )
    assert "ix_events_due" in plan
