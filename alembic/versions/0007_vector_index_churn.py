"""Count dead HNSW index entries per vector index, so large deletes can trigger a rebuild.

``vector_index_churn`` holds, per index, how many entries point at rows deleted (or updated) since the index
was last rebuilt; statement-level triggers on ``docs_chunks`` and ``slack_message_embeddings`` keep it
(see ``database/vector_index_models.py`` for why a trigger). Rows already deleted before this revision are
not counted: ``docs reindex`` rebuilds an index that is bloated from before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHURN_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION athenaeum_count_vector_churn() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    counts bigint[];
    query text := 'SELECT ARRAY[';
    i integer := 0;
BEGIN
    WHILE i < TG_NARGS LOOP
        query := query || CASE WHEN i > 0 THEN ', ' ELSE '' END
            || format('count(*) FILTER (WHERE %I IS NOT NULL)', TG_ARGV[i]);
        i := i + 2;
    END LOOP;
    EXECUTE query || '] FROM old_rows' INTO counts;
    i := 0;
    WHILE i < TG_NARGS LOOP
        IF counts[i / 2 + 1] > 0 THEN
            INSERT INTO vector_index_churn AS c (index_name, dead_entries) VALUES (TG_ARGV[i + 1], counts[i / 2 + 1])
            ON CONFLICT (index_name) DO UPDATE SET dead_entries = c.dead_entries + EXCLUDED.dead_entries;
        END IF;
        i := i + 2;
    END LOOP;
    RETURN NULL;
END
$$
"""

TABLES = ("docs_chunks", "slack_message_embeddings")


def _trigger_args(table: str) -> str:
    return ", ".join(f"'embedding_{d}', 'ix_{table}_embedding_{d}'" for d in (384, 1536))


def upgrade() -> None:
    op.create_table(
        "vector_index_churn",
        sa.Column("index_name", sa.Text(), nullable=False),
        sa.Column("dead_entries", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("index_name", name=op.f("pk_vector_index_churn")),
    )
    op.execute(CHURN_FUNCTION_SQL)
    for table in TABLES:
        for event in ("DELETE", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER {table}_vector_churn_{event.lower()} AFTER {event} ON {table} "
                "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
                f"EXECUTE FUNCTION athenaeum_count_vector_churn({_trigger_args(table)})"
            )


def downgrade() -> None:
    for table in TABLES:
        for event in ("DELETE", "UPDATE"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_vector_churn_{event.lower()} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS athenaeum_count_vector_churn()")
    op.drop_table("vector_index_churn")
