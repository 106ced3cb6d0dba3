#!/usr/bin/env python3
"""Retrieval quality of the docs index: recall@k and MRR for full text, vectors and hybrid search.

    python scripts/eval_docs.py                          # uses the source "pg15" if already ingested
    python scripts/eval_docs.py --ingest /usr/share/doc/postgresql-doc-15/html --source pg15
    python scripts/eval_docs.py --weights 0.3,0.5,0.7    # also sweep the hybrid's semantic weight

The database is the configured one (DATABASE_URL, or the embedded server under ATHENAEUM_DATA_DIR).
A question counts as answered at k when one of its expected pages is among the first k results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "mcp")]

from docs_mcp.crawl import CrawlReport, list_folder, read_folder  # noqa: E402
from docs_mcp.index import DocsIndexer  # noqa: E402
from docs_mcp.search import search_docs  # noqa: E402
from embeddings import build_provider  # noqa: E402

from agent.commands.context import AppContext  # noqa: E402
from agent.config import Config  # noqa: E402

KS = (1, 3, 5, 10)


def evaluate(ctx: AppContext, provider, questions: list[dict], source: str, mode: str, weight: float) -> dict:
    ranks: list[int | None] = []
    started = time.perf_counter()
    with ctx.db.session() as session:
        for item in questions:
            hits = search_docs(
                session, provider, item["q"], source=source, limit=max(KS), semantic_weight=weight, mode=mode
            )
            rank = next(
                (n for n, hit in enumerate(hits, 1) if any(hit.url.endswith("/" + e) for e in item["expected"])),
                None,
            )
            ranks.append(rank)
    elapsed = time.perf_counter() - started
    result = {f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / len(ranks) for k in KS}
    result["mrr@10"] = sum(1 / r for r in ranks if r is not None) / len(ranks)
    result["ms_per_query"] = 1000 * elapsed / len(ranks)
    result["misses"] = [q["q"] for q, r in zip(questions, ranks, strict=True) if r is None]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", default=str(ROOT / "scripts" / "eval_docs_questions.json"))
    parser.add_argument("--source", default="pg15")
    parser.add_argument("--ingest", metavar="FOLDER", help="ingest this folder into --source first")
    parser.add_argument("--base-url", default="https://www.postgresql.org/docs/15/")
    parser.add_argument("--weights", default="", help="extra hybrid semantic weights to report, comma-separated")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()

    config = Config()
    ctx = AppContext(config)
    provider = build_provider(
        config.embedding_provider,
        openai_api_key=config.openai_api_key,
        openai_base_url=config.openai_base_url,
        max_tokens=config.embedding_max_tokens,
    )
    if args.ingest:
        folder = Path(args.ingest)
        files = list_folder(folder)
        report = CrawlReport()
        stats = DocsIndexer(ctx.db, provider, args.source, str(folder)).ingest(
            read_folder(folder, files, args.base_url, report), report
        )
        print(f"ingested {stats.pages_seen} pages, {stats.chunks_written} chunks in {stats.seconds:.1f}s")
    questions = json.loads(Path(args.questions).read_text())["questions"]
    runs = [("full text only", "fulltext", 0.0), ("vector only", "vector", 1.0), ("hybrid (w=0.6)", "hybrid", 0.6)]
    runs += [(f"hybrid (w={w})", "hybrid", float(w)) for w in args.weights.split(",") if w.strip()]
    print(f"{len(questions)} questions, source {args.source!r}, model {provider.model}")
    header = f"{'method':<18}" + "".join(f"{'R@' + str(k):>8}" for k in KS) + f"{'MRR@10':>8}{'ms/q':>8}"
    print(header)
    print("-" * len(header))
    for label, mode, weight in runs:
        r = evaluate(ctx, provider, questions, args.source, mode, weight)
        print(
            f"{label:<18}"
            + "".join(f"{r[f'recall@{k}']:>8.3f}" for k in KS)
            + f"{r['mrr@10']:>8.3f}{r['ms_per_query']:>8.1f}"
        )
        if args.show_misses:
            for miss in r["misses"]:
                print(f"    miss: {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
