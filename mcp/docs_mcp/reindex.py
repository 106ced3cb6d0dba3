"""Keeping the docs HNSW indexes healthy: rebuilt after large deletes, or on request (``docs reindex``).

Which operations delete many chunks: ``docs ingest --rebuild`` (every chunk of the source), a re-ingest where
many pages changed or disappeared (their chunks are deleted and rewritten), and deleting a source. The
database counts the dead entries per index as they happen (``database.vector_index_models``); after each of
these operations :func:`heal_docs_indexes` rebuilds the indexes whose dead entries passed the policy. Only an
index whose column lost rows can be due, so a 384-dimension ingest never rebuilds the 1536 index.
"""

from __future__ import annotations

from sqlalchemy import text

from database import DatabaseConnection
from database.docs_models import DOCS_VECTOR_COLUMNS
from database.errors import AthenaeumError
from database.vector_indexes import HnswIndex, ReindexPolicy, ReindexResult, heal_indexes, rebuild_index

#: The HNSW index of each vector column of ``docs_chunks``, by dimension.
DOCS_HNSW_INDEXES: dict[int, HnswIndex] = {
    dims: HnswIndex(f"ix_docs_chunks_{column}", "docs_chunks", column) for dims, column in DOCS_VECTOR_COLUMNS.items()
}


class UnknownSourceError(AthenaeumError):
    """No docs source has the given name."""


def heal_docs_indexes(db: DatabaseConnection, policy: ReindexPolicy | None = None) -> list[ReindexResult]:
    """Rebuild the docs vector indexes that ``policy`` finds due; failures are in the results, not raised."""
    return heal_indexes(db.engine, list(DOCS_HNSW_INDEXES.values()), policy)


def reindex_docs(
    db: DatabaseConnection, source: str | None = None, *, lock_timeout_seconds: float | None = None
) -> list[ReindexResult]:
    """Rebuild the vector index of ``source``'s dimension (or every docs vector index) now.

    Raises:
        UnknownSourceError: no source of that name.
        VectorIndexError: a rebuild failed (its unfinished copy is dropped; the old index still serves).
    """
    indexes = list(DOCS_HNSW_INDEXES.values())
    if source is not None:
        with db.session() as session:
            dims = session.execute(
                text("SELECT embedding_dimensions FROM docs_sources WHERE name = :n"), {"n": source}
            ).scalar()
        if dims is None:
            raise UnknownSourceError(f"no docs source named {source!r}: `python athenaeum.py docs sources` lists them")
        indexes = [DOCS_HNSW_INDEXES[dims]]
    policy = ReindexPolicy(lock_timeout_seconds=lock_timeout_seconds)
    return [rebuild_index(db.engine, index, policy, force=True) for index in indexes]
