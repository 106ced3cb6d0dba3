"""Readiness: may this process take traffic? Named checks, each a callable, evaluated on every probe.

The checks ``run`` installs: ``database`` (a ``SELECT 1``), ``migrations`` (the schema is at the head
revision the code expects), ``worker_pool`` (started and all its threads alive) and, when Slack is
configured, ``slack`` (the Socket Mode connection is up). A check returns ``True``/``False`` or a
``(ok, detail)`` pair; one that raises counts as not ready, with the exception class as the detail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from database import DatabaseConnection
from database.migrations import current_revisions, head_revisions

CheckResult = bool | tuple[bool, str]
Check = Callable[[], CheckResult]


@dataclass(frozen=True)
class ReadinessReport:
    """The outcome of one probe: overall readiness and each check's result."""

    ready: bool
    checks: dict[str, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of ``/readyz``."""
        return {"status": "ready" if self.ready else "not ready", "checks": self.checks}


class Readiness:
    """An ordered set of named checks; the process is ready when every check passes."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()

    def add_check(self, name: str, check: Check) -> None:
        """Add (or replace) the check called ``name``."""
        with self._lock:
            self._checks[name] = check

    def evaluate(self) -> ReadinessReport:
        """Run every check; later checks still run when an earlier one fails (the body shows them all)."""
        with self._lock:
            checks = list(self._checks.items())
        results: dict[str, dict[str, Any]] = {}
        for name, check in checks:
            try:
                outcome = check()
            except Exception as exc:
                outcome = (False, type(exc).__name__)
            ok, detail = outcome if isinstance(outcome, tuple) else (bool(outcome), "")
            results[name] = {"ok": bool(ok), **({"detail": detail} if detail else {})}
        return ReadinessReport(all(r["ok"] for r in results.values()), results)


def database_check(db: DatabaseConnection) -> Check:
    """A check that the database answers ``SELECT 1``."""

    def check() -> CheckResult:
        return (True, "") if db.health_check() else (False, "database unreachable")

    return check


def migrations_check(db: DatabaseConnection, expected: set[str] | None = None) -> Check:
    """A check that the schema is at ``expected`` (the checkout's head revisions, read once)."""
    heads = set(expected) if expected is not None else head_revisions()

    def check() -> CheckResult:
        current = current_revisions(db.engine)
        if current == heads:
            return True, ""
        found = sorted(current) or "nothing"
        return False, f"schema at {found}, expected {sorted(heads)}: run `python athenaeum.py db upgrade`"

    return check


def pool_check(pool: Any) -> Check:
    """A check that a ``WorkerPool`` runs: started, not draining, every thread alive."""

    def check() -> CheckResult:
        stats = pool.get_stats()
        if not stats.get("running"):
            return False, "worker pool not running"
        if not pool.health_check():
            return False, "worker pool stopping, a pool thread died, or the database is unreachable"
        return True, f"{stats.get('in_flight', 0)}/{stats.get('size', 0)} in flight"

    return check
