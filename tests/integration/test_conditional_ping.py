"""Conditional pre-ping (database/liveness.py): no ``SELECT 1`` for a connection used cleanly a moment ago,
yet a killed backend or a server restart still costs one reconnect and never an error seen by the caller.

Pings are counted by wrapping the dialect's ``do_ping``, which both this code and SQLAlchemy's own
``pool_pre_ping`` call, so a return to pinging every checkout fails these tests. Time is moved forward by
replacing the module's clock, never by sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError

import database.liveness as liveness
from agent.commands.context import AppContext
from agent.config import Config
from database import DatabaseConnection, EmbeddedPostgres
from tests.support.waiting import wait_for

THRESHOLD = 30.0


class Clock:
    """A monotonic clock the test moves forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(liveness, "_clock", fake)
    return fake


def counting_pings(db: DatabaseConnection) -> list[int]:
    """Count every ping the pool sends (one list entry per ping) on ``db``'s dialect."""
    pings: list[int] = []
    dialect: Any = db.engine.dialect
    real = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    dialect.do_ping = do_ping
    return pings


@pytest.fixture
def one_conn(database_url: str) -> Iterator[DatabaseConnection]:
    """A pool of exactly one connection, so every session reuses it."""
    db = DatabaseConnection(database_url, pool_size=1, max_overflow=0, ping_after=THRESHOLD)
    try:
        yield db
    finally:
        db.dispose()


def backend_pid(db: DatabaseConnection) -> int:
    with db.session() as s:
        return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(admin: DatabaseConnection, pid: int) -> None:
    """Kill backend ``pid`` and wait until it is gone, so its socket has been closed by the server."""
    with admin.engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar() is True
    wait_for(lambda: not _alive(admin, pid), what=f"backend {pid} to exit")


def _alive(admin: DatabaseConnection, pid: int) -> bool:
    with admin.engine.connect() as conn:
        return bool(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}).scalar())


def test_recently_used_connection_is_not_pinged(one_conn: DatabaseConnection, clock: Clock) -> None:
    pings = counting_pings(one_conn)
    pids = set()
    for _ in range(20):
        pids.add(backend_pid(one_conn))
        clock.now += THRESHOLD / 10  # each use is well inside the threshold of the previous one
    assert len(pids) == 1  # one connection, reused
    assert pings == []


def test_connection_idle_past_the_threshold_is_pinged(one_conn: DatabaseConnection, clock: Clock) -> None:
    pings = counting_pings(one_conn)
    pid = backend_pid(one_conn)
    clock.now += THRESHOLD + 1
    assert backend_pid(one_conn) == pid
    assert len(pings) == 1
    assert one_conn.get_ping_stats() == {"ok": 1, "dead": 0}
    assert backend_pid(one_conn) == pid  # used a moment ago again: no second ping
    assert len(pings) == 1


def test_idle_connection_with_a_killed_backend_is_replaced(
    one_conn: DatabaseConnection, db: DatabaseConnection, clock: Clock
) -> None:
    """Reliability: a killed backend costs one reconnect, not an error seen by the caller."""
    pings = counting_pings(one_conn)
    pid = backend_pid(one_conn)
    clock.now += THRESHOLD + 1
    terminate(db, pid)
    new_pid = backend_pid(one_conn)  # first try, no error
    assert new_pid != pid
    assert len(pings) == 1
    assert one_conn.get_ping_stats() == {"ok": 0, "dead": 1}


def test_recently_used_connection_with_a_killed_backend_is_replaced(
    one_conn: DatabaseConnection, db: DatabaseConnection, clock: Clock
) -> None:
    """Inside the threshold the server's FATAL and EOF on the socket give the dead connection away."""
    pings = counting_pings(one_conn)
    pid = backend_pid(one_conn)
    terminate(db, pid)
    with one_conn.session() as s:
        new_pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert new_pid != pid
    assert len(pings) == 1


def test_connection_whose_last_use_raised_is_pinged(one_conn: DatabaseConnection, clock: Clock) -> None:
    pings = counting_pings(one_conn)
    pid = backend_pid(one_conn)
    with pytest.raises(DataError), one_conn.session() as s:
        s.execute(text("SELECT 1 / 0"))
    assert pings == []
    assert backend_pid(one_conn) == pid
    assert len(pings) == 1  # the use after the error was checked
    assert backend_pid(one_conn) == pid
    assert len(pings) == 1  # and the one after that clean use was not


def test_ping_after_zero_pings_every_reuse(database_url: str) -> None:
    db = DatabaseConnection(database_url, pool_size=1, max_overflow=0, ping_after=0)
    try:
        pings = counting_pings(db)
        for _ in range(5):
            backend_pid(db)
        assert len(pings) == 4  # every checkout but the first, whose connection had just been opened
    finally:
        db.dispose()


def test_database_ping_after_setting_reaches_the_pool(database_url: str) -> None:
    ctx = AppContext(Config(environ={"DATABASE_URL": database_url, "DATABASE_PING_AFTER": "0"}, env_file=None))
    try:
        pings = counting_pings(ctx.db)
        for _ in range(3):
            backend_pid(ctx.db)
        assert len(pings) >= 2  # with the default of 1 s these back-to-back reuses would not be pinged
    finally:
        ctx.db.dispose()


@pytest.mark.slow
def test_first_session_after_a_server_restart_succeeds(tmp_path: Path, clock: Clock) -> None:
    """Reliability row 15: every pooled connection dies in a restart; the first session still works, and one
    failed ping discards the whole pool (the second connection is replaced without a ping of its own)."""
    server = EmbeddedPostgres(tmp_path / "data")
    url = server.start()
    db = DatabaseConnection(url, pool_size=2, max_overflow=0, ping_after=THRESHOLD)
    try:
        with db.session() as a, db.session() as b:  # two connections in the pool
            before = {s.execute(text("SELECT pg_backend_pid()")).scalar() for s in (a, b)}
        pings = counting_pings(db)
        server.stop()
        assert server.start() == url
        with db.session() as a, db.session() as b:  # used a moment ago (clock unchanged), yet dead
            after = {s.execute(text("SELECT pg_backend_pid()")).scalar() for s in (a, b)}
        assert len(before) == 2 and len(after) == 2 and not after & before
        assert len(pings) == 1
        assert db.get_ping_stats() == {"ok": 0, "dead": 1}
    finally:
        db.dispose()
        server.stop()
