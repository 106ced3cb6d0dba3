"""The docs index migration: models and migration agree, and it downgrades and upgrades cleanly."""

from sqlalchemy import create_engine, inspect, text

from alembic import command
from database.connection import normalize_url
from database.migrations import alembic_config


def test_models_match_migrations_and_the_docs_revision_round_trips(empty_database_url: str) -> None:
    cfg = alembic_config(empty_database_url)
    command.upgrade(cfg, "head")
    command.check(cfg)  # raises when the models describe a schema the migrations do not build
    command.downgrade(cfg, "0001")
    engine = create_engine(normalize_url(empty_database_url))
    try:
        assert "docs_chunks" not in inspect(engine).get_table_names()
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            indexes = dict(
                conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'docs_chunks'")).all()
            )
        assert (
            "hnsw" in indexes["ix_docs_chunks_embedding_384"]
            and "vector_cosine_ops" in indexes["ix_docs_chunks_embedding_384"]
        )
        # One GIN index over source and lexemes (btree_gin), no b-tree on source_id, and a narrow heap.
        assert "USING gin (source_id, tsv)" in indexes["ix_docs_chunks_source_id_tsv"]
        assert "fastupdate=off" in indexes["ix_docs_chunks_source_id_tsv"]
        assert "ix_docs_chunks_tsv" not in indexes and "ix_docs_chunks_source_id" not in indexes
        with engine.connect() as conn:
            options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'docs_chunks'")).scalar()
        assert options == ["toast_tuple_target=128"]
    finally:
        engine.dispose()


def test_the_narrow_heap_revision_rewrites_existing_chunks_and_keeps_them(empty_database_url: str) -> None:
    cfg = alembic_config(empty_database_url)
    command.upgrade(cfg, "0007")
    engine = create_engine(normalize_url(empty_database_url))
    # Chunks as ingest writes them: ~2,000 characters of varied text, its tsvector, a 384-dimension vector.
    fill = (
        "INSERT INTO docs_sources (name, location, embedding_model, embedding_dimensions) VALUES ('s', '/d', 'm', 384);"
        "INSERT INTO docs_pages (source_id, url, title, content_hash, text) SELECT 1, 'u' || i, 't', 'h', '' "
        "FROM generate_series(1, 40) AS i;"
        "INSERT INTO docs_chunks (page_id, source_id, ordinal, heading, text, tsv, embedding_384) "
        "SELECT p, 1, o, 'h', body, to_tsvector('english', body), "
        "(SELECT CAST(array_agg(random()) AS vector(384)) FROM generate_series(1, 384) WHERE o > -p) "
        "FROM generate_series(1, 40) AS p, generate_series(1, 5) AS o, "
        "LATERAL (SELECT string_agg(md5(random()::text || p || o || g), ' ') AS body "
        "FROM generate_series(1, 60) AS g) AS b;"
        "INSERT INTO vector_index_churn (index_name, dead_entries) VALUES ('ix_docs_chunks_embedding_384', 5000);"
    )
    pages = "SELECT relpages FROM pg_class WHERE relname = 'docs_chunks'"
    content = "SELECT md5(string_agg(text || tsv::text || embedding_384::text, '' ORDER BY id)) FROM docs_chunks"
    try:
        with engine.begin() as conn:
            conn.execute(text(fill))
            conn.execute(text("ANALYZE docs_chunks"))
            wide_pages, before = conn.execute(text(pages)).scalar(), conn.execute(text(content)).scalar()
        command.upgrade(cfg, "head")
        with engine.begin() as conn:
            conn.execute(text("ANALYZE docs_chunks"))
            narrow_pages, after = conn.execute(text(pages)).scalar(), conn.execute(text(content)).scalar()
            churn = conn.execute(text("SELECT dead_entries FROM vector_index_churn")).scalar()
    finally:
        engine.dispose()
    assert after == before and before is not None  # nothing lost or changed
    assert 0 < narrow_pages * 4 <= wide_pages, (wide_pages, narrow_pages)
    print(wide_pages, narrow_pages)  # ~4 chunks a page before, ~50 after
    assert churn == 0  # the rewrite rebuilt the vector index
