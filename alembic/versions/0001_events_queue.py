"""The events queue: table, fencing-token sequence, due/lease indexes and the NOTIFY trigger.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the SQL in database/models.py: a migration must not change when the models do.
NOTIFY_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION athenaeum_notify_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('athenaeum_events', '');
    RETURN NULL;
END
$$
"""
NOTIFY_TRIGGER_SQL = (
    "CREATE TRIGGER events_notify_insert AFTER INSERT ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION athenaeum_notify_events()"
)


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("events_lease_token_seq")))
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("visibility_timeout", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dedupe_key", sa.Text(), nullable=True),
        sa.Column("run_after", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lease_token", sa.BigInteger(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt_log", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'completed', 'failed')",
            name=op.f("ck_events_status_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_events_dedupe_key")),
    )
    op.create_index(
        "ix_events_due",
        "events",
        ["run_after", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_events_lease",
        "events",
        ["visibility_timeout"],
        unique=False,
        postgresql_where=sa.text("status = 'processing'"),
    )
    op.create_index("ix_events_status_created", "events", ["status", "created_at"], unique=False)
    op.execute(NOTIFY_FUNCTION_SQL)
    op.execute(NOTIFY_TRIGGER_SQL)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS events_notify_insert ON events")
    op.execute("DROP FUNCTION IF EXISTS athenaeum_notify_events()")
    op.drop_index("ix_events_status_created", table_name="events")
    op.drop_index("ix_events_lease", table_name="events")
    op.drop_index("ix_events_due", table_name="events")
    op.drop_table("events")
    op.execute(sa.schema.DropSequence(sa.Sequence("events_lease_token_seq")))
