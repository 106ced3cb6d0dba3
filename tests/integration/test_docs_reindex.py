"""HNSW index upkeep on real PostgreSQL: dead entries counted, concurrent rebuilds past the policy, failed-rebuild
cleanup, and `docs reindex`."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from docs_mcp.crawl import CrawlReport, list_folder, read_folder
from docs_mcp.index import DocsIndexer, IngestStats, remove_source
from docs_mcp.reindex import DOCS_HNSW_INDEXES, UnknownSourceError, reindex_docs, vacuum_docs_chunks
from docs_mcp.search import search_docs
from embeddings import build_provider
from slack_mcp.embedding_jobs import MESSAGE_HNSW_INDEXES, embed_missing_messages, heal_message_indexes
from sqlalchemy import Connection, text

from database import DatabaseConnection
from database.vector_indexes import (
    ADVISORY_LOCK_CLASS,
    ReindexPolicy,
    VectorIndexError,
    invalid_leftovers,
    rebuild_index,
)
from tests.fakes.openai_embeddings import serve_openai

ROOT = Path(__file__).resolve().parents[2]

INDEX_384 = DOCS_HNSW_INDEXES[384]
INDEX_1536 = DOCS_HNSW_INDEXES[1536]
#: Small enough that a test source of a few dozen one-chunk pages crosses it.
POLICY = ReindexPolicy(min_dead_entries=10, dead_fraction=0.2, lock_timeout_seconds=30)
TOPICS = [
    "autovacuum", "replication", "checkpoints", "tablespaces", "collations", "sequences", "triggers", "partitioning",
    "extensions", "roles", "backups", "locks", "savepoints", "cursors", "domains", "enums", "arrays", "json",
    "ranges", "views", "rules", "publications", "subscriptions", "statistics", "planner", "joins", "indexes",
    "clustering", "toast", "wal", "timelines", "archiving", "listen", "notify", "prepared", "portals", "copy",
    "foreign", "inheritance", "schemas",
]  # fmt: skip


@pytest.fixture(scope="module")
def provider():  # type: ignore[no-untyped-def]
    return build_provider("local")


def write_pages(folder: Path, topics: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for topic in topics:
        (folder / f"{topic}.md").write_text(f"# About {topic}\n\nThis page explains {topic} in PostgreSQL.\n")


def ingest(db, provider, folder: Path, *, rebuild: bool = False, policy=POLICY) -> IngestStats:  # type: ignore[no-untyped-def]
    report = CrawlReport()
    indexer = DocsIndexer(db, provider, "manual", str(folder), rebuild=rebuild, reindex_policy=policy)
    return indexer.ingest(read_folder(folder, list_folder(folder), "https://docs.test/", report), report)


def index_state(db: DatabaseConnection, name: str) -> tuple[int, bool]:
    """(relfilenode, indisvalid): a rebuilt index has a new file."""
    with db.session() as session:
        row = session.execute(
            text(
                "SELECT c.relfilenode, i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
                "WHERE c.relname = :n"
            ),
            {"n": name},
        ).one()
    return int(row.relfilenode), bool(row.indisvalid)


def churn(db: DatabaseConnection, name: str) -> int:
    with db.session() as session:
        return int(
            session.execute(
                text("SELECT coalesce(max(dead_entries), 0) FROM vector_index_churn WHERE index_name = :n"), {"n": name}
            ).scalar_one()
        )


@contextmanager
def writer_in_flight(db: DatabaseConnection) -> Iterator[Connection]:
    """An open transaction holding a write lock on docs_chunks: a concurrent rebuild must wait for it."""
    with db.engine.connect() as conn:
        conn.execute(text("LOCK TABLE docs_chunks IN ROW EXCLUSIVE MODE"))
        try:
            yield conn
        finally:
            conn.rollback()


def test_deletes_are_counted_per_touched_column_and_small_ones_rebuild_nothing(
    db: DatabaseConnection, tmp_path: Path, provider
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    write_pages(folder, TOPICS)
    first = ingest(db, provider, folder)
    assert first.chunks_written == 40
    assert not any(r.rebuilt for r in first.index_upkeep)
    before = index_state(db, INDEX_384.name)

    write_pages(folder, TOPICS[:-5])  # 5 pages gone: below the minimum of 10
    stats = ingest(db, provider, folder)
    assert stats.pages_deleted == 5
    assert churn(db, INDEX_384.name) == 5
    assert churn(db, INDEX_1536.name) == 0
    (result_384,) = [r for r in stats.index_upkeep if r.index == INDEX_384.name]
    assert not result_384.rebuilt and "below the minimum" in result_384.reason
    assert index_state(db, INDEX_384.name) == before

    # 11 dead of 29 live: past a minimum of 2, but below a share of 50%.
    write_pages(folder, TOPICS[:-11])
    stats = ingest(db, provider, folder, policy=ReindexPolicy(min_dead_entries=2, dead_fraction=0.5))
    assert churn(db, INDEX_384.name) == 11
    (result_384,) = [r for r in stats.index_upkeep if r.index == INDEX_384.name]
    assert not result_384.rebuilt and "below 50% of 29 live rows" in result_384.reason
    assert index_state(db, INDEX_384.name) == before


def test_a_large_delete_rebuilds_the_index_smaller_and_search_still_finds_what_is_left(
    db: DatabaseConnection, tmp_path: Path, provider
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    write_pages(folder, TOPICS)
    ingest(db, provider, folder)
    before_384, before_1536 = index_state(db, INDEX_384.name), index_state(db, INDEX_1536.name)

    keep = TOPICS[:12]
    write_pages(folder, keep)  # 28 of 40 pages gone
    stats = ingest(db, provider, folder)
    (result,) = [r for r in stats.index_upkeep if r.rebuilt]
    assert (result.index, result.dead_entries, result.live_rows) == (INDEX_384.name, 28, 12)
    assert result.bytes_after < result.bytes_before
    relfilenode, valid = index_state(db, INDEX_384.name)
    assert relfilenode != before_384[0] and valid
    assert index_state(db, INDEX_1536.name) == before_1536  # its column lost nothing
    assert churn(db, INDEX_384.name) == 0
    with db.session() as session:
        # ... and the table was vacuumed and analyzed, so full text no longer visits the dead rows.
        vacuumed = session.execute(
            text(
                "SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL, n_dead_tup "
                "FROM pg_stat_user_tables WHERE relname = 'docs_chunks'"
            )
        ).one()
        assert tuple(vacuumed) == (True, 0)
        assert invalid_leftovers(session.connection(), INDEX_384) == []
        for topic in (keep[0], keep[-1]):
            hits = search_docs(session, provider, f"This page explains {topic} in PostgreSQL.", limit=3, mode="vector")
            assert hits[0].url.endswith(f"/{topic}.md")
        hits = search_docs(
            session, provider, f"This page explains {TOPICS[-1]} in PostgreSQL.", limit=20, mode="vector"
        )
        assert {hit.url.rsplit("/", 1)[1] for hit in hits} == {f"{topic}.md" for topic in keep}


def test_ingest_rebuild_and_deleting_a_source_each_rebuild_the_index(
    db: DatabaseConnection, tmp_path: Path, provider
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    write_pages(folder, TOPICS[:15])
    ingest(db, provider, folder)
    first = index_state(db, INDEX_384.name)
    stats = ingest(db, provider, folder, rebuild=True)  # every chunk deleted and re-embedded
    assert [r.index for r in stats.index_upkeep if r.rebuilt] == [INDEX_384.name]
    second = index_state(db, INDEX_384.name)
    assert second[0] != first[0] and second[1]

    existed, upkeep = remove_source(db, "manual", POLICY)
    assert existed
    assert [(r.index, r.dead_entries, r.live_rows) for r in upkeep if r.rebuilt] == [(INDEX_384.name, 15, 0)]
    third = index_state(db, INDEX_384.name)
    assert third[0] != second[0] and third[1]
    assert remove_source(db, "manual", POLICY) == (False, [])


def test_a_failed_concurrent_rebuild_drops_its_invalid_copy_and_keeps_the_old_index(
    db: DatabaseConnection, tmp_path: Path, provider
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    write_pages(folder, TOPICS[:5])
    ingest(db, provider, folder)
    before = index_state(db, INDEX_384.name)
    with writer_in_flight(db):
        # REINDEX CONCURRENTLY creates its copy, then waits for writers: the lock timeout fails it there, and
        # dropping the copy would wait for the same writer.
        with pytest.raises(VectorIndexError, match=r"lock timeout.*ix_docs_chunks_embedding_384_ccnew, INVALID"):
            rebuild_index(db.engine, INDEX_384, ReindexPolicy(lock_timeout_seconds=0.2), force=True)
        with db.session() as session:
            assert invalid_leftovers(session.connection(), INDEX_384) == [f"{INDEX_384.name}_ccnew"]
    assert index_state(db, INDEX_384.name) == before
    (result,) = reindex_docs(db, "manual")
    assert result.rebuilt and result.dropped_leftovers == (f"{INDEX_384.name}_ccnew",)
    assert index_state(db, INDEX_384.name)[0] != before[0]
    with db.session() as session:
        assert invalid_leftovers(session.connection(), INDEX_384) == []


def test_a_rebuild_drops_invalid_leftovers_of_an_earlier_crashed_one(db: DatabaseConnection) -> None:
    leftover = f"{INDEX_384.name}_ccnew"
    with writer_in_flight(db), db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # What a crash mid-rebuild leaves: an INVALID index of that name (a CREATE INDEX CONCURRENTLY that
        # timed out waiting for the writer, like the REINDEX would).
        conn.execute(text("SET lock_timeout = '200ms'"))
        with pytest.raises(Exception, match="lock timeout"):
            conn.execute(
                text(
                    f"CREATE INDEX CONCURRENTLY {leftover} ON docs_chunks USING hnsw (embedding_384 vector_cosine_ops)"
                )
            )
        assert invalid_leftovers(conn, INDEX_384) == [leftover]
    result = rebuild_index(db.engine, INDEX_384, POLICY)
    assert not result.rebuilt and result.dropped_leftovers == (leftover,)
    with db.session() as session:
        assert session.execute(text("SELECT to_regclass(:n)"), {"n": leftover}).scalar() is None


def test_a_second_caller_skips_while_a_rebuild_holds_the_lock(db: DatabaseConnection) -> None:
    before = index_state(db, INDEX_384.name)
    with db.engine.connect() as other:
        other.execute(
            text("SELECT pg_advisory_lock(:c, hashtext(:n))"), {"c": ADVISORY_LOCK_CLASS, "n": INDEX_384.name}
        )
        result = rebuild_index(db.engine, INDEX_384, force=True)
        other.rollback()
    assert not result.rebuilt and result.reason == "another rebuild of it is running"
    assert index_state(db, INDEX_384.name) == before


def test_reindex_of_an_unknown_source_says_how_to_list_them(db: DatabaseConnection) -> None:
    with pytest.raises(UnknownSourceError, match="docs sources"):
        reindex_docs(db, "nope")


def test_re_embedding_messages_with_another_model_counts_and_rebuilds_the_old_index(db: DatabaseConnection) -> None:
    with db.session() as session:
        session.execute(text("INSERT INTO slack_channels (id, name, is_private) VALUES ('C1', 'general', false)"))
        session.execute(
            text(
                "INSERT INTO slack_messages (channel_id, ts, created_at, user_id, text) "
                "SELECT 'C1', '1700000000.' || lpad(g::text, 6, '0'), now(), 'U1', 'message number ' || g "
                "FROM generate_series(1, 12) g"
            )
        )
    old = next(index for index in MESSAGE_HNSW_INDEXES if index.column == "embedding_384")
    assert embed_missing_messages(db, build_provider("local")) == 12
    assert churn(db, old.name) == 0
    before = index_state(db, old.name)
    with serve_openai() as fake:
        assert (
            embed_missing_messages(db, build_provider("openai", openai_api_key="sk-test", openai_base_url=fake.url))
            == 12
        )
    assert churn(db, old.name) == 12  # every 384 vector replaced by a 1536 one
    results = heal_message_indexes(db, POLICY)
    assert [(r.index, r.dead_entries, r.live_rows) for r in results if r.rebuilt] == [(old.name, 12, 0)]
    assert index_state(db, old.name)[0] != before[0] and index_state(db, old.name)[1]


@pytest.mark.slow
def test_cli_reindex_prints_sizes_and_delete_removes_the_source(
    db: DatabaseConnection, database_url: str, tmp_path: Path, provider
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "docs"
    write_pages(folder, TOPICS[:3])
    ingest(db, provider, folder)
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "athenaeum.py"), "docs", *args],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False,
        )  # fmt: skip

    done = run("reindex", "--source", "manual")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"ix_docs_chunks_embedding_384: rebuilt in \d+\.\ds, \d+\.\d MB -> \d+\.\d MB \(requested\)\n", done.stdout
    )
    missing = run("reindex", "--source", "nope")
    assert missing.returncode == 1 and "no docs source named 'nope'" in missing.stderr
    deleted = run("delete", "manual")
    assert deleted.returncode == 0 and "deleted docs source 'manual'" in deleted.stdout, deleted.stderr
    assert run("delete", "manual").returncode == 1


def test_create_tables_installs_the_same_counting_triggers(empty_database_url: str) -> None:
    quick = DatabaseConnection(empty_database_url)
    try:
        quick.create_tables()
        with quick.session() as session:
            session.execute(
                text(
                    "INSERT INTO docs_sources (id, name, location, embedding_model, embedding_dimensions) "
                    "VALUES (1, 's', 'x', 'm', 384)"
                )
            )
            session.execute(text("INSERT INTO docs_pages (id, source_id, url, title, content_hash, text) "
                                 "VALUES (1, 1, 'u', 't', '', '')"))  # fmt: skip
            session.execute(
                text(
                    "INSERT INTO docs_chunks (page_id, source_id, ordinal, heading, text, tsv, embedding_384) "
                    "SELECT 1, 1, g, 'h', 't', to_tsvector('t'), array_fill(0.5::real, ARRAY[384])::vector "
                    "FROM generate_series(1, 3) g"
                )
            )
        with quick.session() as session:
            session.execute(text("DELETE FROM docs_sources"))  # cascades through pages to chunks
        assert churn(quick, INDEX_384.name) == 3
    finally:
        quick.dispose()


def test_a_vacuum_that_cannot_get_its_lock_gives_up_and_says_so(db: DatabaseConnection) -> None:
    # The vacuum after a large delete is upkeep: blocked past the lock timeout, it is logged, not raised.
    logger, records = logging.getLogger("docs_mcp.reindex"), []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        with db.engine.connect() as conn:
            conn.execute(text("LOCK TABLE docs_chunks IN SHARE UPDATE EXCLUSIVE MODE"))
            assert vacuum_docs_chunks(db, 0.2) is False
            conn.rollback()
    finally:
        logger.removeHandler(handler)
    assert any("lock timeout" in r.getMessage() for r in records)
    # The timeout was the vacuum's alone: neither pooled connection (the lock holder's, the vacuum's) keeps it.
    assert db.engine.pool.checkedin() == 2  # type: ignore[attr-defined]
    with db.engine.connect() as first, db.engine.connect() as second:
        assert {c.execute(text("SHOW lock_timeout")).scalar_one() for c in (first, second)} == {"0"}
    assert vacuum_docs_chunks(db, 0.2) is True
