"""Hand-over: an event enqueued in the pool's own process goes straight to a free worker after commit.

The row is inserted already claimed by the pool (own lease and token), so the worker starts without a
claim round trip; a rollback, a duplicate key, a full pool or a savepoint take the ordinary path.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from agent import EventProcessor, EventSnapshot, WorkerPool, wakeup
from agent.event_processor import _INSERT_CLAIMED
from database import DatabaseConnection
from tests.support.waiting import assert_queue_invariants, scalar, wait_for

SLOW_POLL = {"poll_interval": 30.0, "reaper_interval": 30.0, "stop_grace_period": 5.0}


def start(pools: list[WorkerPool], db: DatabaseConnection, work, size: int = 2) -> WorkerPool:
    # A 30 s poll and no listener: only a wake-up or a hand-over can start a job within the test's waits.
    pool = WorkerPool(size, db, work, listen=False, **SLOW_POLL)
    pool.start()
    pools.append(pool)
    wait_for(lambda: not pool._backlog and pool._in_flight == 0, what="the dispatcher's first look")
    return pool


def test_an_enqueue_with_a_free_slot_is_inserted_claimed_and_runs_after_commit(db, pools) -> None:
    ran: list[EventSnapshot] = []
    pool = start(pools, db, ran.append)
    with db.session() as s:
        event = EventProcessor(s).enqueue_event("t", {"n": 1}, key="k1")
        # Inside the producer's transaction: claimed by the pool, not yet handed to a worker.
        assert event.status == "processing"
        assert event.claimed_by == f"{pool.name}:handover"
        assert event.lease_token is not None and event.attempts == 1
        assert ran == []
    wait_for(lambda: scalar(db, "SELECT status FROM events WHERE id = :i", i=event.id) == "completed")
    assert [e.id for e in ran] == [event.id]
    assert ran[0].lease_token == event.lease_token
    assert pool.get_stats()["total_events_claimed"] == 1
    assert_queue_invariants(db, max_retry_count=3)


def test_a_rollback_gives_the_slot_back_and_runs_nothing(db, pools) -> None:
    ran: list[EventSnapshot] = []
    pool = start(pools, db, ran.append, size=1)
    with db.session() as s:
        EventProcessor(s).enqueue_event("t", {}, key="gone")
        assert pool._in_flight == 1  # the reserved slot
        s.rollback()
    assert pool._in_flight == 0
    assert scalar(db, "SELECT count(*) FROM events") == 0
    with db.session() as s:  # the slot is usable again
        kept = EventProcessor(s).enqueue_event("t", {}, key="kept")
    wait_for(lambda: [e.id for e in ran] == [kept.id])


def test_a_duplicate_key_reserves_nothing(db, pools) -> None:
    ran: list[EventSnapshot] = []
    pool = start(pools, db, ran.append, size=1)
    with db.session() as s:
        first = EventProcessor(s).enqueue_event("t", {}, key="same")
    wait_for(lambda: len(ran) == 1)
    wait_for(lambda: pool._in_flight == 0)
    with db.session() as s:
        again = EventProcessor(s).enqueue_event("t", {}, key="same")
        assert again.duplicate and again.id == first.id
        assert pool._in_flight == 0
    assert len(ran) == 1


def test_a_full_pool_leaves_the_event_pending_for_the_dispatcher(db, pools) -> None:
    gate = threading.Event()
    ran: list[int] = []

    def work(event: EventSnapshot) -> None:
        ran.append(event.id)
        if event.payload["block"]:
            gate.wait(10)

    start(pools, db, work, size=1)
    with db.session() as s:
        blocker = EventProcessor(s).enqueue_event("t", {"block": True})
    wait_for(lambda: ran == [blocker.id])
    with db.session() as s:
        queued = EventProcessor(s).enqueue_event("t", {"block": False})
        assert queued.status == "pending" and queued.claimed_by is None
    gate.set()
    wait_for(lambda: ran == [blocker.id, queued.id])
    assert_queue_invariants(db, max_retry_count=3)


def test_a_savepoint_takes_the_ordinary_path(db, pools) -> None:
    ran: list[EventSnapshot] = []
    pool = start(pools, db, ran.append)
    with db.session() as s:
        with s.begin_nested():
            event = EventProcessor(s).enqueue_event("t", {})
            assert event.status == "pending"
        assert pool._in_flight == 0
    wait_for(lambda: [e.id for e in ran] == [event.id])


def test_a_pool_on_another_database_is_never_offered(db, pools) -> None:
    ran: list[EventSnapshot] = []
    pool = start(pools, db, ran.append)
    url = db.engine.url
    assert wakeup.reserve(url.set(database="some_other_db")) is None
    reservation = wakeup.reserve(url)
    assert reservation is not None and pool._in_flight == 1
    reservation.cancel()
    reservation.cancel()  # settling twice frees the slot once
    assert pool._in_flight == 0


def test_a_producer_that_dies_after_commit_leaves_a_lease_the_reaper_returns(db, pools) -> None:
    """The hand-over's guarantees are a claim's: if nothing runs the event, its lease expires and it runs again."""
    ran: list[EventSnapshot] = []
    start(pools, db, ran.append, size=1)
    reservation = wakeup.reserve(db.engine.url)
    assert reservation is not None
    # The producer inserts under the reservation and dies before its hand-over (a 0.2 s lease here).
    with db.session() as s:
        event_id = (
            EventProcessor(s)
            ._run(
                _INSERT_CLAIMED,
                event_type="t",
                payload={},
                dedupe_key=None,
                worker_id=reservation.worker_id,
                lease_seconds=0.2,
            )
            .scalar_one()
        )
    reservation.cancel()

    def reclaimed() -> bool:
        with db.session() as s:
            return EventProcessor(s).reclaim_expired() == 1

    wait_for(reclaimed, what="the expired hand-over lease to be reclaimed")
    wait_for(lambda: [e.id for e in ran] == [event_id], what="the reclaimed event to run")
    assert ran[0].attempts == 2  # the lost hand-over counted as an attempt, like any expired lease


def test_a_savepoint_released_after_the_enqueue_does_not_hand_over_early(db, pools) -> None:
    """SQLAlchemy fires after_commit when a savepoint is released: the hand-over must wait for the real commit."""
    ran: list[EventSnapshot] = []
    pool = start(pools, db, ran.append)
    with db.session() as s:
        event = EventProcessor(s).enqueue_event("t", {})
        assert event.status == "processing"
        with s.begin_nested():
            s.execute(text("SELECT 1"))
        assert ran == [] and pool._in_flight == 1  # still reserved, not started
        assert pool.get_stats()["total_events_claimed"] == 0
    wait_for(lambda: [e.id for e in ran] == [event.id])
    wait_for(lambda: scalar(db, "SELECT status FROM events WHERE id = :i", i=event.id) == "completed")


@pytest.mark.parametrize("path", ["hand-over", "wake-up"])
def test_a_savepoint_rolled_back_after_the_enqueue_keeps_it(db, pools, path) -> None:
    """Rolling back a later savepoint leaves the earlier enqueue in the transaction: it must still run."""
    ran: list[EventSnapshot] = []
    start(pools, db, ran.append)
    # An explicit run_after takes the ordinary path: inserted pending, a wake-up after commit.
    run_after = None if path == "hand-over" else datetime.now(UTC)
    with db.session() as s:
        event = EventProcessor(s).enqueue_event("t", {}, run_after=run_after)
        assert event.status == ("processing" if path == "hand-over" else "pending")
        savepoint = s.begin_nested()
        s.execute(text("SELECT 1"))
        savepoint.rollback()
    wait_for(lambda: [e.id for e in ran] == [event.id])
