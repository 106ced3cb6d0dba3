"""Queries over the documentation index, shared by the MCP server, the CLI and the benchmarks.

``search_docs`` is hybrid: a vector arm (cosine distance over the HNSW index) and a full-text arm, fused
by reciprocal rank (RRF, k = 60) over a candidate pool several times the limit, then collapsed to the best
chunk per page. The full-text arm ORs the query's lexemes (requiring every word of a natural-language
question finds almost nothing) and ranks by ``ts_rank_cd`` with title and heading matches weighted up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from embeddings import EmbeddingProvider, check_compatible
from sqlalchemy import text
from sqlalchemy.orm import Session

from database.errors import AthenaeumError
from docs_mcp.index import TS_CONFIG, vector_column, vector_literal

RRF_K = 60
POOL_FACTOR = 4
MIN_POOL = 40
DEFAULT_SEMANTIC_WEIGHT = 0.6
SearchMode = Literal["hybrid", "vector", "fulltext"]
# ts_rank_cd weights for {D, C, B, A}: body, -, heading path, title.
RANK_WEIGHTS = "{0.2, 0.2, 0.4, 1.0}"
MAX_QUERY_TERMS = 32
PREFILTER = 300


class DocsQueryError(AthenaeumError):
    """A documentation query cannot be answered as asked; the message says what to change."""


@dataclass(frozen=True)
class DocHit:
    """One search result: the best chunk of a page."""

    url: str
    title: str
    heading: str
    text: str
    score: float
    source: str
    chunk_id: int


@dataclass(frozen=True)
class SourceInfo:
    """A documentation source with its counts and embedding model."""

    name: str
    location: str
    embedding_model: str
    embedding_dimensions: int
    pages: int
    chunks: int
    updated_at: datetime


@dataclass(frozen=True)
class PageRecord:
    """A whole stored page."""

    url: str
    title: str
    source: str
    text: str
    updated_at: datetime


def list_sources(session: Session) -> list[SourceInfo]:
    """Every source with page and chunk counts, by name."""
    rows = session.execute(
        text(
            "SELECT s.name, s.location, s.embedding_model, s.embedding_dimensions, s.updated_at, "
            "(SELECT count(*) FROM docs_pages p WHERE p.source_id = s.id) AS pages, "
            "(SELECT count(*) FROM docs_chunks c WHERE c.source_id = s.id) AS chunks "
            "FROM docs_sources s ORDER BY s.name"
        )
    ).mappings()
    return [
        SourceInfo(
            r["name"],
            r["location"],
            r["embedding_model"],
            r["embedding_dimensions"],
            r["pages"],
            r["chunks"],
            r["updated_at"],
        )
        for r in rows
    ]


def _searchable_sources(session: Session, provider: EmbeddingProvider | None, source: str | None) -> dict[int, str]:
    rows = session.execute(
        text("SELECT id, name, embedding_model, embedding_dimensions FROM docs_sources ORDER BY name")
    ).all()
    if source is not None:
        rows = [r for r in rows if r.name == source]
        if not rows:
            names = session.execute(text("SELECT name FROM docs_sources ORDER BY name")).scalars().all()
            raise DocsQueryError(
                f"no documentation source named {source!r}; available: {', '.join(names) or 'none (ingest some)'}"
            )
        if provider is not None:
            check_compatible(provider, rows[0].embedding_model, rows[0].embedding_dimensions, f"docs source {source!r}")
    elif provider is not None:
        matching = [
            r for r in rows if (r.embedding_model, r.embedding_dimensions) == (provider.model, provider.dimensions)
        ]
        if rows and not matching:
            check_compatible(
                provider, rows[0].embedding_model, rows[0].embedding_dimensions, f"docs source {rows[0].name!r}"
            )
        rows = matching
    return {r.id: r.name for r in rows}


def search_docs(
    session: Session,
    provider: EmbeddingProvider | None,
    query: str,
    *,
    source: str | None = None,
    limit: int = 10,
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    mode: SearchMode = "hybrid",
) -> list[DocHit]:
    """The best ``limit`` pages for ``query``, each as its best-matching chunk.

    Args:
        session: a database session (read-only is enough).
        provider: embeds the query; ``None`` only for ``mode="fulltext"``.
        query: natural-language question or keywords.
        source: restrict to one source by name.
        limit: results wanted.
        semantic_weight: 0 = full text only … 1 = vectors only; in between, the RRF weight of the vector arm.
        mode: ``hybrid`` (default), or one arm alone (for evaluation).

    Raises:
        DocsQueryError: unknown source.
        EmbeddingModelMismatchError: the source was embedded with another model.
    """
    if mode == "vector":
        semantic_weight = 1.0
    elif mode == "fulltext":
        semantic_weight = 0.0
    sources = _searchable_sources(session, provider if semantic_weight > 0 else None, source)
    if not sources:
        return []
    pool = max(limit * POOL_FACTOR, MIN_POOL)
    ids = list(sources)
    vector_ranks: dict[int, int] = {}
    keyword_ranks: dict[int, int] = {}
    scores: dict[int, float] = {}
    if semantic_weight > 0:
        if provider is None:
            raise DocsQueryError("vector search needs an embedding provider")
        column = vector_column(provider.dimensions)
        qv = vector_literal(provider.embed([query])[0])
        session.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(max(pool, 40))})
        session.execute(text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)"))
        rows = session.execute(
            text(
                f"SELECT id, {column} <=> CAST(:qv AS vector) AS distance FROM docs_chunks "
                f"WHERE source_id = ANY(:ids) AND {column} IS NOT NULL "
                f"ORDER BY {column} <=> CAST(:qv AS vector) LIMIT :pool"
            ),
            {"qv": qv, "ids": ids, "pool": pool},
        ).all()
        for rank, row in enumerate(rows, 1):
            vector_ranks[row.id] = rank
            if mode == "vector":
                scores[row.id] = 1.0 - float(row.distance)
    if semantic_weight < 1:
        for rank, (chunk_id, score) in enumerate(_keyword_arm(session, query, ids, pool), 1):
            keyword_ranks[chunk_id] = rank
            if mode == "fulltext":
                scores[chunk_id] = score
    candidates = list(vector_ranks.keys() | keyword_ranks.keys())
    if not candidates:
        return []
    chunk_rows = session.execute(
        text(
            "SELECT c.id, c.heading, c.text, p.url, p.title, p.source_id, p.id AS page_id "
            "FROM docs_chunks c JOIN docs_pages p ON p.id = c.page_id WHERE c.id = ANY(:ids)"
        ),
        {"ids": candidates},
    ).mappings()
    by_id: dict[int, Any] = {r["id"]: r for r in chunk_rows}
    if mode == "hybrid":
        # Fuse at the page level: a page whose best passage ranks well in one arm and another passage of it
        # ranks well in the other is exactly what both arms agree on.
        page_vector = _page_ranks(vector_ranks, by_id)
        page_keyword = _page_ranks(keyword_ranks, by_id)
        for chunk_id in candidates:
            score = 0.0
            if chunk_id in vector_ranks:
                score += semantic_weight / (RRF_K + vector_ranks[chunk_id])
            if chunk_id in keyword_ranks:
                score += (1 - semantic_weight) / (RRF_K + keyword_ranks[chunk_id])
            scores[chunk_id] = score
        page_scores: dict[int, float] = {}
        for page_id in page_vector.keys() | page_keyword.keys():
            score = 0.0
            if page_id in page_vector:
                score += semantic_weight / (RRF_K + page_vector[page_id])
            if page_id in page_keyword:
                score += (1 - semantic_weight) / (RRF_K + page_keyword[page_id])
            page_scores[page_id] = score
    else:
        page_scores = {}
        for chunk_id, score in scores.items():
            page_id = by_id[chunk_id]["page_id"]
            page_scores[page_id] = max(page_scores.get(page_id, float("-inf")), score)
    best_chunk: dict[int, int] = {}
    for chunk_id in sorted(scores, key=lambda cid: (-scores[cid], cid)):
        best_chunk.setdefault(by_id[chunk_id]["page_id"], chunk_id)
    hits: list[DocHit] = []
    for page_id in sorted(page_scores, key=lambda pid: (-page_scores[pid], pid))[:limit]:
        row = by_id[best_chunk[page_id]]
        hits.append(
            DocHit(
                row["url"],
                row["title"],
                row["heading"],
                row["text"],
                round(page_scores[page_id], 6),
                sources[row["source_id"]],
                row["id"],
            )
        )
    return hits


def _page_ranks(chunk_ranks: dict[int, int], rows: dict[int, Any]) -> dict[int, int]:
    """Each page's rank in one arm: the order in which its first chunk appears."""
    ranks: dict[int, int] = {}
    for chunk_id in sorted(chunk_ranks, key=chunk_ranks.__getitem__):
        ranks.setdefault(rows[chunk_id]["page_id"], len(ranks) + 1)
    return ranks


def _keyword_arm(session: Session, query: str, source_ids: list[int], pool: int) -> list[tuple[int, float]]:
    """Chunks matching any lexeme of ``query``, ranked by IDF-weighted ``ts_rank_cd`` (title/heading up-weighted).

    Plain full text is weak on questions: requiring every word finds almost nothing, and an untuned OR ranks
    chunks full of common words ("table", "row") first. Weighting each lexeme's cover-density rank by its
    inverse document frequency (BM25's IDF) keeps rare, telling words in charge.
    """
    stats = session.execute(
        text(
            f"SELECT l.lexeme, (SELECT count(*) FROM docs_chunks c WHERE c.source_id = ANY(:ids) "
            f"AND c.tsv @@ to_tsquery('{TS_CONFIG}', quote_literal(l.lexeme))) AS df "
            f"FROM unnest(tsvector_to_array(to_tsvector('{TS_CONFIG}', :q))) AS l(lexeme) LIMIT :max_terms"
        ),
        {"q": query, "ids": source_ids, "max_terms": MAX_QUERY_TERMS},
    ).all()
    terms = [(row.lexeme, int(row.df)) for row in stats if row.df]
    if not terms:
        return []
    total = session.execute(
        text("SELECT count(*) FROM docs_chunks WHERE source_id = ANY(:ids)"), {"ids": source_ids}
    ).scalar_one()
    params: dict[str, object] = {"ids": source_ids, "pool": pool}
    parts: list[str] = []
    for i, (lexeme, df) in enumerate(terms):
        params[f"l{i}"], params[f"w{i}"] = lexeme, math.log(1 + (total - df + 0.5) / (df + 0.5))
        parts.append(
            f"CAST(:w{i} AS float8) * ts_rank_cd('{RANK_WEIGHTS}', c.tsv, "
            f"to_tsquery('{TS_CONFIG}', quote_literal(CAST(:l{i} AS text))), 0)"
        )
    any_query = " || ".join(f"to_tsquery('{TS_CONFIG}', quote_literal(CAST(:l{i} AS text)))" for i in range(len(terms)))
    # Two stages: one cheap rank of every match, then the per-term IDF score of the best PREFILTER only
    # (ranking thousands of matches term by term is what made this arm slow).
    params["prefilter"] = PREFILTER
    rows = session.execute(
        text(
            f"SELECT c.id, ({' + '.join(parts)}) AS score FROM (SELECT c.id, c.tsv FROM docs_chunks c "
            f"WHERE c.source_id = ANY(:ids) AND c.tsv @@ ({any_query}) "
            f"ORDER BY ts_rank_cd('{RANK_WEIGHTS}', c.tsv, {any_query}, 0) DESC LIMIT :prefilter) c "
            "ORDER BY score DESC, c.id LIMIT :pool"
        ),
        params,
    ).all()
    return [(row.id, float(row.score)) for row in rows]


def get_page(session: Session, url: str, source: str | None = None) -> PageRecord:
    """The stored page at ``url`` (in ``source`` when given).

    Raises:
        DocsQueryError: no such page; the message suggests close URLs.
    """
    params: dict[str, object] = {"url": url}
    where = "p.url = :url"
    if source is not None:
        where += " AND s.name = :source"
        params["source"] = source
    row = (
        session.execute(
            text(
                "SELECT p.url, p.title, s.name AS source, p.text, p.updated_at FROM docs_pages p "
                f"JOIN docs_sources s ON s.id = p.source_id WHERE {where} ORDER BY s.name LIMIT 1"
            ),
            params,
        )
        .mappings()
        .first()
    )
    if row is not None:
        return PageRecord(row["url"], row["title"], row["source"], row["text"], row["updated_at"])
    tail = url.rstrip("/").rsplit("/", 1)[-1][:200]
    escaped = tail.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    close = (
        session.execute(
            text("SELECT url FROM docs_pages WHERE url ILIKE :pattern ESCAPE '\\' ORDER BY length(url), url LIMIT 5"),
            {"pattern": f"%{escaped}%"},
        )
        .scalars()
        .all()
        if tail
        else []
    )
    hint = f"; did you mean: {', '.join(close)}" if close else "; use search_docs to find page URLs"
    raise DocsQueryError(f"no stored page has the URL {url!r}{hint}")
