"""Alembic environment: where the database comes from, online and offline (``--sql``)."""

from __future__ import annotations

from logging.config import fileConfig

from sqlalchemy import create_engine, pool

from alembic import context
from database.connection import normalize_url
from database.models import Base

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging_config"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# Used only to render SQL offline when no database is configured: nothing connects to it.
OFFLINE_PLACEHOLDER_URL = "postgresql+psycopg2://athenaeum@localhost/athenaeum"


def _database_url(offline: bool) -> str:
    """The URL given by the caller (CLI, tests), else the configuration (which may start the embedded server)."""
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from agent.config import Config

    settings = Config()
    if settings.database_url:
        return settings.database_url
    if offline:
        return OFFLINE_PLACEHOLDER_URL
    from database.embedded import EmbeddedPostgres

    return EmbeddedPostgres(settings.data_dir).start()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``) for a ``psql -f`` deployment."""
    context.configure(
        url=str(normalize_url(_database_url(offline=True)).render_as_string(hide_password=False)),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations over a connection (given by the caller, or made from the URL)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(normalize_url(_database_url(offline=False)), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
