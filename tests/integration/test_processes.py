"""Real worker processes: exactly-once claiming across processes, SIGKILL mid-job, SIGTERM drain
(fault rows 7, 8 and 17)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from agent import EventProcessor
from database import DatabaseConnection
from tests.support.waiting import assert_queue_invariants, scalar, status_counts, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def logs(db: DatabaseConnection) -> DatabaseConnection:
    with db.session() as s:
        s.execute(
            text("CREATE TABLE processed_log (event_id bigint, pid int, at timestamptz DEFAULT clock_timestamp())")
        )
        s.execute(text("CREATE TABLE started_log (event_id bigint, pid int)"))
    return db


@pytest.fixture
def spawn(database_url: str) -> Iterator:
    procs: list[subprocess.Popen[str]] = []

    def _spawn(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.pool_process", database_url, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "READY", (line, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_two_processes_claim_600_events_each_exactly_once(logs: DatabaseConnection, spawn) -> None:
    """Fault row 7: 2 processes x 4 threads start together on a full queue."""
    # Both idle and listening first, then one bulk insert wakes both at once: a process that started
    # earlier on a full queue could otherwise drain it alone on a loaded machine.
    first, second = spawn("--size", "4"), spawn("--size", "4")
    with logs.session() as s:
        EventProcessor(s).enqueue_events([("test", {"i": i}) for i in range(600)])
    wait_for(lambda: status_counts(logs).get("completed") == 600, timeout=120, what="600 completed")
    assert scalar(logs, "SELECT count(*) FROM processed_log") == 600
    assert scalar(logs, "SELECT count(DISTINCT event_id) FROM processed_log") == 600
    assert scalar(logs, "SELECT count(DISTINCT pid) FROM processed_log") == 2  # both really took part
    assert scalar(logs, "SELECT max(attempts) FROM events") == 1
    for proc in (first, second):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_sigkilled_workers_event_is_finished_by_another_after_the_lease(logs: DatabaseConnection, spawn) -> None:
    """Fault row 8: SIGKILL mid-job; the lease expires; another process completes it, once."""
    with logs.session() as s:
        event = EventProcessor(s).enqueue_event("test", {"block": True, "block_seconds": 1})
    victim = spawn("--size", "2", "--lease", "2", "--reaper", "0.2")
    wait_for(lambda: scalar(logs, "SELECT count(*) FROM started_log"), what="the job started")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    survivor = spawn("--size", "2", "--lease", "2", "--reaper", "0.2")
    wait_for(lambda: status_counts(logs).get("completed") == 1, timeout=30, what="completed by the survivor")
    assert scalar(logs, "SELECT count(*) FROM processed_log") == 1
    assert scalar(logs, "SELECT pid FROM processed_log") == survivor.pid
    with logs.session() as s:
        row = s.execute(text("SELECT * FROM events WHERE id = :i"), {"i": event.id}).mappings().one()
    assert row["retry_count"] == 1 and row["attempt_log"][0]["error"] == "lease expired"
    assert_queue_invariants(logs, 3)


def test_sigterm_drains_releases_and_exits_zero(logs: DatabaseConnection, spawn) -> None:
    """Fault row 17: quick jobs finish, a job past the grace period is released at once, exit code 0."""
    with logs.session() as s:
        p = EventProcessor(s)
        stuck = p.enqueue_event("test", {"block": True})
        p.enqueue_events([("test", {"i": i}) for i in range(20)])
    proc = spawn("--size", "3", "--grace", "1")
    wait_for(lambda: scalar(logs, "SELECT count(*) FROM started_log"), what="the long job started")
    wait_for(lambda: status_counts(logs).get("completed") == 20, what="quick jobs done")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    with logs.session() as s:
        row = s.execute(text("SELECT * FROM events WHERE id = :i"), {"i": stuck.id}).mappings().one()
    assert row["status"] == "pending" and row["lease_token"] is None and row["retry_count"] == 0
