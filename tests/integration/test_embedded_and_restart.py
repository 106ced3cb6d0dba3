"""The embedded PostgreSQL default, its recovery after crashes, and a server restart under load (row 15)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from agent import EventProcessor, WorkerPool
from database import DatabaseConnection, EmbeddedPostgres, embedded
from database.embedded import shared_buffers_for_machine
from tests.conftest import migrate
from tests.support.waiting import assert_queue_invariants, status_counts, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "data")
    yield server
    server.stop()


def _healthy(url: str) -> bool:
    db = DatabaseConnection(url)
    try:
        return db.health_check()
    finally:
        db.dispose()


def _postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])


def test_embedded_server_starts_with_pgvector_and_is_reused(private_server: EmbeddedPostgres) -> None:
    url = private_server.start()
    assert url.startswith("postgresql+psycopg2://") and "/athenaeum?" in url
    first_pid = _postmaster_pid(private_server)
    assert private_server.start() == url  # a second start reuses the running server
    assert _postmaster_pid(private_server) == first_pid
    db = DatabaseConnection(url)
    try:
        with db.session() as s:
            s.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            assert s.execute(text("SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector")).scalar() >= 0
    finally:
        db.dispose()


def _shared_buffers_mb(url: str) -> int:
    db = DatabaseConnection(url)
    try:
        with db.session() as s:
            return int(
                s.execute(
                    text("SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
                ).scalar()
            )
    finally:
        db.dispose()


def test_embedded_server_is_sized_for_the_machine_and_keeps_an_operators_choice(
    private_server: EmbeddedPostgres,
) -> None:
    url = private_server.start()
    wanted = shared_buffers_for_machine()
    assert 128 <= wanted <= 1024
    assert _shared_buffers_mb(url) == wanted
    db = DatabaseConnection(url)
    try:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ALTER SYSTEM SET shared_buffers = '200MB'"))
    finally:
        db.dispose()
    private_server.stop()
    assert _shared_buffers_mb(private_server.start()) == 200


def test_a_size_that_does_not_fit_falls_back_to_the_stock_size(
    private_server: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 TB of shared memory cannot be mapped here: the restart fails, and the server still comes up."""
    monkeypatch.setattr(embedded, "shared_buffers_for_machine", lambda: 4 * 1024 * 1024)
    url = private_server.start()
    assert _shared_buffers_mb(url) == 128
    assert "shared_buffers = '128MB'" in (private_server.pgdata / "postgresql.auto.conf").read_text()


def test_embedded_server_recovers_after_being_killed(private_server: EmbeddedPostgres) -> None:
    url = private_server.start()
    db = DatabaseConnection(url)
    with db.session() as s:
        s.execute(text("CREATE TABLE kept (v int)"))
        s.execute(text("INSERT INTO kept VALUES (42)"))
    db.dispose()
    os.kill(_postmaster_pid(private_server), signal.SIGKILL)
    wait_for(lambda: not _healthy(url), what="server down")
    assert private_server.start() == url  # stale postmaster.pid detected; crash recovery replays the WAL
    db = DatabaseConnection(url)
    try:
        with db.session() as s:
            assert s.execute(text("SELECT v FROM kept")).scalar() == 42
    finally:
        db.dispose()


def test_stale_pidfile_of_an_unrelated_process_is_recovered(private_server: EmbeddedPostgres) -> None:
    url = private_server.start()
    private_server.stop()
    # A crash left postmaster.pid behind and the pid now belongs to someone else (this test process).
    (private_server.pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{private_server.pgdata}\n")
    assert private_server.start() == url
    assert _healthy(url)


def test_workers_resume_after_a_postgresql_restart(private_server: EmbeddedPostgres) -> None:
    """Fault row 15: restart the server while events flow; nothing is lost."""
    url = private_server.start()
    migrate(url)
    db = DatabaseConnection(url)
    gate = threading.Event()
    pool = WorkerPool(
        3,
        db,
        lambda e: gate.wait(0.005),
        visibility_timeout=3,
        reaper_interval=0.3,
        poll_interval=0.3,
        retry_base_delay=0.05,
    )
    try:
        with db.session() as s:
            EventProcessor(s).enqueue_events([("test", {"i": i}) for i in range(100)])
        pool.start()
        wait_for(lambda: status_counts(db).get("completed", 0) >= 20, what="events flowing")
        private_server.stop()
        assert private_server.start() == url
        with db.session() as s:
            EventProcessor(s).enqueue_events([("test", {"after": i}) for i in range(50)])
        wait_for(lambda: status_counts(db) == {"completed": 150}, timeout=60, what="all 150 completed")
        assert pool.health_check()
        assert pool.get_stats()["db_errors"] >= 1
        assert_queue_invariants(db, 3)
    finally:
        pool.stop(timeout=2)
        db.dispose()
