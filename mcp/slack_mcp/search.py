"""Hybrid message search over the Slack store: full text and vectors fused by reciprocal rank.

Both arms apply the audience and the channel/user/time filters in SQL; fusion is RRF (k = 60) over a pool
several times the limit.

The full-text arm ORs the query's lexemes (requiring every word of a natural-language question finds almost
nothing) and, like the docs index, ranks in two stages so that it never ranks every message that contains a
common word:

1. candidates: the messages holding the query's rarest lexemes, taken rarest first while their postings add
   up to at most ``KEYWORD_POSTINGS`` (the rarest always), scored by the summed IDF of the lexemes each has;
2. ranking: the best ``KEYWORD_PREFILTER`` candidates by the IDF-weighted ``ts_rank_cd`` of every query lexeme.

Lexeme frequencies come from the planner's statistics of the ``search`` column (``pg_stats``: the most common
lexemes and their frequencies, which ANALYZE, and so autovacuum, keeps current as messages arrive). Messages
arrive continuously, so term counts of our own would need a write on every message; the statistics cost
nothing extra. A lexeme missing from them is rarer than every listed one (PostgreSQL's own estimate takes half
the smallest listed frequency, and so does this). A table never analyzed has no statistics: every lexeme then
counts the same and all of them make candidates, which is exact and, for a table that small, cheap. The
statistics are read once per ``STATISTICS_TTL`` per process and passed into the statement: planning a query
of the ``pg_stats`` view cost more than a quarter of the statement.

When the filters leave fewer candidates than the pool (a narrow channel, user or time range), the arm runs
again with every lexeme, so a selective filter never hides messages that hold only common words.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from embeddings import EmbeddingProvider
from embeddings.background import BackgroundEmbedding
from sqlalchemy import text
from sqlalchemy.orm import Session

from slack_mcp.audience import Audience, visibility_sql
from slack_mcp.queries import MESSAGE_COLUMNS, TS_CONFIG, Channel, SlackQueryError

RRF_K = 60
POOL_FACTOR = 4
MIN_POOL = 40
#: Nearest neighbours taken from the HNSW index before the audience and filters apply (× the pool).
NEIGHBOUR_FACTOR = 10
MAX_QUERY_TERMS = 32
#: Postings read for keyword candidates: lexemes are taken rarest first while their estimated message counts
#: add up to at most this (the rarest always). Common lexemes still count in the ranking of the candidates.
KEYWORD_POSTINGS = 4000
#: Keyword candidates ranked with ts_rank_cd.
KEYWORD_PREFILTER = 100
#: Seconds the lexeme statistics are reused. Reading them through the ``pg_stats`` view made the keyword
#: statement take ~3.8 ms to plan (of ~14 ms in all); they change only when the table is analyzed, and a
#: frequency a few minutes old is as good an estimate.
STATISTICS_TTL = 300.0


@dataclass(frozen=True)
class _LexemeStatistics:
    """The planner's statistics of ``slack_messages.search``, as PostgreSQL array literals."""

    total: float  # the table's row estimate
    elems: str | None  # most_common_elems (None: never analyzed)
    freqs: str | None  # most_common_elem_freqs
    read_at: float  # time.monotonic()


_statistics: dict[str, _LexemeStatistics] = {}
_statistics_lock = threading.Lock()


def _lexeme_statistics(session: Session) -> _LexemeStatistics:
    """The statistics, reused for ``STATISTICS_TTL`` seconds per database (re-read while there are none)."""
    key = session.get_bind().url.render_as_string(hide_password=True)
    with _statistics_lock:
        cached = _statistics.get(key)
    if cached is not None and time.monotonic() - cached.read_at < STATISTICS_TTL:
        return cached
    row = session.execute(text(_STATISTICS_SQL)).one()
    fresh = _LexemeStatistics(float(row.total), row.elems, row.freqs, time.monotonic())
    if fresh.elems is not None:  # a table not analyzed yet may be soon: ask again next time
        with _statistics_lock:
            _statistics[key] = fresh
    return fresh


def search_messages(
    session: Session,
    provider: EmbeddingProvider | None,
    audience: Audience,
    query: str,
    *,
    channel: Channel | None = None,
    user_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 10,
    semantic_weight: float = 0.5,
) -> list[tuple[Any, float]]:
    """The best ``limit`` messages for ``query`` that ``audience`` may see, with their fused scores.

    Args:
        session: a database session (read-only is enough).
        provider: embeds the query; ``None`` searches by words only.
        audience: who will see the results; applied to both arms in SQL.
        query: natural-language question or keywords.
        channel, user_id, since, until: filters (``since`` inclusive, ``until`` exclusive).
        limit: results wanted.
        semantic_weight: 0 = words only … 1 = meaning only; in between, the RRF weight of the vector arm.

    Returns:
        (message row with ``channel_name``, score) pairs, best first.

    Raises:
        SlackQueryError: the provider's embedding size has no column.
    """
    condition, params = visibility_sql(session, audience)
    where = [condition, "NOT m.is_deleted"]
    if channel is not None:
        where.append("m.channel_id = :channel")
        params["channel"] = channel.id
    if user_id is not None:
        where.append("m.user_id = :user")
        params["user"] = user_id
    if since is not None:
        where.append("m.created_at >= :since")
        params["since"] = since
    if until is not None:
        where.append("m.created_at < :until")
        params["until"] = until
    pool = max(limit * POOL_FACTOR, MIN_POOL)
    filters = " AND ".join(where)
    ranks: list[dict[tuple[str, str], int]] = []
    weights: list[float] = []
    # The query is embedded while PostgreSQL runs the keyword arm.
    embedding = BackgroundEmbedding(provider, query) if semantic_weight > 0 and provider is not None else None
    if semantic_weight < 1:
        ranks.append(_keyword_ranks(session, query, filters, params, pool))
        weights.append(1 - semantic_weight)
    if embedding is not None:
        exact = channel is not None or user_id is not None
        vector = embedding.result()
        ranks.append(_vector_ranks(session, embedding.provider, vector, filters, params, pool, exact))
        weights.append(semantic_weight)
    scores: dict[tuple[str, str], float] = {}
    for arm, weight in zip(ranks, weights, strict=True):
        for key, rank in arm.items():
            scores[key] = scores.get(key, 0.0) + weight / (RRF_K + rank)
    best = sorted(scores, key=lambda k: (-scores[k], k))[:limit]
    if not best:
        return []
    hit_rows = (
        session.execute(
            text(
                f"SELECT {MESSAGE_COLUMNS}, ch.name AS channel_name FROM slack_messages m "
                "JOIN slack_channels ch ON ch.id = m.channel_id "
                "WHERE (m.channel_id, m.ts) IN (SELECT * FROM unnest(CAST(:cs AS text[]), CAST(:tss AS text[])))"
            ),
            {"cs": [k[0] for k in best], "tss": [k[1] for k in best]},
        )
        .mappings()
        .all()
    )
    by_key: dict[tuple[str, str], Any] = {(r["channel_id"], r["ts"]): r for r in hit_rows}
    return [(by_key[k], round(scores[k], 6)) for k in best if k in by_key]


def _keyword_ranks(
    session: Session, query: str, filters: str, params: dict[str, Any], pool: int
) -> dict[tuple[str, str], int]:
    """The full-text arm: (channel, ts) to rank, best first (see the module docstring)."""
    sql = text(_KEYWORD_SQL.format(ts_config=TS_CONFIG, candidate_filters=filters, candidate_join=_CHANNEL_JOIN))
    stats = _lexeme_statistics(session)
    values = {**params, "q": query, "pool": pool, "max_terms": MAX_QUERY_TERMS}
    values.update(total=stats.total, elems=stats.elems, freqs=stats.freqs)
    values["prefilter"] = max(KEYWORD_PREFILTER, pool)
    rows = session.execute(sql, {**values, "postings": KEYWORD_POSTINGS}).all()
    found = [r for r in rows if r.channel_id is not None]
    if len(found) < pool and rows[0].capped:
        # Too few candidates among the rarest lexemes' messages once filtered: use every lexeme.
        rows = session.execute(sql, {**values, "postings": None}).all()
        found = [r for r in rows if r.channel_id is not None]
    return {(r.channel_id, r.ts): i for i, r in enumerate(found, 1)}


def _vector_ranks(
    session: Session,
    provider: EmbeddingProvider,
    query_vector: list[float],
    filters: str,
    params: dict[str, Any],
    pool: int,
    exact: bool,
) -> dict[tuple[str, str], int]:
    """The vector arm: (channel, ts) to rank by cosine distance of the message embeddings.

    ``exact`` scans the filtered messages instead of the HNSW index: for one channel's or one person's
    messages, which are few next to the whole store and would rarely be among its nearest neighbours.
    """
    column = {384: "embedding_384", 1536: "embedding_1536"}.get(provider.dimensions)
    if column is None:
        raise SlackQueryError(f"embeddings of {provider.dimensions} dimensions are not supported")
    vector = "[" + ",".join(f"{x:.7g}" for x in query_vector) + "]"
    session.execute(
        text(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', :ef, true)"
        ),
        {"ef": str(max(pool, 40))},
    )
    if exact:
        sql = (
            "SELECT m.channel_id, m.ts FROM slack_message_embeddings e "
            "JOIN slack_messages m ON m.channel_id = e.channel_id AND m.ts = e.ts "
            f"{_CHANNEL_JOIN} "
            f"WHERE e.model = :model AND e.{column} IS NOT NULL AND {filters} "
            f"ORDER BY e.{column} <=> CAST(:qv AS vector) LIMIT :pool"
        )
    else:
        # Nearest neighbours from the HNSW index first (the planner will not use it through joins), then the
        # audience and filters, one neighbour at a time in distance order: the lateral subquery keeps the
        # join a nested loop, so no sort waits for every neighbour and the index is read only as far as
        # the filters need (up to ``:neighbours``, so a filter that keeps little cannot read the whole index).
        sql = (
            "WITH nn AS MATERIALIZED (SELECT e.channel_id, e.ts, "
            f"e.{column} <=> CAST(:qv AS vector) AS distance FROM slack_message_embeddings e "
            f"WHERE e.model = :model ORDER BY e.{column} <=> CAST(:qv AS vector) LIMIT :neighbours) "
            "SELECT nn.channel_id, nn.ts FROM nn CROSS JOIN LATERAL (SELECT 1 FROM slack_messages m "
            f"{_CHANNEL_JOIN} WHERE m.channel_id = nn.channel_id AND m.ts = nn.ts AND {filters} LIMIT 1) AS seen "
            "ORDER BY nn.distance LIMIT :pool"
        )
    rows = session.execute(
        text(sql),
        {**params, "qv": vector, "model": provider.model, "pool": pool, "neighbours": pool * NEIGHBOUR_FACTOR},
    ).all()
    return {(r.channel_id, r.ts): i for i, r in enumerate(rows, 1)}


_CHANNEL_JOIN = "JOIN slack_channels ch ON ch.id = m.channel_id"

# The lexeme frequencies and row estimate of the message table (see ``_lexeme_statistics``).
_STATISTICS_SQL = (
    "SELECT greatest(c.reltuples, 0)::float8 AS total, CAST(s.most_common_elems AS text) AS elems, "
    "CAST(s.most_common_elem_freqs AS text) AS freqs FROM pg_class c "
    "LEFT JOIN LATERAL (SELECT most_common_elems, most_common_elem_freqs FROM pg_stats "
    "WHERE schemaname = current_schema() AND tablename = 'slack_messages' AND attname = 'search' "
    "ORDER BY inherited LIMIT 1) AS s ON true WHERE c.oid = CAST('slack_messages' AS regclass)"
)

# The keyword arm (see the module docstring). ``df`` is each lexeme's estimated message count: its frequency
# in the statistics times the table's row estimate. Lexemes become tsqueries by a cast, not to_tsquery, so they are
# matched as stored and not stemmed again. ``:postings`` NULL takes every lexeme. ``capped`` says whether
# some lexeme was left out of the candidates (then too few rows means: run again with every lexeme).
_KEYWORD_SQL = (
    "WITH kw_q AS (SELECT DISTINCT u.lexeme FROM unnest(tsvector_to_array(to_tsvector('{ts_config}', :q))) "
    "AS u(lexeme) LIMIT :max_terms), "
    "kw_n AS (SELECT CAST(:total AS float8) AS total, CAST(:elems AS text[]) AS elems, "
    "CAST(:freqs AS float4[]) AS freqs), "
    "kw_terms AS MATERIALIZED (SELECT q.lexeme, d.df, ln(1 + (n.total - d.df + 0.5) / (d.df + 0.5)) AS idf, "
    "CAST(quote_literal(q.lexeme) AS tsquery) AS tsq FROM kw_q q CROSS JOIN kw_n n CROSS JOIN LATERAL "
    "(SELECT n.total * coalesce(n.freqs[array_position(n.elems, q.lexeme)], "
    "n.freqs[cardinality(n.elems) + 1] / 2, 0) AS df) AS d), "
    "kw_gen AS (SELECT tsq, idf FROM (SELECT tsq, idf, sum(df) OVER w AS upto, row_number() OVER w AS nth "
    "FROM kw_terms WINDOW w AS (ORDER BY df, lexeme)) AS x WHERE :postings IS NULL OR nth = 1 OR upto <= :postings), "
    "kw_cand AS (SELECT c.channel_id, c.ts FROM kw_gen g CROSS JOIN LATERAL (SELECT m.channel_id, m.ts "
    "FROM slack_messages m {candidate_join} WHERE m.search @@ g.tsq AND {candidate_filters}) AS c "
    "GROUP BY c.channel_id, c.ts ORDER BY sum(g.idf) DESC, c.ts DESC LIMIT :prefilter), "
    # Each candidate's tsvector is decompressed once here (``|| ''`` makes a plain copy), not once per lexeme.
    "kw_docs AS MATERIALIZED (SELECT m.channel_id, m.ts, m.search || CAST('' AS tsvector) AS tsv FROM kw_cand k "
    "JOIN slack_messages m ON m.channel_id = k.channel_id AND m.ts = k.ts), "
    "kw AS (SELECT d.channel_id, d.ts, sum(t.idf * ts_rank_cd(d.tsv, t.tsq, 1)) AS score "
    "FROM kw_docs d CROSS JOIN kw_terms t GROUP BY d.channel_id, d.ts ORDER BY score DESC, d.ts DESC LIMIT :pool) "
    # One row at least, so that ``capped`` comes back even when nothing matched.
    "SELECT kw.channel_id, kw.ts, f.capped FROM (SELECT (SELECT count(*) FROM kw_gen) < "
    "(SELECT count(*) FROM kw_terms) AS capped) AS f LEFT JOIN kw ON true ORDER BY kw.score DESC, kw.ts DESC"
)
