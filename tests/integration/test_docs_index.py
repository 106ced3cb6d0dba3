"""The documentation index on real PostgreSQL: incremental ingest, hybrid search, the CLI, model mixing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from docs_mcp.crawl import CrawlReport, list_folder, read_folder
from docs_mcp.index import DocsIndexer, IngestStats
from docs_mcp.search import DocsQueryError, get_page, list_sources, search_docs
from embeddings import EmbeddingModelMismatchError, build_provider
from sqlalchemy import text

from database import DatabaseConnection

ROOT = Path(__file__).resolve().parents[2]

DOCS = {
    "indexes.md": "# Indexes\n\nIndexes speed up lookups.\n\n## Building without locks\n\n"
    "CREATE INDEX CONCURRENTLY builds an index without blocking writes to the table.\n",
    "vacuum.rst": "Vacuum\n======\n\nVACUUM reclaims storage occupied by dead tuples.\n\nFull\n----\n\n"
    "VACUUM FULL rewrites the whole table into a new file.\n",
    "backup.html": "<html><head><title>Backups</title></head><body><h1>Backups</h1>"
    "<p>pg_dump writes an archive; pg_restore restores a database from it.</p></body></html>",
    "notes.txt": "Replication streams WAL records from a primary server to standby servers.",
}


def write_docs(folder: Path, docs: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    for name, content in docs.items():
        (folder / name).write_text(content)


def ingest(db: DatabaseConnection, folder: Path, source: str = "manual", provider=None) -> IngestStats:
    report = CrawlReport()
    indexer = DocsIndexer(db, provider or build_provider("local"), source, str(folder))
    return indexer.ingest(read_folder(folder, list_folder(folder), "https://docs.test/", report), report)


def test_reingest_is_incremental_changed_pages_reembedded_removed_pages_deleted(
    db: DatabaseConnection, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_docs(folder, DOCS)
    first = ingest(db, folder)
    assert (first.pages_added, first.chunks_written) == (4, 6)
    again = ingest(db, folder)
    assert (again.pages_unchanged, again.chunks_written, again.pages_deleted) == (4, 0, 0)
    (folder / "vacuum.rst").write_text(DOCS["vacuum.rst"].replace("dead tuples", "dead row versions"))
    (folder / "notes.txt").unlink()
    third = ingest(db, folder)
    assert (third.pages_changed, third.pages_unchanged, third.pages_deleted, third.chunks_written) == (1, 2, 1, 2)
    with db.session() as session:
        (source,) = list_sources(session)
        assert (source.pages, source.chunks, source.embedding_model, source.embedding_dimensions) == (
            3,
            5,
            "all-MiniLM-L6-v2",
            384,
        )
        page = get_page(session, "https://docs.test/vacuum.rst")
        assert "dead row versions" in page.text and page.title == "Vacuum"
        orphans = session.execute(
            text("SELECT count(*) FROM docs_chunks c LEFT JOIN docs_pages p ON p.id = c.page_id WHERE p.id IS NULL")
        ).scalar()
        assert orphans == 0


def test_hybrid_search_finds_the_page_by_meaning_and_by_keyword(db: DatabaseConnection, tmp_path: Path) -> None:
    write_docs(tmp_path / "d", DOCS)
    ingest(db, tmp_path / "d")
    provider = build_provider("local")
    with db.session() as session:
        by_meaning = search_docs(session, provider, "how do I make a copy of my database to restore later?", limit=2)
        by_keyword = search_docs(session, provider, "CONCURRENTLY", limit=2, mode="fulltext")
        by_vector = search_docs(session, provider, "standby servers receiving WAL", limit=1, mode="vector")
        nothing = search_docs(session, provider, "the and of", limit=3, mode="fulltext")
    assert by_meaning[0].url == "https://docs.test/backup.html" and by_meaning[0].title == "Backups"
    assert by_keyword[0].url.endswith("indexes.md") and by_keyword[0].heading == "Indexes > Building without locks"
    assert by_vector[0].url.endswith("notes.txt")
    assert nothing == []
    assert len({hit.url for hit in by_meaning}) == len(by_meaning)  # one result per page


def test_a_source_embedded_with_another_model_is_refused(db: DatabaseConnection, tmp_path: Path) -> None:
    class OtherModel:
        model, dimensions = "other-model", 384

        def embed(self, texts):  # type: ignore[no-untyped-def]
            return [[1.0] + [0.0] * 383 for _ in texts]

    write_docs(tmp_path / "d", DOCS)
    ingest(db, tmp_path / "d", provider=OtherModel())
    with pytest.raises(EmbeddingModelMismatchError, match=r"other-model.*--rebuild"):
        ingest(db, tmp_path / "d")
    with db.session() as session, pytest.raises(EmbeddingModelMismatchError):
        search_docs(session, build_provider("local"), "vacuum", source="manual")
    with db.session() as session, pytest.raises(DocsQueryError, match="available: manual"):
        search_docs(session, build_provider("local"), "vacuum", source="nope")
    rebuilt = DocsIndexer(db, build_provider("local"), "manual", "x", rebuild=True).ingest(
        read_folder(tmp_path / "d", list_folder(tmp_path / "d"))
    )
    assert rebuilt.pages_added == 4


@pytest.mark.slow
def test_cli_ingest_search_json_and_sources(database_url: str, tmp_path: Path) -> None:
    write_docs(tmp_path / "d", DOCS)
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "athenaeum.py"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
            check=False,
        )

    ingested = run("docs", "ingest", str(tmp_path / "d"), "--source", "guide")
    assert ingested.returncode == 0, ingested.stderr
    assert "4 pages (4 new" in ingested.stdout and "chunks/s" in ingested.stdout
    found = run("docs", "search", "rewrite the table to reclaim space", "--json", "--limit", "2")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert hits[0]["url"].endswith("vacuum.rst") and {"url", "title", "heading", "score", "text"} <= set(hits[0])
    sources = run("docs", "sources")
    assert "guide" in sources.stdout and "all-MiniLM-L6-v2" in sources.stdout
