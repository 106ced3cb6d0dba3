"""Fault row 14, statement by statement: the backend running a claim, a heartbeat or a completion is
terminated *while that statement runs* (held on a row or table lock so the kill lands mid-statement).
Each time the pool survives, the event is processed once and completed once, and the invariants hold."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import psycopg2
import pytest

from agent import EventProcessor, EventSnapshot, WorkerPool
from database import DatabaseConnection
from tests.support.invariants import assert_completed_exactly_once, install_completion_log, settled_invariants
from tests.support.waiting import scalar, wait_for

FAST = {"retry_base_delay": 0.05, "reaper_interval": 0.2, "poll_interval": 0.2, "stop_grace_period": 5.0}


@pytest.fixture
def locker(db: DatabaseConnection) -> Iterator[psycopg2.extensions.connection]:
    """A separate connection whose open transaction holds the locks that park the pool's statements."""
    conn = db.raw_dbapi_connection()
    yield conn
    try:
        conn.rollback()
    finally:
        conn.close()


def kill_blocked(db: DatabaseConnection, fragment: str) -> int:
    """Wait until a backend is stuck on a lock running a statement containing ``fragment``; terminate it."""

    def attempt() -> int:
        return int(
            scalar(
                db,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE :q AND pid <> pg_backend_pid()",
                q=f"%{fragment}%",
            )
        )

    return wait_for(attempt, timeout=20, what=f"a backend blocked in {fragment!r}")


def enqueue(db: DatabaseConnection, n: int) -> list[int]:
    with db.session() as s:
        return EventProcessor(s).enqueue_events([("test", {"i": i}) for i in range(n)])


def test_kill_during_claim(db: DatabaseConnection, pools, locker) -> None:
    """Fault row 14 (claim): the claim statement's backend dies while it waits; the pool claims again."""
    install_completion_log(db)
    ids = enqueue(db, 5)
    runs: Counter[int] = Counter()
    with locker.cursor() as cur:
        cur.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # claims (UPDATE) wait; reads do not
    pool = WorkerPool(2, db, lambda e: runs.update([e.id]), **FAST)
    pool.start()
    pools.append(pool)
    assert kill_blocked(db, "FOR UPDATE SKIP LOCKED") >= 1
    locker.rollback()
    wait_for(lambda: len(runs) == 5, what="all claimed after the kill")
    settled_invariants(db, 3, timeout=30)
    assert_completed_exactly_once(db, 5)
    assert set(runs) == set(ids) and set(runs.values()) == {1}
    assert pool.health_check() and pool.get_stats()["db_errors"] >= 1


def test_kill_during_heartbeat(db: DatabaseConnection, pools, locker) -> None:
    """Fault row 14 (heartbeat): the heartbeat's backend dies mid-statement; the next one keeps the lease."""
    install_completion_log(db)
    (event_id,) = enqueue(db, 1)
    started, release = threading.Event(), threading.Event()
    runs: Counter[int] = Counter()

    def long_job(event: EventSnapshot) -> None:
        runs[event.id] += 1
        started.set()
        release.wait(30)

    pool = WorkerPool(1, db, long_job, **{**FAST, "visibility_timeout": 3.0, "heartbeat_interval": 0.3})
    pool.start()
    pools.append(pool)
    assert started.wait(20)
    with locker.cursor() as cur:
        cur.execute("SELECT id FROM events WHERE id = %s FOR UPDATE", (event_id,))
    assert kill_blocked(db, "visibility_timeout") >= 1
    locker.rollback()
    # Later heartbeats on a fresh connection keep the lease past its original 3 s expiry.
    first_expiry = scalar(db, "SELECT visibility_timeout FROM events WHERE id = :i", i=event_id)
    wait_for(
        lambda: scalar(db, "SELECT visibility_timeout FROM events WHERE id = :i", i=event_id) > first_expiry,
        what="a heartbeat after the kill",
    )
    release.set()
    settled_invariants(db, 3, timeout=30)
    assert_completed_exactly_once(db, 1)
    assert runs == {event_id: 1}
    assert scalar(db, "SELECT attempts FROM events WHERE id = :i", i=event_id) == 1
    assert pool.get_stats()["lost_leases"] == 0


def test_kill_during_complete(db: DatabaseConnection, pools, locker) -> None:
    """Fault row 14 (complete): the completion's backend dies mid-statement; it is written once, on retry."""
    install_completion_log(db)
    (event_id,) = enqueue(db, 1)
    ran = threading.Event()
    runs: Counter[int] = Counter()

    def job(event: EventSnapshot) -> None:
        runs[event.id] += 1
        with locker.cursor() as cur:  # hold the row before the completer gets to it
            cur.execute("SELECT id FROM events WHERE id = %s FOR UPDATE", (event.id,))
        ran.set()

    pool = WorkerPool(1, db, job, **{**FAST, "visibility_timeout": 30.0})
    pool.start()
    pools.append(pool)
    assert ran.wait(20)
    assert kill_blocked(db, "completed") >= 1
    locker.rollback()
    settled_invariants(db, 3, timeout=30)
    assert_completed_exactly_once(db, 1)
    assert runs == {event_id: 1}
    assert scalar(db, "SELECT attempts FROM events WHERE id = :i", i=event_id) == 1
    assert pool.get_stats()["db_errors"] >= 1
