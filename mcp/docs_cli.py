"""`docs ingest|search|sources|delete|reindex`: build and query the documentation index from the command line.

A command module (not a server): ``athenaeum.py`` registers it; the queries are the same functions the
docs MCP server calls (``docs_mcp.search``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from docs_mcp.crawl import CrawlReport, SiteCrawler, list_folder, read_folder
from docs_mcp.index import DocsIndexer, remove_source
from docs_mcp.reindex import UnknownSourceError, reindex_docs
from docs_mcp.search import DEFAULT_SEMANTIC_WEIGHT, list_sources, search_docs
from embeddings import EmbeddingProvider, build_provider
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from database.vector_indexes import ReindexResult, VectorIndexError


def register(sub: Any) -> None:
    """Add ``docs`` to the CLI."""
    docs = sub.add_parser("docs", help="build and search the documentation index")
    dsub = docs.add_subparsers(dest="docs_command", required=True, metavar="COMMAND")
    p = dsub.add_parser("ingest", help="index a folder (Markdown/reST/HTML/text) or a website via its sitemap")
    p.add_argument("location", metavar="PATH-or-URL")
    p.add_argument("--source", help="source name (default: the folder name or the host)")
    p.add_argument("--base-url", help="for a folder: the URL the files are published under (for links)")
    p.add_argument("--rebuild", action="store_true", help="drop the source's pages and re-embed everything")
    p.add_argument("--delay", type=float, default=0.5, help="seconds between requests to a website (default 0.5)")
    p.add_argument("--max-pages", type=int, default=5000, help="stop a website crawl after N pages")
    p.set_defaults(handler=cmd_ingest)
    p = dsub.add_parser("search", help="search the index (hybrid: vectors + full text)")
    p.add_argument("query")
    p.add_argument("--source", help="only this source")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--semantic-weight", type=float, default=None, help="0 = full text only, 1 = vectors only")
    p.add_argument("--json", action="store_true", help="print a JSON list (url, title, heading, score, text)")
    p.set_defaults(handler=cmd_search)
    p = dsub.add_parser("sources", help="list sources with page/chunk counts and embedding models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_sources)
    p = dsub.add_parser("delete", help="delete a source with its pages and chunks")
    p.add_argument("source")
    p.set_defaults(handler=cmd_delete)
    p = dsub.add_parser(
        "reindex", help="rebuild the vector (HNSW) indexes concurrently, e.g. after large deletes; prints sizes"
    )
    p.add_argument("--source", help="only the index this source's vectors live in (default: all)")
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up if a lock or an older transaction holds the rebuild up longer than this (default: wait)",
    )
    p.set_defaults(handler=cmd_reindex)


def provider_from(ctx: Any) -> EmbeddingProvider:
    """The configured embedding provider."""
    config = ctx.config
    return build_provider(
        config.embedding_provider,
        openai_api_key=config.openai_api_key,
        openai_base_url=config.openai_base_url,
        max_tokens=config.embedding_max_tokens,
    )


def cmd_ingest(ctx: Any, args: argparse.Namespace) -> int:
    ctx.require_current_schema()
    location: str = args.location
    is_url = location.startswith(("http://", "https://"))
    source = args.source or (urlsplit(location).hostname if is_url else Path(location).resolve().name) or "docs"
    report = CrawlReport()
    crawler: SiteCrawler | None = None
    console = Console(stderr=True)
    if is_url:
        crawler = SiteCrawler(location, delay=args.delay, max_pages=args.max_pages)
        with console.status(f"reading the sitemap of {location}"):
            urls = crawler.page_urls()
        documents = crawler.read(urls, report)
        total = len(urls)
    else:
        root = Path(location)
        files = list_folder(root)
        documents = read_folder(root, files, args.base_url, report)
        total = len(files)
    provider = provider_from(ctx)
    started = time.monotonic()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "pages  {task.fields[chunks]} chunks  {task.fields[pps]:.1f} pages/s  {task.fields[cps]:.1f} chunks/s"
        ),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(f"ingest {source}", total=total, chunks=0, pps=0.0, cps=0.0)

        def on_progress(pages: int, chunks: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            progress.update(task, completed=pages, chunks=chunks, pps=pages / elapsed, cps=chunks / elapsed)

        indexer = DocsIndexer(ctx.db, provider, source, location, rebuild=args.rebuild, on_progress=on_progress)
        try:
            stats = indexer.ingest(documents, report)
        finally:
            if crawler is not None:
                crawler.close()
    print(
        f"{source}: {stats.pages_seen} pages ({stats.pages_added} new, {stats.pages_changed} changed, "
        f"{stats.pages_unchanged} unchanged, {stats.pages_deleted} deleted, {stats.pages_failed} failed), "
        f"{stats.chunks_written} chunks embedded in {stats.seconds:.1f}s "
        f"({stats.pages_per_second:.1f} pages/s, {stats.chunks_per_second:.1f} chunks/s)"
    )
    for url in report.failed[:10]:
        print(f"  failed: {url}", file=sys.stderr)
    print_upkeep(stats.index_upkeep)
    return 0


def cmd_search(ctx: Any, args: argparse.Namespace) -> int:
    import json

    provider = provider_from(ctx)
    weight = DEFAULT_SEMANTIC_WEIGHT if args.semantic_weight is None else args.semantic_weight
    with ctx.db.session() as session:
        hits = search_docs(session, provider, args.query, source=args.source, limit=args.limit, semantic_weight=weight)
    if args.json:
        json.dump([asdict(hit) for hit in hits], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not hits:
        print("no results")
    for n, hit in enumerate(hits, 1):
        snippet = " ".join(hit.text.split())[:240]
        print(f"{n}. {hit.title} — {hit.heading}  [{hit.score:.4f}]\n   {hit.url}\n   {snippet}\n")
    return 0


def cmd_sources(ctx: Any, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        sources = list_sources(session)
    if args.json:
        from agent.commands.context import print_json

        print_json([asdict(s) for s in sources])
        return 0
    if not sources:
        print("no sources: run `python athenaeum.py docs ingest PATH-or-URL`")
    for s in sources:
        print(
            f"{s.name:<24} {s.pages:>6} pages {s.chunks:>7} chunks  {s.embedding_model} ({s.embedding_dimensions})  "
            f"{s.location}"
        )
    return 0


def cmd_delete(ctx: Any, args: argparse.Namespace) -> int:
    ctx.require_current_schema()
    existed, upkeep = remove_source(ctx.db, args.source)
    if not existed:
        print(f"no docs source named {args.source!r}: `python athenaeum.py docs sources` lists them", file=sys.stderr)
        return 1
    print(f"deleted docs source {args.source!r}")
    print_upkeep(upkeep)
    return 0


def cmd_reindex(ctx: Any, args: argparse.Namespace) -> int:
    ctx.require_current_schema()
    try:
        results = reindex_docs(ctx.db, args.source, lock_timeout_seconds=args.lock_timeout)
    except (UnknownSourceError, VectorIndexError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for result in results:
        print(result.summary())
    return 0


def print_upkeep(results: list[ReindexResult]) -> None:
    """After a bulk change: report the indexes that were rebuilt, failed or had leftovers (not the quiet ones)."""
    for result in results:
        if result.error:
            print(f"warning: {result.summary()} Retry with `python athenaeum.py docs reindex`.", file=sys.stderr)
        elif result.rebuilt or result.dropped_leftovers:
            print(result.summary())
