"""Queries over the documentation index, shared by the MCP server, the CLI and the benchmarks.

``search_docs`` is hybrid: a vector arm (cosine distance over the HNSW index) and a full-text arm, fused
by reciprocal rank (RRF, k = 60) over a candidate pool several times the limit, then collapsed to the best
chunk per page. Both arms, and the text of their candidates, come back from one SQL statement.

The full-text arm ORs the query's lexemes (requiring every word of a natural-language question finds almost
nothing) and ranks in two stages, so that it never ranks every chunk that contains a common word:

1. candidates: the postings of the query's rarest lexemes (lexemes are taken until ``KEYWORD_POSTINGS`` are
   read; the last one is cut at ``KEYWORD_MAX_POSTINGS``, and a lexeme alone at ``KEYWORD_PREFILTER``), each
   chunk scored by the summed IDF of the lexemes it has. When the searched sources are a small part of the
   index, the source is a key of the GIN index scan, so other sources' postings are not read. Every posting
   read costs a visit to its chunk's heap row (visibility: a GIN index has no index-only scans), which is why
   that heap is kept narrow (``database/docs_models.py``) and why the number read is the arm's cost;
2. ranking: the best ``KEYWORD_PREFILTER`` candidates by the IDF-weighted ``ts_rank_cd`` of every query
   lexeme, title and heading matches weighted up.

IDF comes from the term statistics written at ingest (``docs_terms``), not from counting at query time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from embeddings import EmbeddingProvider, check_compatible
from embeddings.background import BackgroundEmbedding
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
#: Postings read for keyword candidates: lexemes are taken rarest first until this many are read (at least one
#: lexeme always). Common lexemes still count in the ranking of the candidates.
KEYWORD_POSTINGS = 4000
#: Hard cap on the postings read: the last lexeme taken can be a common one (tens of thousands of postings on a
#: 100k-chunk source); its postings past the cap are left out (on the PostgreSQL manual it never binds).
KEYWORD_MAX_POSTINGS = 6000
#: Keyword candidates ranked with ts_rank_cd (each costs one read of the chunk's tsvector per query lexeme).
KEYWORD_PREFILTER = 100
#: The searched sources' share of all chunks below which the source is a key of the full-text index scan. Above
#: it, matching the source on the heap row (which the scan reads anyway) is cheaper: intersecting each lexeme's
#: postings with a source's that cover most of the index costs more than it drops (measured: docs/benchmarks.md).
SOURCE_KEY_MAX_SHARE = 0.5
#: pgvector's default hnsw.ef_search; set per query only when the pool is larger.
HNSW_DEFAULT_EF_SEARCH = 40


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


@dataclass(frozen=True)
class _Scope:
    """The sources a search covers, and how the two arms should restrict themselves to them."""

    names: dict[int, str]  # id to name
    vector_filtered: bool  # other sources share the vector index: the HNSW scan needs its iterative mode
    keyword_filter: str  # the source condition of the keyword candidates (see ``SOURCE_KEY_MAX_SHARE``)


def _searchable_sources(session: Session, provider: EmbeddingProvider | None, source: str | None) -> _Scope:
    """The sources to search, checked against ``provider``'s model."""
    every = session.execute(
        text("SELECT id, name, embedding_model, embedding_dimensions, chunk_count FROM docs_sources ORDER BY name")
    ).all()
    rows = every
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
    chosen = {r.id: r.name for r in rows}
    filtered = any(
        r.id not in chosen and provider is not None and r.embedding_dimensions == provider.dimensions for r in every
    )
    share = sum(r.chunk_count for r in rows) / max(sum(r.chunk_count for r in every), 1)
    if len(chosen) == len(every):
        keyword_filter = "TRUE"
    elif share < SOURCE_KEY_MAX_SHARE:
        keyword_filter = "c.source_id = ANY(CAST(:ids AS bigint[]))"
    else:  # ``+ 0``: not the indexed column, so matched on the heap row
        keyword_filter = "c.source_id + 0 = ANY(CAST(:ids AS bigint[]))"
    return _Scope(chosen, filtered, keyword_filter)


def search_docs(
    session: Session,
    provider: EmbeddingProvider | None,
    query: str,
    *,
    source: str | None = None,
    limit: int = 10,
    semantic_weight: float = DEFAULT_SEMANTIC_WEIGHT,
    mode: SearchMode = "hybrid",
    query_vector: list[float] | None = None,
) -> list[DocHit]:
    """The best ``limit`` pages for ``query``, each as its best-matching chunk.

    Args:
        session: a database session (read-only is enough).
        provider: embeds the query; ``None`` only for ``mode="fulltext"`` or with ``query_vector``.
        query: natural-language question or keywords.
        source: restrict to one source by name.
        limit: results wanted.
        semantic_weight: 0 = full text only … 1 = vectors only; in between, the RRF weight of the vector arm.
        mode: ``hybrid`` (default), or one arm alone (for evaluation).
        query_vector: the query already embedded by ``provider`` (to time or reuse the embedding apart).

    Raises:
        DocsQueryError: unknown source.
        EmbeddingModelMismatchError: the source was embedded with another model.
    """
    if mode == "vector":
        semantic_weight = 1.0
    elif mode == "fulltext":
        semantic_weight = 0.0
    use_vector, use_keyword = semantic_weight > 0, semantic_weight < 1
    scope = _searchable_sources(session, provider if use_vector else None, source)
    sources, filtered = scope.names, scope.vector_filtered
    if not sources:
        return []
    pool = max(limit * POOL_FACTOR, MIN_POOL)
    params: dict[str, object] = {"ids": list(sources), "pool": pool}
    ctes: list[str] = []
    arms: list[str] = []
    keyword_params = {
        "q": query,
        "ids": list(sources),
        "pool": pool,
        "max_terms": MAX_QUERY_TERMS,
        "postings": KEYWORD_POSTINGS,
        "max_postings": max(KEYWORD_MAX_POSTINGS, KEYWORD_POSTINGS),
        "prefilter": KEYWORD_PREFILTER,
    }
    keyword_first = False
    if use_vector:
        if provider is None:
            raise DocsQueryError("vector search needs an embedding provider")
        if query_vector is None and use_keyword:
            # Both arms: the keyword arm runs as a statement of its own while the query is embedded, which
            # costs a round trip and saves the embedding's time; its ranks then join the main statement.
            embedding = BackgroundEmbedding(provider, query)
            keyword_first = True
            found = session.execute(
                text(f"WITH {_keyword_ctes(scope.keyword_filter)} SELECT id, rank, score FROM kw"), keyword_params
            ).all()
            params.update(
                kw_ids=[r.id for r in found], kw_ranks=[r.rank for r in found], kw_scores=[r.score for r in found]
            )
            query_vector = embedding.result()
        elif query_vector is None:
            query_vector = provider.embed([query])[0]
        params["qv"] = vector_literal(query_vector)
        if pool > HNSW_DEFAULT_EF_SEARCH or filtered:
            # A filter that drops rows needs the iterative scan, or the index can return fewer than ``pool``.
            session.execute(
                text(
                    "SELECT set_config('hnsw.ef_search', :ef, true), "
                    "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
                ),
                {"ef": str(max(pool, HNSW_DEFAULT_EF_SEARCH))},
            )
        ctes.append(_vector_cte(vector_column(provider.dimensions)))
        arms.append("SELECT id FROM vec")
    if keyword_first:
        ctes.append(
            "kw AS (SELECT * FROM unnest(CAST(:kw_ids AS bigint[]), CAST(:kw_ranks AS bigint[]), "
            "CAST(:kw_scores AS float8[])) AS k(id, rank, score))"
        )
        arms.append("SELECT id FROM kw")
    elif use_keyword:
        params.update(keyword_params)
        ctes.append(_keyword_ctes(scope.keyword_filter))
        arms.append("SELECT id FROM kw")
    vec_cols = "vec.rank AS vrank, vec.distance" if use_vector else "NULL AS vrank, NULL AS distance"
    kw_cols = "kw.rank AS krank, kw.score AS kscore" if use_keyword else "NULL AS krank, NULL AS kscore"
    joins = (" LEFT JOIN vec ON vec.id = c.id" if use_vector else "") + (
        " LEFT JOIN kw ON kw.id = c.id" if use_keyword else ""
    )
    rows = session.execute(
        text(
            f"WITH {', '.join(ctes)} "
            f"SELECT c.id, c.heading, c.text, c.page_id, p.url, p.title, p.source_id, {vec_cols}, {kw_cols} "
            f"FROM ({' UNION '.join(arms)}) AS ids JOIN docs_chunks c ON c.id = ids.id "
            f"JOIN docs_pages p ON p.id = c.page_id{joins}"
        ),
        params,
    ).mappings()
    by_id: dict[int, Any] = {r["id"]: r for r in rows}
    vector_ranks = {cid: r["vrank"] for cid, r in by_id.items() if r["vrank"] is not None}
    keyword_ranks = {cid: r["krank"] for cid, r in by_id.items() if r["krank"] is not None}
    if not by_id:
        return []
    scores: dict[int, float] = {}
    if mode == "hybrid":
        # Fuse at the page level: a page whose best passage ranks well in one arm and another passage of it
        # ranks well in the other is exactly what both arms agree on.
        page_vector = _page_ranks(vector_ranks, by_id)
        page_keyword = _page_ranks(keyword_ranks, by_id)
        for chunk_id in by_id:
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
        for chunk_id, row in by_id.items():
            scores[chunk_id] = 1.0 - float(row["distance"]) if mode == "vector" else float(row["kscore"])
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


def _vector_cte(column: str) -> str:
    """The ``pool`` nearest chunks by cosine distance (HNSW), ranked."""
    return (
        "vec AS (SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rank FROM ("
        f"SELECT id, {column} <=> CAST(:qv AS vector) AS distance FROM docs_chunks "
        f"WHERE source_id = ANY(:ids) AND {column} IS NOT NULL "
        f"ORDER BY {column} <=> CAST(:qv AS vector) LIMIT :pool) AS nearest)"
    )


def _keyword_ctes(source_filter: str) -> str:
    """The keyword arm's CTEs, its candidates restricted to the searched sources by ``source_filter``."""
    return KEYWORD_CTES.replace("{source_filter}", source_filter)


# The keyword arm (see the module docstring). Lexemes are turned into a tsquery with a cast, not to_tsquery,
# so they are matched as stored and not stemmed a second time.
KEYWORD_CTES = (
    f"kw_q AS (SELECT DISTINCT u.lexeme FROM unnest(tsvector_to_array(to_tsvector('{TS_CONFIG}', :q))) AS u(lexeme) "
    "LIMIT :max_terms), "
    "kw_n AS (SELECT greatest(sum(chunk_count), 1)::float8 AS total FROM docs_sources WHERE id = ANY(:ids)), "
    "kw_terms AS MATERIALIZED (SELECT t.lexeme, t.df, ln(1 + (kw_n.total - t.df + 0.5) / (t.df + 0.5)) AS idf, "
    "CAST(quote_literal(t.lexeme) AS tsquery) AS tsq FROM kw_n, (SELECT q.lexeme, sum(d.df)::float8 AS df "
    "FROM kw_q q JOIN docs_terms d ON d.lexeme = q.lexeme AND d.source_id = ANY(:ids) GROUP BY q.lexeme) AS t), "
    "kw_gen AS (SELECT tsq, idf, CAST(before AS bigint) AS before, count(*) OVER () AS n FROM (SELECT tsq, idf, "
    "sum(df) OVER (ORDER BY df, lexeme) - df AS before FROM kw_terms) AS x WHERE before < :postings), "
    # A lexeme alone (the rarest one is over the budget, or the query has one) gives each of its chunks the same
    # candidate score, so the first ``prefilter`` of its chunks (in table order) are as good as any: on a large
    # source that saves a heap visit per posting (thousands). With several lexemes, the last one stops at
    # ``max_postings`` in all.
    # {source_filter}: a key of the (source_id, tsv) GIN index for a small share of the chunks, so the index
    # returns only their postings; ``bigint[]``, the column's own type, or it would not be a key.
    "kw_cand AS (SELECT m.id FROM kw_gen g CROSS JOIN LATERAL (SELECT c.id FROM docs_chunks c "
    "WHERE {source_filter} AND c.tsv @@ g.tsq "
    "LIMIT CASE WHEN g.n = 1 THEN :prefilter ELSE :max_postings - g.before END) AS m "
    "GROUP BY m.id ORDER BY sum(g.idf) DESC, m.id LIMIT :prefilter), "
    # Each candidate's tsvector is decompressed once here (``|| ''`` makes a plain copy), not once per lexeme.
    "kw_docs AS MATERIALIZED (SELECT c.id, c.tsv || ''::tsvector AS tsv FROM kw_cand "
    "JOIN docs_chunks c ON c.id = kw_cand.id), "
    f"kw_scored AS (SELECT c.id, sum(t.idf * ts_rank_cd('{RANK_WEIGHTS}', c.tsv, t.tsq, 0)) AS score "
    "FROM kw_docs c CROSS JOIN kw_terms t GROUP BY c.id "
    "ORDER BY score DESC, c.id LIMIT :pool), "
    "kw AS (SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS rank FROM kw_scored)"
)


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
