"""The docs keyword arm on real PostgreSQL: term statistics kept by ingest, and what the two-stage ranking finds."""

from __future__ import annotations

from pathlib import Path

import docs_mcp.search as search_module
import pytest
from docs_mcp.crawl import CrawlReport, list_folder, read_folder
from docs_mcp.index import DocsIndexer, IngestStats
from docs_mcp.search import search_docs
from embeddings import build_provider
from sqlalchemy import event, text

from database import DatabaseConnection

# Many pages full of the manual's common words, and two that say something rare: one in its title, one in passing.
COMMON = "A table has rows and columns. A query reads rows from a table; an index helps the query find rows."
DOCS = {f"common{i:02d}.md": f"# Tables part {i}\n\n{COMMON}\n\n## More\n\n{COMMON} Row {i}.\n" for i in range(12)}
DOCS["tablespaces.md"] = "# Tablespaces\n\nA tablespace is a directory where a table's files live.\n"
DOCS["storage.md"] = "# Storage\n\nRows of a table are stored in pages; the files may sit in another tablespace.\n"


def ingest(db: DatabaseConnection, folder: Path, source: str = "manual") -> IngestStats:
    report = CrawlReport()
    indexer = DocsIndexer(db, build_provider("local"), source, str(folder))
    return indexer.ingest(read_folder(folder, list_folder(folder), "https://docs.test/", report), report)


def write(folder: Path, docs: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    for name, content in docs.items():
        (folder / name).write_text(content)


def recorded_and_actual(db: DatabaseConnection) -> tuple[dict[str, int], dict[str, int], int, int]:
    with db.session() as session:
        recorded = dict(session.execute(text("SELECT lexeme, df FROM docs_terms")).all())
        actual = dict(session.execute(text("SELECT word, ndoc FROM ts_stat('SELECT tsv FROM docs_chunks')")).all())
        count = session.execute(text("SELECT chunk_count FROM docs_sources")).scalar_one()
        chunks = session.execute(text("SELECT count(*) FROM docs_chunks")).scalar_one()
    return recorded, actual, count, chunks


def test_term_statistics_follow_every_ingest_and_repair_an_interrupted_one(
    db: DatabaseConnection, tmp_path: Path
) -> None:
    folder = tmp_path / "d"
    write(folder, DOCS)
    ingest(db, folder)
    recorded, actual, count, chunks = recorded_and_actual(db)
    assert recorded == actual and recorded["tablespac"] == 2 and count == chunks == 26

    (folder / "tablespaces.md").unlink()
    (folder / "storage.md").write_text("# Storage\n\nRows live in pages.\n")
    ingest(db, folder)
    recorded, actual, count, chunks = recorded_and_actual(db)
    assert recorded == actual and "tablespac" not in recorded and count == chunks == 25

    # An ingest that died after committing chunks left the statistics behind; the next one, with nothing to
    # do, sees the count disagree and rewrites them.
    with db.session() as session:
        session.execute(
            text(
                "INSERT INTO docs_chunks (page_id, source_id, ordinal, heading, text, tsv) "
                "SELECT page_id, source_id, 99, heading, 'zeppelin', to_tsvector('english', 'zeppelin') "
                "FROM docs_chunks LIMIT 1"
            )
        )
    again = ingest(db, folder)
    recorded, actual, count, chunks = recorded_and_actual(db)
    assert again.pages_unchanged == 13 and recorded == actual and recorded["zeppelin"] == 1 and count == chunks == 26


def test_keyword_ranking_puts_rare_words_first_and_title_matches_above_body(
    db: DatabaseConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "d", DOCS)
    ingest(db, tmp_path / "d")
    provider = build_provider("local")
    question = "which table rows live in a tablespace"
    with db.session() as session:
        ranked = search_docs(session, provider, question, limit=3, mode="fulltext")
        # Even when the candidate budget is smaller than the rarest word's postings, that word still brings
        # its chunks in; the common words only rank them.
        monkeypatch.setattr(search_module, "KEYWORD_POSTINGS", 1)
        monkeypatch.setattr(search_module, "KEYWORD_PREFILTER", 1)
        narrow = search_docs(session, provider, question, limit=3, mode="fulltext")
        hybrid = search_docs(session, provider, question, limit=3)
    assert [hit.url.rsplit("/", 1)[1] for hit in ranked[:2]] == ["tablespaces.md", "storage.md"]
    assert ranked[0].score > ranked[1].score > ranked[2].score > 0
    assert [hit.url.rsplit("/", 1)[1] for hit in narrow] == ["tablespaces.md"]
    assert hybrid[0].url.endswith("tablespaces.md")


def test_a_source_filter_still_fills_the_pool_from_a_shared_vector_index(
    db: DatabaseConnection, tmp_path: Path
) -> None:
    write(tmp_path / "d", DOCS)
    ingest(db, tmp_path / "d", "first")
    ingest(db, tmp_path / "d", "second")
    provider = build_provider("local")
    with db.session() as session:
        hits = search_docs(session, provider, "where do a table's files live", source="second", limit=10)
        both = search_docs(session, provider, "where do a table's files live", limit=28, mode="vector")
    assert len(hits) == 10 and {hit.source for hit in hits} == {"second"}
    assert {hit.source for hit in both} == {"first", "second"} and len(both) == 28


def keyword_plan(db: DatabaseConnection, question: str, source: str | None = None, *, no_seqscan: bool = False) -> dict:
    """EXPLAIN ANALYZE (JSON) of the keyword arm's statement as ``search_docs`` sends it."""
    sent: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:
        if "kw_cand" in statement:
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.session() as session:
            search_docs(session, None, question, source=source, mode="fulltext")
            statement, parameters = sent[-1]
            cursor = session.connection().connection.dbapi_connection.cursor()
            if no_seqscan:  # a test table is small enough for a sequential scan to win; ask what the index can do
                cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            return cursor.fetchone()[0][0]["Plan"]
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)


def plan_nodes(node: dict) -> list[dict]:
    """Every node of a plan, depth first."""
    return [node, *(n for child in node.get("Plans", []) for n in plan_nodes(child))]


def keyword_postings_read(db: DatabaseConnection, question: str) -> int:
    """Chunks the keyword arm's candidate stage reads for ``question``."""
    # Every scan of the chunks but the lookups by id (of the candidates, and of the results) is the stage's.
    return sum(
        round(node["Actual Rows"] * node["Actual Loops"])
        for node in plan_nodes(keyword_plan(db, question))
        if node.get("Relation Name") == "docs_chunks" and "(id = " not in node.get("Index Cond", "")
    )


def test_the_candidate_stage_reads_no_more_postings_than_it_can_use(
    db: DatabaseConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "d", DOCS)
    ingest(db, tmp_path / "d")
    with db.session() as session:
        table_chunks = session.execute(text("SELECT df FROM docs_terms WHERE lexeme = 'tabl'")).scalar_one()
        row_chunks = session.execute(text("SELECT df FROM docs_terms WHERE lexeme = 'row'")).scalar_one()
    assert table_chunks >= 20 and row_chunks >= 20
    monkeypatch.setattr(search_module, "KEYWORD_PREFILTER", 3)
    # One lexeme: all its chunks score alike as candidates, so only ``prefilter`` of them are read.
    assert keyword_postings_read(db, "tables") == 3
    # Several: the rarest first; the last one taken stops at the hard cap.
    monkeypatch.setattr(search_module, "KEYWORD_POSTINGS", 3)
    monkeypatch.setattr(search_module, "KEYWORD_MAX_POSTINGS", 6)
    assert keyword_postings_read(db, "tablespace rows") == 6
    with db.session() as session:
        hits = search_docs(session, None, "tablespace rows", limit=3, mode="fulltext")
    assert hits[0].url.endswith("tablespaces.md") or hits[0].url.endswith("storage.md")
    # Without the cap the common word's every posting is read.
    monkeypatch.setattr(search_module, "KEYWORD_MAX_POSTINGS", 10**6)
    assert keyword_postings_read(db, "tablespace rows") == 2 + row_chunks


def test_a_source_filter_is_a_key_of_the_full_text_index(db: DatabaseConnection, tmp_path: Path) -> None:
    # A small source inside a larger index: searching it must read only its postings from the GIN index, not
    # every source's postings, each filtered out after a heap visit.
    write(tmp_path / "big", {f"{copy}-{name}": text for copy in range(8) for name, text in DOCS.items()})
    ingest(db, tmp_path / "big", "big")
    write(tmp_path / "small", DOCS)
    ingest(db, tmp_path / "small", "second")
    nodes = plan_nodes(keyword_plan(db, "tablespace rows", source="second", no_seqscan=True))
    index_scans = [n for n in nodes if n.get("Index Name") == "ix_docs_chunks_source_id_tsv"]
    assert index_scans and all("source_id" in n["Index Cond"] for n in index_scans)
    with db.session() as session:
        # Each lexeme's postings are read on their own: a chunk with both counts twice.
        second_postings = session.execute(
            text(
                "SELECT count(*) FILTER (WHERE c.tsv @@ 'tablespac'::tsquery) "
                "+ count(*) FILTER (WHERE c.tsv @@ 'row'::tsquery) "
                "FROM docs_chunks c JOIN docs_sources s ON s.id = c.source_id WHERE s.name = 'second'"
            )
        ).scalar_one()
    assert sum(round(n["Actual Rows"] * n["Actual Loops"]) for n in index_scans) == second_postings
    assert not any(n.get("Rows Removed by Filter") for n in nodes if n.get("Relation Name") == "docs_chunks")


def test_a_large_source_is_matched_on_the_heap_row_and_every_source_not_at_all(
    db: DatabaseConnection, tmp_path: Path
) -> None:
    # Intersecting each lexeme's postings with a source's that cover most of the index costs more than it
    # drops: then the source is matched on the heap row the scan reads anyway, and not at all for every source.
    write(tmp_path / "big", {f"{copy}-{name}": text for copy in range(8) for name, text in DOCS.items()})
    ingest(db, tmp_path / "big", "big")
    write(tmp_path / "small", DOCS)
    ingest(db, tmp_path / "small", "second")
    for source in ("big", None):
        nodes = plan_nodes(keyword_plan(db, "tablespace rows", source=source, no_seqscan=True))
        chunk_scans = [n for n in nodes if n.get("Relation Name") == "docs_chunks" and "(id = " not in str(n)]
        index_scans = [n for n in nodes if n.get("Index Name") == "ix_docs_chunks_source_id_tsv"]
        assert chunk_scans and index_scans
        assert not any("source_id" in n["Index Cond"] for n in index_scans)
        on_heap = any("source_id" in n.get("Filter", "") for n in chunk_scans)
        assert on_heap == (source == "big"), chunk_scans
    with db.session() as session:
        hits = search_docs(session, None, "tablespace rows", source="big", limit=20, mode="fulltext")
        everywhere = search_docs(session, None, "tablespace rows", limit=40, mode="fulltext")
    assert hits and {hit.source for hit in hits} == {"big"}
    assert {hit.source for hit in everywhere} == {"big", "second"}
