"""The admin dashboard: what the queue looks like now, read from PostgreSQL and rendered with Jinja2.

Server-rendered HTML with no JavaScript; the only action is **retry** on a failed event (a POST that
``agent.health_server`` guards with ``agent.admin_auth``). Every number comes from the database at
request time, so any replica shows the whole cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text
from sqlalchemy.orm import Session

from agent.event_processor import EventProcessor
from agent.queue_admin import list_events
from database import DatabaseConnection

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
RECENT_EVENTS = 25
FAILED_EVENTS = 25
RECENT_RUNS = 20
#: Columns of ``agent_runs`` shown when present (the table belongs to the assistant; any schema works).
AGENT_RUN_COLUMNS = (
    "id",
    "event_id",
    "model",
    "mode",
    "status",
    "input_tokens",
    "output_tokens",
    "tool_calls",
    "cost_usd",
    "duration_ms",
    "error",
    "created_at",
)

_THROUGHPUT_SQL = text(
    "SELECT count(*) FILTER (WHERE status = 'completed' "
    "                        AND processed_at > statement_timestamp() - interval '5 minutes'),"
    "       count(*) FILTER (WHERE status = 'completed'),"
    "       count(*) FILTER (WHERE status = 'failed') "
    "FROM events WHERE status IN ('completed', 'failed') "
    "AND processed_at > statement_timestamp() - interval '1 hour'"
)
_WORKERS_SQL = text(
    "SELECT split_part(claimed_by, ':', 1) || ':' || split_part(claimed_by, ':', 2) || ':' "
    "       || split_part(claimed_by, ':', 3) AS pool, "
    "       count(*) AS claims, max(claimed_at) AS last_claim "
    "FROM events WHERE claimed_at > statement_timestamp() - interval '1 hour' AND claimed_by IS NOT NULL "
    "GROUP BY 1 ORDER BY 3 DESC LIMIT 50"
)


@dataclass
class DashboardData:
    """Everything the page shows."""

    counts: dict[str, int]
    oldest_due_age_seconds: float | None
    completed_last_5m: int
    completed_last_hour: int
    failed_last_hour: int
    recent: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    agent_runs: list[dict[str, Any]] | None  # None: the agent_runs table does not exist
    agent_run_columns: list[str] = field(default_factory=list)
    generated_at: datetime | None = None


def has_table(session: Session, name: str) -> bool:
    """Whether a table called ``name`` exists in the current schema search path."""
    return session.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name}).scalar_one()


def collect(db: DatabaseConnection) -> DashboardData:
    """Read the dashboard's numbers from the database (one short read-only transaction)."""
    with db.session() as session:
        proc = EventProcessor(session)
        counts = proc.get_queue_stats()
        oldest = proc.oldest_pending_age()
        last_5m, last_hour, failed_hour = session.execute(_THROUGHPUT_SQL).one()
        workers = [dict(r) for r in session.execute(_WORKERS_SQL).mappings().all()]
        runs: list[dict[str, Any]] | None = None
        columns: list[str] = []
        if has_table(session, "agent_runs"):
            rows = session.execute(text("SELECT * FROM agent_runs ORDER BY 1 DESC LIMIT :n"), {"n": RECENT_RUNS})
            keys = list(rows.keys())
            columns = [c for c in AGENT_RUN_COLUMNS if c in keys] or keys[:8]
            runs = [{c: row[c] for c in columns} for row in rows.mappings().all()]
        generated_at = session.execute(text("SELECT statement_timestamp()")).scalar_one()
        return DashboardData(
            counts=counts,
            oldest_due_age_seconds=oldest,
            completed_last_5m=int(last_5m),
            completed_last_hour=int(last_hour),
            failed_last_hour=int(failed_hour),
            recent=list_events(session, limit=RECENT_EVENTS),
            failed=list_events(session, status="failed", limit=FAILED_EVENTS),
            workers=workers,
            agent_runs=runs,
            agent_run_columns=columns,
            generated_at=generated_at,
        )


def retry_event(db: DatabaseConnection, event_id: int) -> bool:
    """Requeue one failed event with a fresh retry budget; ``False`` if it is not failed (or absent)."""
    with db.session() as session:
        return EventProcessor(session).retry_failed([event_id]) == 1


class DashboardRenderer:
    """Renders ``templates/dashboard.html`` (autoescaped)."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["age"] = format_age

    def render(self, data: DashboardData | None, **context: Any) -> str:
        """The page; ``data`` is ``None`` when the database could not be read (the page says so)."""
        return self._env.get_template("dashboard.html").render(data=data, **context)


def format_age(seconds: float | None) -> str:
    """``None`` → ``-``; otherwise a short human duration (``42s``, ``3m 5s``, ``2h 10m``)."""
    if seconds is None:
        return "-"
    total = int(seconds)
    if total < 60:
        return f"{seconds:.1f}s"
    if total < 3600:
        return f"{total // 60}m {total % 60}s"
    return f"{total // 3600}h {total % 3600 // 60}m"
