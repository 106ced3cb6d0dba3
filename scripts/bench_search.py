#!/usr/bin/env python3
"""Search benchmarks: docs search latency (p50/p95), ingest speed, and message search latency.

    python scripts/bench_search.py --source pg15                       # latency over an ingested manual
    python scripts/bench_search.py --ingest /usr/share/doc/postgresql-doc-15/html   # pages/s, chunks/s
    python scripts/bench_search.py --synthetic-chunks 100000           # latency over a synthetic 100k index
    python scripts/bench_search.py --messages 100000 --keep            # message search over 100k messages
    python scripts/bench_search.py --skip-docs --reindex-churn 20000   # HNSW size/latency: delete, VACUUM, rebuild

The database is the configured one (DATABASE_URL, or the embedded server under ATHENAEUM_DATA_DIR). Docs
search is timed four ways: ``hybrid`` etc. include embedding the query (what a user waits for, less the MCP
transport); ``hybrid sql`` is the same search with the query already embedded (database and fusion only);
``embed q`` is the query embedding alone; ``tool path`` adds what the MCP tool does around the search (a pooled
session with its pre-ping, read-only with a statement timeout, commit). Synthetic chunks take text drawn from
the manual's vocabulary and vectors scattered around the manual's (``--synthetic-vectors random``: uniformly
random, the worst case of a filtered HNSW scan); synthetic messages use random vectors unless
``--message-vectors near-real`` scatters them around the manual's chunk embeddings. Synthetic rows are
removed afterwards, unless ``--keep`` keeps them (chunks and messages) for the next run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "mcp")]

from docs_mcp.crawl import CrawlReport, list_folder, read_folder  # noqa: E402
from docs_mcp.index import DocsIndexer, delete_source, refresh_term_stats, remove_source  # noqa: E402
from docs_mcp.reindex import DOCS_HNSW_INDEXES, heal_docs_indexes  # noqa: E402
from docs_mcp.search import search_docs  # noqa: E402
from embeddings import build_provider  # noqa: E402
from sqlalchemy import text  # noqa: E402
from tool_rules import tool_session  # noqa: E402

from agent.commands.context import AppContext  # noqa: E402
from agent.config import Config  # noqa: E402

QUESTIONS = json.loads((ROOT / "scripts" / "eval_docs_questions.json").read_text())["questions"]


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms   n={len(ordered)}"


def timed(fn: Callable[[str], object], queries: list[str], repeats: int) -> list[float]:
    for q in queries[:5]:
        fn(q)  # warm caches and the model
    samples = []
    for _ in range(repeats):
        for q in queries:
            started = time.perf_counter()
            fn(q)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def bench_docs(ctx: AppContext, provider, source: str | None, repeats: int, label: str) -> None:
    queries = [q["q"] for q in QUESTIONS]
    with ctx.db.session() as session:
        chunks = session.execute(text("SELECT count(*) FROM docs_chunks")).scalar()
        print(f"docs search over {label} ({chunks} chunks in the index), {len(queries)} questions x {repeats}")
        for mode in ("hybrid", "vector", "fulltext"):
            samples = timed(
                lambda q, m=mode: search_docs(session, provider, q, source=source, limit=10, mode=m), queries, repeats
            )
            print(f"  {mode:<10} {percentiles(samples)}")
        vectors = {q: provider.embed([q])[0] for q in queries}
        samples = timed(
            lambda q: search_docs(session, provider, q, source=source, limit=10, query_vector=vectors[q]),
            queries,
            repeats,
        )
        print(f"  {'hybrid sql':<10} {percentiles(samples)}   (query embedded beforehand)")
        samples = timed(lambda q: provider.embed([q]), queries, repeats)
        print(f"  {'embed q':<10} {percentiles(samples)}   (query embedding alone)")

    def tool_path(q: str) -> None:
        with tool_session(ctx.db) as tool:
            search_docs(tool, provider, q, source=source, limit=10)

    print(f"  {'tool path':<10} {percentiles(timed(tool_path, queries, repeats))}   (hybrid in a fresh tool session)")


def bench_ingest(ctx: AppContext, provider, folder: Path) -> None:
    source = "bench-ingest"
    with ctx.db.session() as session:
        delete_source(session, source)
    files = list_folder(folder)
    report = CrawlReport()
    stats = DocsIndexer(ctx.db, provider, source, str(folder)).ingest(read_folder(folder, files, None, report), report)
    print(
        f"ingest {folder}: {stats.pages_seen} pages, {stats.chunks_written} chunks in {stats.seconds:.1f} s = "
        f"{stats.pages_per_second:.2f} pages/s, {stats.chunks_per_second:.2f} chunks/s"
    )
    again = DocsIndexer(ctx.db, provider, source, str(folder)).ingest(read_folder(folder, files, None, report), report)
    print(f"re-ingest unchanged: {again.pages_unchanged} pages skipped in {again.seconds:.1f} s")
    with ctx.db.session() as session:
        delete_source(session, source)


def _vector(rng: random.Random, dims: int) -> str:
    values = [rng.gauss(0, 1) for _ in range(dims)]
    norm = sum(v * v for v in values) ** 0.5
    return "[" + ",".join(f"{v / norm:.5f}" for v in values) + "]"


def _near_real_vectors(ctx: AppContext, rng: random.Random, dims: int, column: str) -> Callable[[], str]:
    """Vectors near the real chunks' embeddings (cosine ~0.86 to one of them), or random ones without any.

    Random unit vectors in 384 dimensions are all about equally far from every query; mixed into one HNSW
    index with real embeddings they make a filtered search walk past every real neighbour first. Vectors
    scattered around real ones look like a second manual on the same subjects.
    """
    with ctx.db.session() as session:
        rows = (
            session.execute(
                text(
                    f"SELECT CAST({column} AS text) FROM docs_chunks WHERE {column} IS NOT NULL ORDER BY id LIMIT 20000"
                )
            )
            .scalars()
            .all()
        )
    bases = [[float(x) for x in row.strip("[]").split(",")] for row in rows]
    sigma = 0.6 / math.sqrt(dims)  # noise of norm ~0.6 on a unit vector: cosine 1 / sqrt(1 + 0.36)

    def near_real() -> str:
        if not bases:
            return _vector(rng, dims)
        values = [b + rng.gauss(0, sigma) for b in rng.choice(bases)]
        norm = sum(v * v for v in values) ** 0.5
        return "[" + ",".join(f"{v / norm:.5f}" for v in values) + "]"

    return near_real


def _vocabulary(ctx: AppContext) -> list[str]:
    with ctx.db.session() as session:
        words = session.execute(text("SELECT text FROM docs_chunks ORDER BY id LIMIT 2000")).scalars().all()
    vocab = [w for t in words for w in t.split() if w.isalpha() and len(w) > 2]
    return vocab or ["index", "table", "query", "vacuum", "replication", "backup", "lock", "transaction"]


def bench_synthetic_chunks(ctx: AppContext, provider, count: int, repeats: int, vectors: str, keep: bool) -> None:
    source = "bench-synthetic"
    location = f"synthetic {vectors}"
    with ctx.db.session() as session:
        present = session.execute(
            text("SELECT chunk_count FROM docs_sources WHERE name = :n AND location = :loc"),
            {"n": source, "loc": location},
        ).scalar()
    if present == count:
        print(f"reusing {count} synthetic chunks kept by an earlier --keep run")
    else:
        _build_synthetic_chunks(ctx, provider, source, location, count, vectors)
    try:
        bench_docs(ctx, provider, source, repeats, f"a synthetic {count}-chunk source")
        bench_docs(ctx, provider, None, repeats, "every source")
    finally:
        if not keep:
            # Through remove_source, as `docs delete` does: its HNSW rebuild and VACUUM ANALYZE of the chunks
            # keep 100k dead entries from slowing every later search (and the next benchmark) of this database.
            # The pages are vacuumed here too, which autovacuum would do a little later.
            remove_source(ctx.db, source)
            with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE docs_pages"))


def _build_synthetic_chunks(ctx: AppContext, provider, source: str, location: str, count: int, vectors: str) -> None:
    """A fresh synthetic source of ``count`` chunks (its location names the vectors, so --keep reuses only a match)."""
    rng = random.Random(7)
    column = {384: "embedding_384", 1536: "embedding_1536"}[provider.dimensions]
    if vectors == "random":
        make_vector = lambda: _vector(rng, provider.dimensions)  # noqa: E731
    else:
        make_vector = _near_real_vectors(ctx, rng, provider.dimensions, column)
    started = time.perf_counter()
    try:
        _insert_synthetic_source(ctx, provider, source, count, rng, _vocabulary(ctx), make_vector, location)
    except BaseException:
        with ctx.db.session() as session:
            delete_source(session, source)
        raise
    with ctx.db.session() as session:
        session.execute(text("ANALYZE docs_chunks"))
    print(
        f"built a synthetic index of {count} chunks ({max(count // 10, 1)} pages, {vectors} vectors) "
        f"in {time.perf_counter() - started:.0f} s"
    )


def _insert_synthetic_source(
    ctx: AppContext,
    provider,
    source: str,
    count: int,
    rng: random.Random,
    vocab: list[str],
    make_vector: Callable[[], str] | None = None,
    location: str = "synthetic",
) -> None:
    """A docs source of ``count`` chunks of 120 words from ``vocab`` (10 per page), committed in batches of
    2,000, with vectors from ``make_vector`` (default: random unit vectors), and its term statistics."""
    column = {384: "embedding_384", 1536: "embedding_1536"}[provider.dimensions]
    make_vector = make_vector or (lambda: _vector(rng, provider.dimensions))
    with ctx.db.session() as session:
        delete_source(session, source)
        sid = session.execute(
            text(
                "INSERT INTO docs_sources (name, location, embedding_model, embedding_dimensions) "
                "VALUES (:n, :loc, :m, :d) RETURNING id"
            ),
            {"n": source, "loc": location, "m": provider.model, "d": provider.dimensions},
        ).scalar_one()
    for start in range(0, count, 2000):
        stop = min(start + 2000, count)
        with ctx.db.session() as session:
            page_ids = (
                session.execute(
                    text(
                        "INSERT INTO docs_pages (source_id, url, title, content_hash, text) "
                        "SELECT :s, 'synthetic://' || g, 'page ' || g, '', '' "
                        "FROM generate_series(:a, :b) g ORDER BY g RETURNING id"
                    ),
                    {"s": sid, "a": start // 10, "b": (stop - 1) // 10},
                )
                .scalars()
                .all()
            )
            session.execute(
                text(
                    f"INSERT INTO docs_chunks (page_id, source_id, ordinal, heading, text, tsv, {column}) "
                    "VALUES (:p, :s, :o, 'synthetic', :t, to_tsvector('english', :t), CAST(:v AS vector))"
                ),
                [
                    {
                        "p": page_ids[i // 10 - start // 10],
                        "s": sid,
                        "o": i,
                        "t": " ".join(rng.choice(vocab) for _ in range(120)),
                        "v": make_vector(),
                    }
                    for i in range(start, stop)
                ],
            )
    with ctx.db.session() as session:
        refresh_term_stats(session, sid)


def bench_reindex_churn(ctx: AppContext, provider, count: int, repeats: int) -> None:
    """Index size and vector search latency: a kept source beside ``count`` synthetic chunks, after deleting
    those (and VACUUM), and after the automatic rebuild (``heal_docs_indexes``, the default policy)."""
    rng = random.Random(13)
    vocab = _vocabulary(ctx)
    index = DOCS_HNSW_INDEXES[provider.dimensions].name
    queries = [q["q"] for q in QUESTIONS]
    vectors = {q: provider.embed([q])[0] for q in queries}
    kept = 7000  # about the PostgreSQL manual (6,996 chunks), the source the earlier bloat was measured beside

    def measure(label: str) -> None:
        with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE docs_chunks"))
            size = conn.execute(text("SELECT pg_relation_size(to_regclass(:n))"), {"n": index}).scalar_one()
            live = conn.execute(text("SELECT count(*) FROM docs_chunks")).scalar_one()
        print(f"  {label}: {live} chunks, {index} {size / 1_048_576:.1f} MB")
        # On a small table the planner may prefer an exact scan to the index; forcing the index shows its state.
        for forced in (False, True):
            with ctx.db.session() as session:
                if forced:
                    session.execute(text("SELECT set_config('enable_seqscan', 'off', true)"))
                samples = timed(
                    lambda q, s=session: search_docs(s, provider, q, limit=10, mode="vector", query_vector=vectors[q]),
                    queries,
                    repeats,
                )
            how = "HNSW forced     " if forced else "planner's choice"
            print(f"    vector search, {how} {percentiles(samples)}")

    started = time.perf_counter()
    _insert_synthetic_source(ctx, provider, "bench-kept", kept, rng, vocab)
    _insert_synthetic_source(ctx, provider, "bench-churn", count, rng, vocab)
    print(f"built {kept} kept + {count} synthetic chunks in {time.perf_counter() - started:.0f} s")
    try:
        measure("kept + synthetic")
        with ctx.db.session() as session:
            delete_source(session, "bench-churn")  # commits without the automatic rebuild
        measure("synthetic deleted, VACUUM")
        for result in heal_docs_indexes(ctx.db):
            print(f"  heal: {result.summary()}")
        measure("after the automatic rebuild")
    finally:
        with ctx.db.session() as session:
            delete_source(session, "bench-churn")
            delete_source(session, "bench-kept")
        heal_docs_indexes(ctx.db)


def bench_messages(ctx: AppContext, provider, count: int, repeats: int, keep: bool, vectors: str = "random") -> None:
    from slack_mcp.audience import Audience
    from slack_mcp.queries import Channel
    from slack_mcp.search import search_messages

    with ctx.db.session() as session:
        present = session.execute(text("SELECT count(*) FROM slack_messages WHERE channel_id LIKE 'CBENCH%'")).scalar()
        kind = session.execute(text("SELECT name FROM slack_channels WHERE id = 'CBENCH000'")).scalar()
    if present != count or kind != _bench_channel_name(0, vectors):
        _insert_messages(ctx, provider, count, vectors)
    else:
        print(f"reusing {count} synthetic messages ({vectors} vectors) kept by an earlier --keep run")
    queries = [q["q"] for q in QUESTIONS]
    with ctx.db.session() as session:
        newest = session.execute(text("SELECT max(created_at) FROM slack_messages WHERE channel_id LIKE 'CBENCH%'"))
        week_before = newest.scalar_one() - timedelta(days=7)
    public = Audience()
    cases: list[tuple[str, Audience, dict]] = [
        ("public audience", public, {}),
        ("unrestricted", Audience(unrestricted=True), {}),
        ("public, one channel", public, {"channel": Channel("CBENCH001", "cbench001")}),
        ("public, one user", public, {"user_id": "UBENCH42"}),
        ("public, last 7 days", public, {"since": week_before}),
        ("public, words only", public, {"semantic_weight": 0.0}),
        ("public, meaning only", public, {"semantic_weight": 1.0}),
    ]
    try:
        with ctx.db.session() as session:
            for label, audience, filters in cases:
                samples = timed(
                    lambda q, a=audience, f=filters: search_messages(session, provider, a, q, limit=10, **f),
                    queries,
                    repeats,
                )
                print(f"  message search ({label}) {percentiles(samples)}")
        print(f"  message search (public, MCP tool call) {percentiles(_tool_calls(ctx, provider, queries, repeats))}")
        _keyword_check(ctx, queries)
    finally:
        if not keep:
            _delete_messages(ctx)


def _keyword_check(ctx: AppContext, queries: list[str]) -> None:
    """What the keyword arm's candidate cap changes: its top 10 against ranking every match (words only).

    For each top 10: how many distinct query words a result holds, their summed IDF (exact counts), and the
    result's length in lexemes. Ranking every match with length-normalised ``ts_rank_cd`` favours short
    messages; the capped arm starts from the rarest words.
    """
    from slack_mcp import search as message_search
    from slack_mcp.audience import Audience

    def top(session) -> dict[str, list[str]]:
        return {
            q: [row["ts"] for row, _ in message_search.search_messages(session, None, Audience(), q, semantic_weight=0)]
            for q in queries
        }

    with ctx.db.session() as session:
        capped = top(session)
        budget = (message_search.KEYWORD_POSTINGS, message_search.KEYWORD_PREFILTER)
        message_search.KEYWORD_POSTINGS = message_search.KEYWORD_PREFILTER = 10**9
        try:
            exact = top(session)
        finally:
            message_search.KEYWORD_POSTINGS, message_search.KEYWORD_PREFILTER = budget
        total = session.execute(text("SELECT count(*) FROM slack_messages")).scalar_one()
        measures: dict[str, list[tuple[int, float, int]]] = {"every match": [], "capped": []}
        for q in queries:
            lexemes = session.execute(
                text("SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('english', :q)))"), {"q": q}
            ).scalars()
            idf = {}
            for lexeme in lexemes:
                df = session.execute(
                    text("SELECT count(*) FROM slack_messages WHERE search @@ CAST(quote_literal(:l) AS tsquery)"),
                    {"l": lexeme},
                ).scalar_one()
                idf[lexeme] = math.log(1 + (total - df + 0.5) / (df + 0.5))
            for label, tss in (("every match", exact[q]), ("capped", capped[q])):
                for ts in tss:
                    words = set(
                        session.execute(
                            text("SELECT tsvector_to_array(search) FROM slack_messages WHERE ts = :ts"), {"ts": ts}
                        ).scalar_one()
                    )
                    held = [w for w in idf if w in words]
                    measures[label].append((len(held), sum(idf[w] for w in held), len(words)))
    overlap = statistics.mean(len(set(capped[q]) & set(exact[q])) / max(len(exact[q]), 1) for q in queries)
    print(f"  keyword arm, top 10 (words only): overlap of capped with every-match ranking {overlap:.2f}")
    for label, rows in measures.items():
        held, weight, length = (statistics.mean(r[i] for r in rows) for i in range(3))
        print(f"    {label:12} query words held {held:.2f}   their summed IDF {weight:.2f}   length {length:.1f}")


def _tool_calls(ctx: AppContext, provider, queries: list[str], repeats: int) -> list[float]:
    """``search_messages`` as an MCP client sees it: the official client, in memory, one session."""
    import anyio
    from slack_mcp.server import build_server

    from mcp import Client

    server = build_server(ctx.db, provider)

    async def main() -> list[float]:
        async with Client(server) as client:
            for q in queries[:5]:
                await client.call_tool("search_messages", {"query": q})
            samples = []
            for _ in range(repeats):
                for q in queries:
                    started = time.perf_counter()
                    result = await client.call_tool("search_messages", {"query": q})
                    samples.append((time.perf_counter() - started) * 1000)
                    if result.is_error:
                        raise SystemExit(f"search_messages failed: {result.content}")
            return samples

    return anyio.run(main)


def _delete_messages(ctx: AppContext) -> None:
    """Remove the synthetic messages, and rebuild the HNSW index they leave dead entries in.

    Without the rebuild, the next set's searches walk through the deleted set's part of the graph: after two
    sets had been replaced the index held 200,000 dead entries (391 MB) and the vector arm took ~50 ms.
    """
    from slack_mcp.embedding_jobs import heal_message_indexes

    with ctx.db.session() as session:
        session.execute(text("DELETE FROM slack_message_embeddings WHERE channel_id LIKE 'CBENCH%'"))
        session.execute(text("DELETE FROM slack_messages WHERE channel_id LIKE 'CBENCH%'"))
        session.execute(text("DELETE FROM slack_channels WHERE id LIKE 'CBENCH%'"))
    for result in heal_message_indexes(ctx.db):
        if result.rebuilt or result.error:
            print(result.summary())


def _bench_channel_name(i: int, vectors: str) -> str:
    """A synthetic channel's name, which also records the kind of vectors its messages got."""
    return f"cbench{i:03d}" if vectors == "random" else f"cbench{i:03d}-{vectors}"


def _insert_messages(ctx: AppContext, provider, count: int, vectors: str = "random") -> None:
    """``count`` synthetic messages in 50 channels (every tenth private), with random embeddings or (``near-real``)
    embeddings scattered around the manual's chunks, as real messages about the same subjects would be."""
    _delete_messages(ctx)
    rng = random.Random(11)
    vocab = _vocabulary(ctx)
    column = {384: "embedding_384", 1536: "embedding_1536"}[provider.dimensions]
    if vectors == "near-real":
        vector = _near_real_vectors(ctx, rng, provider.dimensions, column)
    else:
        vector = lambda: _vector(rng, provider.dimensions)  # noqa: E731
    channels = [f"CBENCH{i:03d}" for i in range(50)]
    started = time.perf_counter()
    with ctx.db.session() as session:
        for cid in channels:
            session.execute(
                text(
                    "INSERT INTO slack_channels (id, name, is_private) VALUES (:id, :n, :p) ON CONFLICT (id) DO NOTHING"
                ),
                {"id": cid, "n": _bench_channel_name(int(cid[6:]), vectors), "p": cid.endswith("7")},
            )
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for start in range(0, count, 2000):
        rows = []
        for i in range(start, min(start + 2000, count)):
            at = base + timedelta(seconds=37 * i)
            ts = f"{int(at.timestamp())}.{i % 1_000_000:06d}"
            rows.append(
                {
                    "c": rng.choice(channels),
                    "ts": ts,
                    "at": at,
                    "u": f"UBENCH{i % 200}",
                    "t": " ".join(rng.choice(vocab) for _ in range(rng.randint(5, 40))),
                    "model": provider.model,
                    "v": vector(),
                }
            )
        with ctx.db.session() as session:
            session.execute(
                text(
                    "INSERT INTO slack_messages (channel_id, ts, created_at, user_id, text) "
                    "VALUES (:c, :ts, :at, :u, :t) ON CONFLICT DO NOTHING"
                ),
                rows,
            )
            session.execute(
                text(
                    f"INSERT INTO slack_message_embeddings (channel_id, ts, model, text_hash, {column}) "
                    "VALUES (:c, :ts, :model, '', CAST(:v AS vector)) ON CONFLICT DO NOTHING"
                ),
                rows,
            )
    with ctx.db.session() as session:
        session.execute(text("ANALYZE slack_messages, slack_message_embeddings"))
    print(f"inserted {count} synthetic messages ({vectors} vectors) in {time.perf_counter() - started:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="pg15", help="docs source to time searches on")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ingest", metavar="FOLDER", help="time a fresh ingest of FOLDER (into a temporary source)")
    parser.add_argument("--synthetic-chunks", type=int, default=0)
    parser.add_argument(
        "--synthetic-vectors",
        choices=("near-real", "random"),
        default="near-real",
        help="synthetic chunk vectors scattered around the real chunks' (default) or uniformly random (worst case)",
    )
    parser.add_argument("--messages", type=int, default=0)
    parser.add_argument(
        "--reindex-churn", type=int, default=0, metavar="N", help="HNSW bloat and rebuild over N chunks"
    )
    parser.add_argument(
        "--message-vectors",
        choices=("random", "near-real"),
        default="random",
        help="synthetic message vectors: uniformly random (default, the worst case for HNSW) or scattered "
        "around the manual's chunk embeddings",
    )
    parser.add_argument("--skip-docs", action="store_true")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the synthetic chunks and messages for the next run (which then reuses them)",
    )
    args = parser.parse_args()
    config = Config()
    ctx = AppContext(config)
    provider = build_provider(
        config.embedding_provider,
        openai_api_key=config.openai_api_key,
        openai_base_url=config.openai_base_url,
        max_tokens=config.embedding_max_tokens,
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    tokens = getattr(provider, "max_tokens", None)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load}; "
        f"model {provider.model}" + (f" (max {tokens} tokens)" if tokens else "")
    )
    if not args.skip_docs:
        bench_docs(ctx, provider, args.source, args.repeats, f"source {args.source!r}")
    if args.ingest:
        bench_ingest(ctx, provider, Path(args.ingest))
    if args.synthetic_chunks:
        bench_synthetic_chunks(ctx, provider, args.synthetic_chunks, args.repeats, args.synthetic_vectors, args.keep)
    if args.messages:
        bench_messages(ctx, provider, args.messages, args.repeats, args.keep, args.message_vectors)
    if args.reindex_churn:
        bench_reindex_churn(ctx, provider, args.reindex_churn, args.repeats)
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
