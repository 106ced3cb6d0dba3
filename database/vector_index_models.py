"""How many entries of each HNSW index point at deleted rows since it was last built (``vector_index_churn``).

pgvector's HNSW vacuum marks index entries of deleted rows as deleted and repairs the neighbours around them,
but never shrinks the graph: after a large delete the index keeps its size and searches walk through the dead
part (measured: a 100k-chunk source deleted, index 200 MB instead of 14 MB, vector search 6 -> 22 ms after
VACUUM). Only a rebuild heals it, so something has to know when one is worth it.

Why a trigger-fed counter rather than counting in each code path: rows leave these tables by many routes
(``docs ingest --rebuild`` cascades from ``docs_pages``, a changed page deletes its chunks, deleting a source
cascades from ``docs_sources``, a re-embed with another model updates every message embedding, and anyone with
``psql``). A statement-level trigger with a transition table sees all of them, costs one small query per
statement, and commits or rolls back with the change it counts, so the count stays exact across many small
ingests that each delete a little. An UPDATE counts too: it leaves the old row version's entry dead in the
index just like a delete. (It also counts an update that changes no vector, e.g. an edited message's hash;
no code path does that without rewriting the vector.)

The counter row of an index is a hot row: two transactions deleting from the same table wait for each other's
commit on it. The writers here commit in small batches, so the wait is short.

The SQL is repeated in migration ``0007`` (migrations stay frozen); the listeners below give
``create_tables()`` the same function and triggers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, BigInteger, DateTime, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from database.docs_models import DocsChunk
from database.models import Base
from database.slack_embedding_models import SlackMessageEmbedding


class VectorIndexChurn(Base):
    """Dead entries of one vector index since it was last rebuilt (no row: none counted yet)."""

    __tablename__ = "vector_index_churn"

    index_name: Mapped[str] = mapped_column(Text, primary_key=True)
    dead_entries: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    rebuilt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Arguments: pairs of (vector column, index name). One dynamic query per statement counts every column;
# the transition table is visible to EXECUTE because PL/pgSQL registers it with SPI.
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

#: Tables with HNSW indexes whose churn is counted: table -> ((column, index name), ...).
COUNTED_VECTOR_INDEXES: dict[str, tuple[tuple[str, str], ...]] = {
    "docs_chunks": (
        ("embedding_384", "ix_docs_chunks_embedding_384"),
        ("embedding_1536", "ix_docs_chunks_embedding_1536"),
    ),
    "slack_message_embeddings": (
        ("embedding_384", "ix_slack_message_embeddings_embedding_384"),
        ("embedding_1536", "ix_slack_message_embeddings_embedding_1536"),
    ),
}


def churn_trigger_sql(table: str) -> list[str]:
    """The ``CREATE TRIGGER`` statements (after DELETE, after UPDATE) that count ``table``'s dead entries."""
    args = ", ".join(f"'{part}'" for pair in COUNTED_VECTOR_INDEXES[table] for part in pair)
    return [
        f"CREATE TRIGGER {table}_vector_churn_{op.lower()} AFTER {op} ON {table} "
        f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION athenaeum_count_vector_churn({args})"
        for op in ("DELETE", "UPDATE")
    ]


# DDL() formats its text with %, so the format() placeholders are escaped.
event.listen(Base.metadata, "before_create", DDL(CHURN_FUNCTION_SQL.replace("%", "%%")))
for _model in (DocsChunk, SlackMessageEmbedding):
    for _statement in churn_trigger_sql(_model.__tablename__):
        event.listen(_model.__table__, "after_create", DDL(_statement))
