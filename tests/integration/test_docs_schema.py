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
        assert "gin" in indexes["ix_docs_chunks_tsv"]
    finally:
        engine.dispose()
