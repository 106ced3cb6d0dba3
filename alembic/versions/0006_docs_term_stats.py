"""Term statistics for the docs keyword search; the full-text GIN index without a pending list.

``docs_terms`` holds, per source, how many chunks contain each lexeme (from ``ts_stat``), and
``docs_sources.chunk_count`` the number of chunks: the keyword arm reads its IDF weights from them instead of
counting matches on every search. ``fastupdate = off`` makes every insert go straight into the GIN index: a
pending list of recent inserts is scanned linearly by every search until a vacuum merges it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("docs_sources", sa.Column("chunk_count", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "docs_terms",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("df", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["docs_sources.id"], name=op.f("fk_docs_terms_source_id_docs_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("source_id", "lexeme", name=op.f("pk_docs_terms")),
    )
    # Sources ingested before this revision get their statistics now.
    op.execute(
        "INSERT INTO docs_terms (source_id, lexeme, df) SELECT s.id, t.word, t.ndoc FROM docs_sources s, "
        "LATERAL ts_stat(format('SELECT tsv FROM docs_chunks WHERE source_id = %s', s.id)) AS t"
    )
    op.execute("UPDATE docs_sources s SET chunk_count = (SELECT count(*) FROM docs_chunks c WHERE c.source_id = s.id)")
    op.execute("ALTER INDEX ix_docs_chunks_tsv SET (fastupdate = off)")
    op.execute("SELECT gin_clean_pending_list('ix_docs_chunks_tsv'::regclass)")


def downgrade() -> None:
    op.execute("ALTER INDEX ix_docs_chunks_tsv RESET (fastupdate)")
    op.drop_table("docs_terms")
    op.drop_column("docs_sources", "chunk_count")
