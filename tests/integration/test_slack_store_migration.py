"""Migration 0002: the plain PostgreSQL path, and the SQL of the TimescaleDB branch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect

from database import DatabaseConnection, message_storage

ROOT = Path(__file__).resolve().parents[2]


def test_plain_postgresql_path_builds_the_slack_store(db: DatabaseConnection) -> None:
    insp = inspect(db.engine)
    assert {"slack_messages", "slack_channels", "slack_users", "slack_reactions", "slack_import_progress"} <= set(
        insp.get_table_names()
    )
    assert insp.get_pk_constraint("slack_messages")["constrained_columns"] == ["channel_id", "ts", "created_at"]
    columns = {c["name"] for c in insp.get_columns("slack_messages")}
    assert {
        "channel_id",
        "ts",
        "user_id",
        "text",
        "thread_ts",
        "created_at",
        "team_id",
        "subtype",
        "edited_at",
        "is_deleted",
        "deleted_at",
        "reply_count",
        "files",
        "raw",
        "search",
    } <= columns
    indexes = {i["name"] for i in insp.get_indexes("slack_messages")}
    assert "ix_slack_messages_search" in indexes
    with db.session() as s:
        assert message_storage(s) == "postgresql"


def _offline_sql(*extra: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *extra, "upgrade", "0001:0002", "--sql"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_the_timescaledb_branch_makes_a_compressed_hypertable() -> None:
    sql = _offline_sql("-x", "timescaledb=true")
    assert "CREATE EXTENSION IF NOT EXISTS timescaledb;" in sql
    assert (
        "SELECT create_hypertable('slack_messages', 'created_at', "
        "chunk_time_interval => INTERVAL '7 days', migrate_data => true);"
    ) in sql
    assert "timescaledb.compress_segmentby = 'channel_id'" in sql
    assert "SELECT add_compression_policy('slack_messages', INTERVAL '45 days', if_not_exists => true);" in sql
    # The hypertable's unique key includes its time column.
    assert "CONSTRAINT pk_slack_messages PRIMARY KEY (channel_id, ts, created_at)" in sql
    assert sql.index("CREATE TABLE slack_messages") < sql.index("create_hypertable")


def test_without_timescaledb_the_sql_is_plain() -> None:
    sql = _offline_sql()
    assert "CREATE TABLE slack_messages" in sql
    assert "create_hypertable" not in sql and "timescaledb" not in sql
