"""ORM models of the documentation index: sources, pages and chunks with vectors and full text.

A source records the embedding model and dimension its vectors were made with, so a query embedded by
another model is refused instead of returning nonsense. Vectors live in one column per supported
dimension (384: all-MiniLM-L6-v2, 1536: text-embedding-3-small) because an HNSW index needs a fixed
dimension; each has a cosine HNSW index. ``tsv`` is written at insert (title and heading weighted above
body text) and is indexed with ``source_id`` in one GIN index (``btree_gin``), so a search of one source reads
only its postings; the index has no pending list (``fastupdate = off``: a pending list is scanned linearly by
every search until a vacuum merges it). ``docs_chunks`` keeps its heap narrow (``toast_tuple_target``: text,
tsvector and vector out of line) because the keyword search visits one heap row per posting it reads.
``DocsTerm`` and ``DocsSource.chunk_count`` are the term statistics of the keyword search (document frequency
per lexeme), rewritten at the end of every ingest.
"""

from __future__ import annotations

from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import DDL, BigInteger, DateTime, ForeignKey, Index, Integer, Text, UniqueConstraint, event, func
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from database.models import Base

#: Vector columns by dimension; a provider of another dimension cannot be stored.
DOCS_VECTOR_COLUMNS = {384: "embedding_384", 1536: "embedding_1536"}


class DocsSource(Base):
    """A named documentation set (a folder or a website) and the model its chunks were embedded with."""

    __tablename__ = "docs_sources"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    location: Mapped[str] = mapped_column(Text, nullable=False)
    embedding_model: Mapped[str] = mapped_column(Text, nullable=False)
    embedding_dimensions: Mapped[int] = mapped_column(Integer, nullable=False)
    chunk_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class DocsPage(Base):
    """One page of a source; ``content_hash`` makes re-ingesting an unchanged page free."""

    __tablename__ = "docs_pages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("docs_sources.id", ondelete="CASCADE"), nullable=False
    )
    url: Mapped[str] = mapped_column(Text, nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    content_hash: Mapped[str] = mapped_column(Text, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (
        UniqueConstraint("source_id", "url"),
        Index("ix_docs_pages_url", "url"),
    )


class DocsChunk(Base):
    """A piece of a page (about 2,000 characters) under its heading path, with its vector and full text."""

    __tablename__ = "docs_chunks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    page_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("docs_pages.id", ondelete="CASCADE"), nullable=False)
    source_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("docs_sources.id", ondelete="CASCADE"), nullable=False
    )
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    heading: Mapped[str] = mapped_column(Text, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    tsv: Mapped[str] = mapped_column(TSVECTOR, nullable=False)
    embedding_384: Mapped[list[float] | None] = mapped_column(Vector(384))
    embedding_1536: Mapped[list[float] | None] = mapped_column(Vector(1536))

    __table_args__ = (
        UniqueConstraint("page_id", "ordinal"),
        # Also serves lookups by source alone (deletes, counts): a b-tree on source_id would tempt the planner
        # to match tsv row by row for a small source, which costs it nothing and de-TOASTs every row.
        Index(
            "ix_docs_chunks_source_id_tsv",
            "source_id",
            "tsv",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ),
        Index(
            "ix_docs_chunks_embedding_384",
            "embedding_384",
            postgresql_using="hnsw",
            postgresql_ops={"embedding_384": "vector_cosine_ops"},
        ),
        Index(
            "ix_docs_chunks_embedding_1536",
            "embedding_1536",
            postgresql_using="hnsw",
            postgresql_ops={"embedding_1536": "vector_cosine_ops"},
        ),
        {"postgresql_with": {"toast_tuple_target": 128}},
    )


class DocsTerm(Base):
    """How many chunks of a source contain a lexeme (its document frequency, for IDF weights)."""

    __tablename__ = "docs_terms"

    source_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("docs_sources.id", ondelete="CASCADE"), primary_key=True
    )
    lexeme: Mapped[str] = mapped_column(Text, primary_key=True)
    df: Mapped[int] = mapped_column(Integer, nullable=False)


# ``create_tables()`` (quick starts without Alembic) needs pgvector before the first vector column.
event.listen(Base.metadata, "before_create", DDL("CREATE EXTENSION IF NOT EXISTS vector"))
# ... and btree_gin before the (source_id, tsv) GIN index.
event.listen(Base.metadata, "before_create", DDL("CREATE EXTENSION IF NOT EXISTS btree_gin"))
