"""Keeping the docs HNSW indexes healthy: rebuilt after large deletes, or on request (``docs reindex``).

Which operations delete many chunks: ``docs ingest --rebuild`` (every chunk of the source), a re-ingest where
many pages changed or disappeared (their chunks are deleted and rewritten), and deleting a source. The
database counts the dead entries per index as they happen (``database.vector_index_models``); after each of
these operations :func:`heal_docs_indexes` rebuilds the indexes whose dead entries passed the policy. Only an
index whose column lost rows can be due, so a 384-dimension ingest never rebuilds the 1536 index.

A rebuild means a large delete, and then the table is vacuumed and analyzed too: until then the full-text
index still points at the dead rows (each costs the keyword search a heap visit) and the planner still counts
them (the manual right after removing a 100k-chunk source: full text 21.8 ms p50 instead of 5.3). Waiting for
autovacuum leaves that for minutes; after the rebuild the vacuum has no HNSW graph to repair, so it is quick.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from database import DatabaseConnection
from database.docs_models import DOCS_VECTOR_COLUMNS
from database.errors import AthenaeumError
from database.vector_indexes import HnswIndex, ReindexPolicy, ReindexResult, heal_indexes, rebuild_index

#: The HNSW index of each vector column of ``docs_chunks``, by dimension.
DOCS_HNSW_INDEXES: dict[int, HnswIndex] = {
    dims: HnswIndex(f"ix_docs_chunks_{column}", "docs_chunks", column) for dims, column in DOCS_VECTOR_COLUMNS.items()
}

_log = logging.getLogger(__name__)


class UnknownSourceError(AthenaeumError):
    """No docs source has the given name."""


def heal_docs_indexes(db: DatabaseConnection, policy: ReindexPolicy | None = None) -> list[ReindexResult]:
    """Rebuild the docs vector indexes that ``policy`` finds due, then vacuum the table if any was rebuilt.

    Failures are in the results (or logged, for the vacuum), not raised: the change before them has committed.
    """
    results = heal_indexes(db.engine, list(DOCS_HNSW_INDEXES.values()), policy)
    if any(r.rebuilt for r in results):
        vacuum_docs_chunks(db, (policy or ReindexPolicy()).lock_timeout_seconds)
    return results


def vacuum_docs_chunks(db: DatabaseConnection, lock_timeout_seconds: float | None = None) -> bool:
    """``VACUUM (ANALYZE) docs_chunks``; whether it ran (a lock wait past the timeout, or an error, is logged)."""
    try:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # VACUUM cannot run in a transaction, so the timeout is the session's: reset before the connection
            # goes back to the pool, whatever happened.
            conn.execute(text("SELECT set_config('lock_timeout', :t, false)"), {"t": f"{lock_timeout_seconds or 0}s"})
            try:
                conn.execute(text("VACUUM (ANALYZE) docs_chunks"))
            finally:
                conn.execute(text("RESET lock_timeout"))
        return True
    except DBAPIError as exc:
        # Autovacuum will get to it; searches are slower until then, not wrong.
        _log.warning("vacuum of docs_chunks after a large delete failed: %s", str(exc.orig).strip().splitlines()[0])
        return False


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
