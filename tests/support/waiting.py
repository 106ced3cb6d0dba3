"""Waiting on conditions (never on time alone): poll a predicate until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import text

from database import DatabaseConnection

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.02, what: str = "") -> T:
    """Return the first truthy value of ``predicate()``; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def scalar(db: DatabaseConnection, sql: str, **params: object) -> object:
    with db.session() as s:
        return s.execute(text(sql), params).scalar()


def status_counts(db: DatabaseConnection) -> dict[str, int]:
    with db.session() as s:
        return {k: v for k, v in s.execute(text("SELECT status, count(*) FROM events GROUP BY status")).all()}


def assert_queue_invariants(db: DatabaseConnection, max_retry_count: int) -> None:
    """The invariants of reliability.md, checked in SQL after every fault test."""
    with db.session() as s:
        expired = s.execute(
            text("SELECT count(*) FROM events WHERE status = 'processing' AND visibility_timeout < now()")
        ).scalar()
        over = s.execute(text("SELECT count(*) FROM events WHERE retry_count > :m"), {"m": max_retry_count}).scalar()
        failed_without_reason = s.execute(
            text("SELECT count(*) FROM events WHERE status = 'failed' AND coalesce(error_message, '') = ''")
        ).scalar()
    assert expired == 0, "an expired lease was left in processing"
    assert over == 0, "an event retried more than MAX_RETRY_COUNT times"
    assert failed_without_reason == 0, "a failed event has no error message"
