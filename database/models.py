"""ORM models of the queue. Alembic migrations own the schema; these mirror it (a test keeps them equal)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    MetaData,
    Sequence,
    Text,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic autogenerate and hand-written migrations agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EVENT_STATUSES = ("pending", "processing", "completed", "failed")

#: Channel on which an insert into ``events`` is announced to other processes (see ``database.notify``).
EVENTS_NOTIFY_CHANNEL = "athenaeum_events"


class Base(DeclarativeBase):
    """Declarative base of every Athenaeum model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Fencing tokens come from one sequence: every claim gets a number no earlier claim had, so a
# stale owner can never match the current lease, even after a release or a reclaim.
lease_token_seq = Sequence("events_lease_token_seq", metadata=Base.metadata)


class Event(Base):
    """One recorded event in the queue.

    ``retry_count`` counts failed attempts that were rescheduled; ``attempts`` counts claims. The
    ``lease_token`` is the fencing token of the current claim; ``run_after`` is when the event is due.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'pending'"))
    visibility_timeout: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What correctness needs beyond the product README's columns:
    dedupe_key: Mapped[str | None] = mapped_column(Text, unique=True)
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    lease_token: Mapped[int | None] = mapped_column(BigInteger)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'processing', 'completed', 'failed')", name="status_valid"),
        # A claim reads only due pending rows in due order: this partial index keeps it O(log n)
        # however many completed rows pile up.
        Index(
            "ix_events_due",
            "run_after",
            "id",
            postgresql_where=text("status = 'pending'"),
        ),
        # The reaper looks only at leased rows.
        Index(
            "ix_events_lease",
            "visibility_timeout",
            postgresql_where=text("status = 'processing'"),
        ),
        # `events list --status failed`, purges and stats by status.
        Index("ix_events_status_created", "status", "created_at"),
    )


# Other processes learn of new events through NOTIFY. A statement-level trigger fires once per
# INSERT statement (a bulk insert is one wake-up), only on insert (claims and acks wake nobody), and
# delivery happens at commit, so a listener never wakes before the row is visible.
NOTIFY_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION athenaeum_notify_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{EVENTS_NOTIFY_CHANNEL}', '');
    RETURN NULL;
END
$$
"""
NOTIFY_TRIGGER_SQL = (
    "CREATE TRIGGER events_notify_insert AFTER INSERT ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION athenaeum_notify_events()"
)

event.listen(Event.__table__, "after_create", DDL(NOTIFY_FUNCTION_SQL))
event.listen(Event.__table__, "after_create", DDL(NOTIFY_TRIGGER_SQL))

# Models kept in their own modules register on Base.metadata here, so Alembic sees every table.
from database import docs_models as _docs_models  # noqa: E402, F401
from database import slack_embedding_models as _slack_embedding_models  # noqa: E402, F401
from database import vector_index_models as _vector_index_models  # noqa: E402, F401
