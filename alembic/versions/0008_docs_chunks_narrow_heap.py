"""Docs keyword search on large indexes: a (source, lexeme) GIN index and a narrow ``docs_chunks`` heap.

The keyword arm of ``search_docs`` reads the postings of a query's rarest lexemes, and every posting costs a
visit to the chunk's heap row (a GIN index has no index-only scans). Two changes make that cheap:

- ``ix_docs_chunks_source_id_tsv`` indexes ``(source_id, tsv)`` (``btree_gin`` supplies the GIN operator class
  for ``bigint``), so a search of one source reads only that source's postings: the manual searched inside a
  107k-chunk index read the postings of every source and dropped 95% of them after the heap visit. It replaces
  both the plain ``tsv`` index and the ``source_id`` b-tree; with the b-tree present, the planner preferred it
  for a small source and matched ``tsv`` row by row (100+ ms), because it does not cost de-TOASTing.
- ``toast_tuple_target = 128`` moves the text and the tsvector of a chunk out of line (the embedding already
  was), so a heap page holds ~50 chunks instead of ~4 and the postings of a query touch 3x fewer pages. The
  text and tsvector are read only for the few chunks a search returns or ranks.

Existing rows are rewritten (``VACUUM FULL``, outside the migration's transaction) so they get the new layout.
That locks ``docs_chunks`` and rebuilds its indexes, HNSW included: ~2 s for the PostgreSQL manual (7k chunks),
about 30 s per 100k chunks on 2 cores.

``btree_gin`` ships with PostgreSQL (contrib) and is a trusted extension: the database owner can create it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: For the rewrite's HNSW rebuild: with the default 64MB the graph of 100k chunks does not fit and the build
#: takes several times longer. Set for this session only.
REWRITE_MAINTENANCE_WORK_MEM = "256MB"


def _rewrite_docs_chunks() -> None:
    """Rewrite ``docs_chunks`` so existing rows take the current storage parameters."""
    with op.get_context().autocommit_block():
        op.execute(f"SET maintenance_work_mem = '{REWRITE_MAINTENANCE_WORK_MEM}'")
        op.execute("VACUUM FULL docs_chunks")
        op.execute("RESET maintenance_work_mem")
    # The rewrite rebuilt the vector indexes: no entry points at a deleted row any more.
    op.execute("UPDATE vector_index_churn SET dead_entries = 0 WHERE index_name LIKE 'ix\\_docs\\_chunks\\_%'")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.create_index(
        "ix_docs_chunks_source_id_tsv",
        "docs_chunks",
        ["source_id", "tsv"],
        unique=False,
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    )
    op.drop_index("ix_docs_chunks_tsv", table_name="docs_chunks")
    op.drop_index("ix_docs_chunks_source_id", table_name="docs_chunks")
    op.execute("ALTER TABLE docs_chunks SET (toast_tuple_target = 128)")
    _rewrite_docs_chunks()


def downgrade() -> None:
    op.create_index("ix_docs_chunks_source_id", "docs_chunks", ["source_id"], unique=False)
    op.create_index(
        "ix_docs_chunks_tsv",
        "docs_chunks",
        ["tsv"],
        unique=False,
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    )
    op.drop_index("ix_docs_chunks_source_id_tsv", table_name="docs_chunks")
    # Rows keep their narrow layout until rewritten: 0007's code reads them the same way.
    op.execute("ALTER TABLE docs_chunks RESET (toast_tuple_target)")
    # btree_gin stays: other objects may use it, and it costs nothing (as ``vector`` stays after 0004).
