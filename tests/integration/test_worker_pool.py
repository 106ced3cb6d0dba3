"""WorkerPool in one process against a real PostgreSQL: bounded concurrency, wake-ups, heartbeats,
retries, poison payloads, connection kills and graceful stop (fault rows 9, 11-14, 16, 17)."""

from __future__ import annotations

import threading
from collections import Counter

import psycopg2
from sqlalchemy import text

from agent import EventProcessor, EventSnapshot, PermanentError, WorkerPool
from database import DatabaseConnection
from tests.support.waiting import assert_queue_invariants, scalar, status_counts, wait_for

FAST = {"retry_base_delay": 0.05, "reaper_interval": 0.2, "poll_interval": 0.2, "stop_grace_period": 5.0}


def start(pools: list[WorkerPool], *args: object, **kwargs: object) -> WorkerPool:
    pool = WorkerPool(*args, **{**FAST, **kwargs})  # type: ignore[arg-type]
    pool.start()
    pools.append(pool)
    return pool


def enqueue(db: DatabaseConnection, *payloads: dict, event_type: str = "test") -> list[int]:
    with db.session() as s:
        return EventProcessor(s).enqueue_events([(event_type, p) for p in payloads])


def completed(db: DatabaseConnection) -> int:
    return status_counts(db).get("completed", 0)


def test_processes_every_event_and_never_runs_more_than_size_at_once(db, pools) -> None:
    lock = threading.Lock()
    running, peak, seen = 0, 0, Counter()
    gate = threading.Event()

    def work(event: EventSnapshot) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            seen[event.id] += 1
        gate.wait(0.01)
        with lock:
            running -= 1

    ids = enqueue(db, *({"i": i} for i in range(60)))
    pool = start(pools, 3, db, work)
    wait_for(lambda: completed(db) == 60, what="all events completed")
    assert peak <= 3 and peak >= 2
    assert set(seen) == set(ids) and set(seen.values()) == {1}
    stats = pool.get_stats()
    assert stats["total_events_processed"] == 60 and stats["workers_running"] == 3
    assert pool.health_check()


def test_an_enqueue_in_the_same_process_wakes_an_idle_worker(db, pools) -> None:
    done = threading.Event()
    start(pools, 2, db, lambda e: done.set(), poll_interval=60, listen=False)
    wait_for(lambda: scalar(db, "SELECT 1"), what="pool idle")
    enqueue(db, {"x": 1})
    # With a 60 s poll and no listener, only the in-process wake-up can deliver this in time.
    assert done.wait(10), "the local enqueue did not wake the pool"


def test_a_notify_from_another_connection_wakes_the_pool(db, pools, database_url) -> None:
    done = threading.Event()
    pool = start(pools, 2, db, lambda e: done.set(), poll_interval=60)
    wait_for(lambda: pool.get_stats()["listener_connected"], what="listener connected")
    conn = db.raw_dbapi_connection()  # a plain connection: no in-process wake-up involved
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO events (event_type, payload) VALUES ('test', '{}')")
        conn.commit()
    finally:
        conn.close()
    assert done.wait(10), "NOTIFY did not wake the pool"


def test_lost_notifications_fall_back_to_the_poll(db, pools) -> None:
    """Fault row 16: no listener at all, and a listener whose connection is killed."""
    pool = start(pools, 2, db, lambda e: None, listen=False, poll_interval=0.3)
    conn = db.raw_dbapi_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO events (event_type, payload) VALUES ('test', '{}')")
        conn.commit()
    finally:
        conn.close()
    wait_for(lambda: completed(db) == 1, what="poll pickup")
    pool.stop()

    listening = start(pools, 2, db, lambda e: None, poll_interval=0.3)
    wait_for(lambda: listening.get_stats()["listener_connected"], what="listener connected")
    killed = scalar(
        db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'athenaeum-listener'",
    )
    assert killed == 1
    enqueue(db, {"after": "kill"})
    wait_for(lambda: completed(db) == 2, what="pickup after the listener was killed")
    wait_for(lambda: listening._listener is not None and listening._listener.reconnects >= 1, what="reconnect")


def test_heartbeats_keep_a_job_longer_than_its_lease(db, pools) -> None:
    """Fault row 9: a job 3x longer than the lease is never claimed twice."""
    calls = Counter()
    release = threading.Event()

    def slow(event: EventSnapshot) -> None:
        calls[event.id] += 1
        release.wait(3.0)

    enqueue(db, {"slow": True})
    start(pools, 1, db, slow, visibility_timeout=1.0, heartbeat_interval=0.2, reaper_interval=0.1)
    second = start(pools, 1, db, slow, visibility_timeout=1.0, heartbeat_interval=0.2, reaper_interval=0.1)
    wait_for(lambda: completed(db) == 1, timeout=30, what="slow job completed")
    assert list(calls.values()) == [1]
    assert scalar(db, "SELECT retry_count FROM events") == 0
    assert second.get_stats()["reclaimed"] == 0


def test_a_failing_handler_retries_with_backoff_then_fails_with_its_error(db, pools) -> None:
    """Fault row 11 (scaled): 3 retries at base 0.05 s, then failed with the error and four attempts logged."""

    def always_fails(event: EventSnapshot) -> None:
        raise ConnectionError("upstream unavailable")

    enqueue(db, {"n": 1})
    pool = start(pools, 2, db, always_fails, max_retry_count=3)
    wait_for(lambda: status_counts(db).get("failed") == 1, what="event failed")
    with db.session() as s:
        row = s.execute(text("SELECT * FROM events")).mappings().one()
    assert row["error_message"] == "ConnectionError: upstream unavailable"
    assert row["retry_count"] == 3
    log = row["attempt_log"]
    assert [e["outcome"] for e in log] == ["retry", "retry", "retry", "failed"]
    delays = [e["retry_in_seconds"] for e in log[:3]]
    for delay, nominal in zip(delays, (0.05, 0.1, 0.2), strict=True):
        assert nominal * 0.9 - 0.001 <= delay <= nominal * 1.1 + 0.001  # stored rounded to ms
    stats = pool.get_stats()
    assert stats["total_events_failed"] == 1 and stats["total_events_retried"] == 3
    assert_queue_invariants(db, 3)


def test_poison_payloads_are_isolated_and_others_keep_flowing(db, pools) -> None:
    """Fault rows 12-13: a malformed payload fails at once with its reason; the rest complete."""

    def handler(event: EventSnapshot) -> None:
        if "channel" not in event.payload:
            raise PermanentError(f"payload has no 'channel' (keys: {sorted(event.payload)})")
        if event.payload["channel"] == "explode":
            raise KeyError("missing_field")

    enqueue(
        db,
        {"channel": "C1"},
        {"oops": True},
        {"channel": "C2", "text": "x" * 1_000_000},
        {"channel": "explode"},
        {"channel": "C3"},
    )
    start(pools, 2, db, handler, max_retry_count=1)
    wait_for(lambda: status_counts(db) == {"completed": 3, "failed": 2}, what="terminal states")
    with db.session() as s:
        errors = dict(
            s.execute(text("SELECT payload->>'channel', error_message FROM events WHERE status='failed'")).all()
        )
    assert errors[None] == "PermanentError: payload has no 'channel' (keys: ['oops'])"
    assert errors["explode"] == "KeyError: 'missing_field'"
    assert scalar(db, "SELECT retry_count FROM events WHERE payload ? 'oops'") == 0


def test_killed_backends_do_not_stop_the_pool(db, pools) -> None:
    """Fault row 14: pg_terminate_backend on the pool's connections while events flow."""
    enqueue(db, *({"i": i} for i in range(200)))
    gate = threading.Event()
    # A claim whose reply is lost with its connection stays leased until the lease runs out, so the
    # lease is short here: those events must come back through the reaper, not be lost.
    pool = start(pools, 4, db, lambda e: gate.wait(0.002), visibility_timeout=2.0)
    for _ in range(5):
        scalar(
            db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        enqueue(db, *({"late": i} for i in range(20)))
    wait_for(lambda: completed(db) == 300, timeout=60, what="all 300 completed despite killed backends")
    assert pool.health_check()
    assert_queue_invariants(db, 3)
    assert scalar(db, "SELECT count(*) FROM events WHERE attempts > 1") <= 20  # few, if any, redone


def test_stop_drains_in_flight_work_and_releases_what_does_not_finish(db, pools) -> None:
    """Fault row 17 in-process: quick jobs finish, a stuck one is released at the end of the grace period."""
    finished = []

    def job(event: EventSnapshot) -> None:
        if event.payload.get("stuck"):
            event.lease_lost.wait(30)  # a long job that honours lease_lost
            return
        event.lease_lost.wait(0.3)
        finished.append(event.id)

    ids = enqueue(db, {"stuck": True}, {"n": 1}, {"n": 2})
    pool = WorkerPool(3, db, job, **FAST)
    pool.start()
    wait_for(lambda: pool.get_stats()["in_flight"] == 3, what="all three running")
    pool.stop(timeout=1.0)
    assert sorted(finished) == ids[1:]
    with db.session() as s:
        rows = dict(s.execute(text("SELECT id, status FROM events")).all())
    assert rows == {ids[0]: "pending", ids[1]: "completed", ids[2]: "completed"}
    assert scalar(db, "SELECT retry_count FROM events WHERE id = :i", i=ids[0]) == 0
    assert pool.get_stats()["released"] == 1 and not pool.health_check()


def test_database_connection_refused_then_back(db, pools, database_url) -> None:
    """Workers back off while the database refuses connections, and resume when it is back."""
    enqueue(db, {"n": 1})
    pool = start(pools, 2, db, lambda e: None)
    wait_for(lambda: completed(db) == 1, what="first event")
    admin = psycopg2.connect(
        db.url.set(database="postgres").render_as_string(hide_password=False).replace("+psycopg2", "")
    )
    admin.autocommit = True
    name = db.url.database
    try:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cur.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        wait_for(lambda: pool.get_stats()["db_errors"] > 0, what="the pool noticed the outage")
        assert pool._threads[0].is_alive()
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()
    enqueue(db, {"n": 2})
    wait_for(lambda: completed(db) == 2, timeout=30, what="pickup after the outage")
    assert pool.health_check()


def test_a_stalled_completer_does_not_let_finished_jobs_lapse(db, pools) -> None:
    """Finished jobs waiting for their completion to be written are still heartbeated."""
    pool = WorkerPool(1, db, lambda e: None, visibility_timeout=1.0, heartbeat_interval=0.2, **FAST)
    gate = threading.Event()
    original = pool._flush_completions

    def stalled(batch):  # the database is slow to take completions for a while (3 leases long)
        gate.wait(3.0)
        original(batch)

    pool._flush_completions = stalled  # type: ignore[method-assign]
    pool.start()
    pools.append(pool)
    enqueue(db, {"n": 1})
    wait_for(lambda: completed(db) == 1, timeout=30, what="completion written after the stall")
    assert scalar(db, "SELECT attempts FROM events") == 1  # never reclaimed, never run twice
    assert pool.get_stats()["reclaimed"] == 0 and pool.get_stats()["lost_leases"] == 0
