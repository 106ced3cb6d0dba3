"""Read-side queries for operators: event listings and details (the CLI and the dashboard use them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from database.models import EVENT_STATUSES, Event

LIST_COLUMNS = (
    Event.id,
    Event.event_type,
    Event.status,
    Event.retry_count,
    Event.attempts,
    Event.created_at,
    Event.run_after,
    Event.processed_at,
    Event.claimed_by,
    Event.error_message,
)


def list_events(session: Session, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest events (optionally of one status), newest first, without payloads.

    Raises:
        ValueError: ``status`` is not one of the four statuses.
    """
    if status is not None and status not in EVENT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(EVENT_STATUSES)}, got {status!r}")
    stmt = select(*LIST_COLUMNS).order_by(Event.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Event.status == status)
    return [dict(row) for row in session.execute(stmt).mappings().all()]


def get_event(session: Session, event_id: int) -> dict[str, Any] | None:
    """Every column of one event (payload and attempt history included), or ``None``."""
    row = session.execute(select(*Event.__table__.c).where(Event.id == event_id)).mappings().first()
    return dict(row) if row else None
