"""Writing the documentation index: sources, pages and chunks, incrementally by content hash.

A page whose hash is unchanged costs nothing on re-ingest; a changed page is re-chunked and re-embedded;
a page no longer present in a complete walk is deleted (pages that merely failed to load are kept).
Chunks from many pages are embedded together in batches, and each batch is committed, so an interrupted
ingest resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from embeddings import EmbeddingProvider, check_compatible
from sqlalchemy import text
from sqlalchemy.orm import Session

from database import DatabaseConnection
from database.docs_models import DOCS_VECTOR_COLUMNS
from database.errors import AthenaeumError
from database.vector_indexes import ReindexPolicy, ReindexResult
from docs_mcp.chunking import Chunk, chunk_document
from docs_mcp.crawl import CrawlReport
from docs_mcp.documents import Document
from docs_mcp.reindex import heal_docs_indexes

#: Chunks embedded (and committed) together: enough that sorting them by length leaves little padding.
EMBED_BATCH_CHUNKS = 256
TS_CONFIG = "english"

#: Called after each page with (pages done, chunks written so far).
ProgressFn = Callable[[int, int], None]


class IngestError(AthenaeumError):
    """The documentation could not be ingested."""


@dataclass
class IngestStats:
    """What one ingest did."""

    pages_seen: int = 0
    pages_added: int = 0
    pages_changed: int = 0
    pages_unchanged: int = 0
    pages_deleted: int = 0
    chunks_written: int = 0
    pages_failed: int = 0
    seconds: float = 0.0
    #: The vector index checks after the ingest (rebuilt when enough chunks were deleted or replaced).
    index_upkeep: list[ReindexResult] = field(default_factory=list)

    @property
    def pages_per_second(self) -> float:
        """Pages seen per second of wall time."""
        return self.pages_seen / self.seconds if self.seconds else 0.0

    @property
    def chunks_per_second(self) -> float:
        """Chunks embedded and written per second of wall time."""
        return self.chunks_written / self.seconds if self.seconds else 0.0


def content_hash(document: Document) -> str:
    """The SHA-256 of what the index derives from a page (title and text)."""
    return hashlib.sha256(f"{document.title}\n\n{document.text}".encode()).hexdigest()


def vector_column(dimensions: int) -> str:
    """The chunk column that holds vectors of ``dimensions``.

    Raises:
        IngestError: no column of that dimension exists.
    """
    try:
        return DOCS_VECTOR_COLUMNS[dimensions]
    except KeyError:
        raise IngestError(
            f"embeddings of {dimensions} dimensions cannot be stored (supported: {sorted(DOCS_VECTOR_COLUMNS)})"
        ) from None


def vector_literal(vector: list[float]) -> str:
    """A pgvector text literal (``[0.1,0.2]``), bound as a parameter and cast in SQL."""
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


class DocsIndexer:
    """Ingests documents into one named source.

    Args:
        db: the database.
        provider: the embedding provider; must match the source's recorded model unless ``rebuild``.
        source: the source name.
        location: the folder or URL the source comes from (shown by ``docs sources``).
        rebuild: drop the source's pages first and re-embed everything (to change models).
        on_progress: called after each page.
        batch_chunks: chunks embedded and committed together.
        reindex_policy: when the vector indexes are rebuilt after the ingest (``None``: never).
    """

    def __init__(
        self,
        db: DatabaseConnection,
        provider: EmbeddingProvider,
        source: str,
        location: str,
        *,
        rebuild: bool = False,
        on_progress: ProgressFn | None = None,
        batch_chunks: int = EMBED_BATCH_CHUNKS,
        reindex_policy: ReindexPolicy | None = ReindexPolicy(),  # noqa: B008 (frozen, so sharing it is safe)
    ) -> None:
        self._db = db
        self._provider = provider
        self._source = source
        self._location = location
        self._rebuild = rebuild
        self._on_progress = on_progress or (lambda pages, chunks: None)
        self._batch_chunks = batch_chunks
        self._reindex_policy = reindex_policy
        self._column = vector_column(provider.dimensions)

    def ingest(self, documents: Iterable[Document], report: CrawlReport | None = None) -> IngestStats:
        """Index ``documents`` (a complete walk of the source) and delete pages no longer in it."""
        report = report or CrawlReport()
        stats = IngestStats()
        started = time.monotonic()
        with self._db.session() as session:
            source_id = self._prepare_source(session)
            existing: dict[str, str] = dict(
                session.execute(
                    text("SELECT url, content_hash FROM docs_pages WHERE source_id = :s"), {"s": source_id}
                ).all()
            )
        seen: set[str] = set()
        pending: list[tuple[Document, str, list[Chunk]]] = []
        pending_chunks = 0
        for document in documents:
            if document.url in seen:
                continue
            seen.add(document.url)
            stats.pages_seen += 1
            digest = content_hash(document)
            old = existing.get(document.url)
            if old == digest:
                stats.pages_unchanged += 1
            else:
                if old is None:
                    stats.pages_added += 1
                else:
                    stats.pages_changed += 1
                chunks = chunk_document(document)
                pending.append((document, digest, chunks))
                pending_chunks += len(chunks)
                if pending_chunks >= self._batch_chunks:
                    stats.chunks_written += self._write(source_id, pending)
                    pending, pending_chunks = [], 0
            self._on_progress(stats.pages_seen, stats.chunks_written)
        if pending:
            stats.chunks_written += self._write(source_id, pending)
            self._on_progress(stats.pages_seen, stats.chunks_written)
        keep = seen | set(report.failed)
        gone = [url for url in existing if url not in keep]
        stats.pages_failed = len(report.failed)
        with self._db.session() as session:
            if gone:
                session.execute(
                    text("DELETE FROM docs_pages WHERE source_id = :s AND url = ANY(:urls)"),
                    {"s": source_id, "urls": gone},
                )
            changed = bool(gone or stats.pages_added or stats.pages_changed or self._rebuild)
            # An interrupted ingest committed chunks without statistics: a count that disagrees shows it.
            if changed or not term_stats_current(session, source_id):
                refresh_term_stats(session, source_id)
            session.execute(
                text("UPDATE docs_sources SET updated_at = now(), location = :loc WHERE id = :s"),
                {"s": source_id, "loc": self._location},
            )
        stats.pages_deleted = len(gone)
        if self._reindex_policy is not None and (changed or gone):
            # Replaced and deleted chunks leave dead entries in the HNSW graph; past the policy's share, a
            # concurrent rebuild makes the index small and fast again (see ``docs_mcp.reindex``).
            stats.index_upkeep = heal_docs_indexes(self._db, self._reindex_policy)
        stats.seconds = time.monotonic() - started
        return stats

    def _prepare_source(self, session: Session) -> int:
        row = session.execute(
            text("SELECT id, embedding_model, embedding_dimensions FROM docs_sources WHERE name = :n FOR UPDATE"),
            {"n": self._source},
        ).first()
        model, dims = self._provider.model, self._provider.dimensions
        if row is None:
            return int(
                session.execute(
                    text(
                        "INSERT INTO docs_sources (name, location, embedding_model, embedding_dimensions) "
                        "VALUES (:n, :loc, :m, :d) RETURNING id"
                    ),
                    {"n": self._source, "loc": self._location, "m": model, "d": dims},
                ).scalar_one()
            )
        if self._rebuild:
            session.execute(text("DELETE FROM docs_pages WHERE source_id = :s"), {"s": row.id})
            session.execute(
                text("UPDATE docs_sources SET embedding_model = :m, embedding_dimensions = :d WHERE id = :s"),
                {"s": row.id, "m": model, "d": dims},
            )
        else:
            check_compatible(
                self._provider, row.embedding_model, row.embedding_dimensions, f"docs source {self._source!r}"
            )
        return int(row.id)

    def _write(self, source_id: int, pending: list[tuple[Document, str, list[Chunk]]]) -> int:
        all_chunks = [chunk for _, _, chunks in pending for chunk in chunks]
        vectors = self._provider.embed([chunk.embedding_text for chunk in all_chunks]) if all_chunks else []
        if len(vectors) != len(all_chunks):
            raise IngestError(f"the embedding provider returned {len(vectors)} vectors for {len(all_chunks)} chunks")
        insert = text(
            f"INSERT INTO docs_chunks (page_id, source_id, ordinal, heading, text, tsv, {self._column}) "
            "VALUES (:page_id, :source_id, :ordinal, :heading, :text, "
            f"setweight(to_tsvector('{TS_CONFIG}', :title), 'A') || "
            f"setweight(to_tsvector('{TS_CONFIG}', :heading), 'B') || to_tsvector('{TS_CONFIG}', :text), "
            "CAST(:embedding AS vector))"
        )
        position = 0
        with self._db.session() as session:
            for document, digest, chunks in pending:
                page_id = session.execute(
                    text(
                        "INSERT INTO docs_pages (source_id, url, title, content_hash, text) "
                        "VALUES (:s, :url, :title, :hash, :text) "
                        "ON CONFLICT (source_id, url) DO UPDATE SET title = EXCLUDED.title, "
                        "content_hash = EXCLUDED.content_hash, text = EXCLUDED.text, updated_at = now() "
                        "RETURNING id"
                    ),
                    {
                        "s": source_id,
                        "url": document.url,
                        "title": document.title,
                        "hash": digest,
                        "text": document.text,
                    },
                ).scalar_one()
                session.execute(text("DELETE FROM docs_chunks WHERE page_id = :p"), {"p": page_id})
                rows = []
                for chunk in chunks:
                    rows.append(
                        {
                            "page_id": page_id,
                            "source_id": source_id,
                            "ordinal": chunk.ordinal,
                            "heading": chunk.heading,
                            "text": chunk.text,
                            "title": document.title,
                            "embedding": vector_literal(vectors[position]),
                        }
                    )
                    position += 1
                if rows:
                    session.execute(insert, rows)
        return len(all_chunks)


def refresh_term_stats(session: Session, source_id: int) -> None:
    """Rewrite a source's term statistics (chunks per lexeme, and its chunk count) from its chunks.

    The keyword search takes its IDF weights from these instead of counting matches on every query. On the
    PostgreSQL manual (7,000 chunks, 24,000 lexemes) this takes about a tenth of a second.
    """
    session.execute(text("DELETE FROM docs_terms WHERE source_id = :s"), {"s": source_id})
    session.execute(
        text(
            "INSERT INTO docs_terms (source_id, lexeme, df) SELECT :s, t.word, t.ndoc "
            "FROM ts_stat(format('SELECT tsv FROM docs_chunks WHERE source_id = %s::bigint', CAST(:s AS bigint))) AS t"
        ),
        {"s": source_id},
    )
    session.execute(
        text(
            "UPDATE docs_sources SET chunk_count = "
            "(SELECT count(*) FROM docs_chunks WHERE source_id = CAST(:s AS bigint)) WHERE id = :s"
        ),
        {"s": source_id},
    )


def term_stats_current(session: Session, source_id: int) -> bool:
    """Whether the recorded chunk count of a source matches its chunks (else its statistics are stale)."""
    return bool(
        session.execute(
            text(
                "SELECT chunk_count = (SELECT count(*) FROM docs_chunks WHERE source_id = CAST(:s AS bigint)) "
                "FROM docs_sources WHERE id = :s"
            ),
            {"s": source_id},
        ).scalar()
    )


def delete_source(session: Session, name: str) -> bool:
    """Delete a source with its pages and chunks; whether it existed (see :func:`remove_source`)."""
    result = session.execute(text("DELETE FROM docs_sources WHERE name = :n"), {"n": name})
    return bool(getattr(result, "rowcount", 0))


def remove_source(
    db: DatabaseConnection,
    name: str,
    reindex_policy: ReindexPolicy | None = ReindexPolicy(),  # noqa: B008
) -> tuple[bool, list[ReindexResult]]:
    """Delete a source and commit, then rebuild the vector indexes if that left too many dead entries.

    Returns:
        Whether the source existed, and the index checks (empty when it did not or ``reindex_policy`` is None).
    """
    with db.session() as session:
        existed = delete_source(session, name)
    if not existed or reindex_policy is None:
        return existed, []
    return existed, heal_docs_indexes(db, reindex_policy)
