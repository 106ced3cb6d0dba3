"""Documentation index: sources, pages, chunks with pgvector (HNSW, cosine) and full text (GIN).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "docs_sources",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("embedding_model", sa.Text(), nullable=False),
        sa.Column("embedding_dimensions", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_docs_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_docs_sources_name")),
    )
    op.create_table(
        "docs_pages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["docs_sources.id"], name=op.f("fk_docs_pages_source_id_docs_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_docs_pages")),
        sa.UniqueConstraint("source_id", "url", name=op.f("uq_docs_pages_source_id_url")),
    )
    op.create_index("ix_docs_pages_url", "docs_pages", ["url"], unique=False)
    op.create_table(
        "docs_chunks",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("page_id", sa.BigInteger(), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tsv", postgresql.TSVECTOR(), nullable=False),
        sa.Column("embedding_384", Vector(384), nullable=True),
        sa.Column("embedding_1536", Vector(1536), nullable=True),
        sa.ForeignKeyConstraint(
            ["page_id"], ["docs_pages.id"], name=op.f("fk_docs_chunks_page_id_docs_pages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["docs_sources.id"], name=op.f("fk_docs_chunks_source_id_docs_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_docs_chunks")),
        sa.UniqueConstraint("page_id", "ordinal", name=op.f("uq_docs_chunks_page_id_ordinal")),
    )
    op.create_index("ix_docs_chunks_source_id", "docs_chunks", ["source_id"], unique=False)
    op.create_index("ix_docs_chunks_tsv", "docs_chunks", ["tsv"], unique=False, postgresql_using="gin")
    op.create_index(
        "ix_docs_chunks_embedding_384",
        "docs_chunks",
        ["embedding_384"],
        unique=False,
        postgresql_using="hnsw",
        postgresql_ops={"embedding_384": "vector_cosine_ops"},
    )
    op.create_index(
        "ix_docs_chunks_embedding_1536",
        "docs_chunks",
        ["embedding_1536"],
        unique=False,
        postgresql_using="hnsw",
        postgresql_ops={"embedding_1536": "vector_cosine_ops"},
    )


def downgrade() -> None:
    op.drop_table("docs_chunks")
    op.drop_table("docs_pages")
    op.drop_table("docs_sources")
