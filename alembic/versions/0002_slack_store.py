"""The Slack store: messages (a TimescaleDB hypertable when the extension is available), channels,
users, reactions and import progress.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

TimescaleDB: when the extension is installed, or available and preloaded, ``slack_messages`` becomes a
hypertable on ``created_at`` with 7-day chunks, compressed after 45 days (segmented by channel). Its primary
key ``(channel_id, ts, created_at)`` includes the time column, as hypertables require. Without TimescaleDB the
same tables live on plain PostgreSQL. ``-x timescaledb=true|false`` forces the choice (``alembic upgrade head
--sql -x timescaledb=true`` prints the TimescaleDB SQL for a ``psql -f`` deployment).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import context, op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK_INTERVAL = "7 days"
COMPRESS_AFTER = "45 days"


def timescaledb_statements() -> list[str]:
    """The SQL that turns ``slack_messages`` into a compressed hypertable (frozen here, like all migration SQL)."""
    return [
        "CREATE EXTENSION IF NOT EXISTS timescaledb",
        "SELECT create_hypertable('slack_messages', 'created_at', "
        f"chunk_time_interval => INTERVAL '{CHUNK_INTERVAL}', migrate_data => true)",
        "ALTER TABLE slack_messages SET (timescaledb.compress, timescaledb.compress_segmentby = 'channel_id', "
        "timescaledb.compress_orderby = 'created_at DESC, ts DESC')",
        f"SELECT add_compression_policy('slack_messages', INTERVAL '{COMPRESS_AFTER}', if_not_exists => true)",
    ]


def _use_timescaledb() -> bool:
    forced = context.get_x_argument(as_dictionary=True).get("timescaledb")
    if forced is not None:
        return forced.strip().lower() in ("1", "true", "yes", "on")
    if context.is_offline_mode():
        return False
    bind = op.get_bind()
    installed = bind.execute(sa.text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"))
    if installed.scalar():
        return True
    available = bind.execute(
        sa.text("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')")
    ).scalar()
    preloaded = "timescaledb" in str(bind.execute(sa.text("SHOW shared_preload_libraries")).scalar() or "")
    return bool(available and preloaded)


def upgrade() -> None:
    _create_tables()
    if _use_timescaledb():
        for statement in timescaledb_statements():
            op.execute(statement)


def _create_tables() -> None:
    op.create_table(
        "slack_channels",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("team_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column("is_private", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_archived", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_ext_shared", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_im", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_mpim", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "raw", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_channels")),
    )
    op.create_index("ix_slack_channels_name", "slack_channels", ["name"], unique=False)
    op.create_table(
        "slack_import_progress",
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("oldest", sa.Text(), nullable=True),
        sa.Column("latest", sa.Text(), nullable=True),
        sa.Column("resume_before", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("messages_imported", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_slack_import_progress")),
    )
    op.create_table(
        "slack_messages",
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("ts", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("team_id", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("bot_id", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("thread_ts", sa.Text(), nullable=True),
        sa.Column("subtype", sa.Text(), nullable=True),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reply_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("latest_reply", sa.Text(), nullable=True),
        sa.Column("files", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "raw", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english'::regconfig, text)", persisted=True),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "ts", "created_at", name=op.f("pk_slack_messages")),
    )
    op.create_index("ix_slack_messages_search", "slack_messages", ["search"], unique=False, postgresql_using="gin")
    op.create_index(
        "ix_slack_messages_thread",
        "slack_messages",
        ["channel_id", "thread_ts"],
        unique=False,
        postgresql_where=sa.text("thread_ts IS NOT NULL"),
    )
    op.create_index("ix_slack_messages_user_id", "slack_messages", ["user_id"], unique=False)
    op.create_table(
        "slack_reactions",
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("ts", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "ts", "name", "user_id", name=op.f("pk_slack_reactions")),
    )
    op.create_table(
        "slack_users",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("team_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("real_name", sa.Text(), nullable=True),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("tz", sa.Text(), nullable=True),
        sa.Column("is_bot", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "raw", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_users")),
    )


def downgrade() -> None:
    op.drop_table("slack_users")
    op.drop_table("slack_reactions")
    op.drop_index("ix_slack_messages_user_id", table_name="slack_messages")
    op.drop_index(
        "ix_slack_messages_thread", table_name="slack_messages", postgresql_where=sa.text("thread_ts IS NOT NULL")
    )
    op.drop_index("ix_slack_messages_search", table_name="slack_messages", postgresql_using="gin")
    op.drop_table("slack_messages")
    op.drop_table("slack_import_progress")
    op.drop_index("ix_slack_channels_name", table_name="slack_channels")
    op.drop_table("slack_channels")
