"""Running and checking Alembic migrations from code (the CLI, the service start-up, tests)."""

from __future__ import annotations

import io
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from alembic import command

ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = ROOT / "alembic.ini"


def alembic_config(database_url: str | None = None) -> AlembicConfig:
    """An Alembic config for this checkout, pointed at ``database_url`` when given."""
    cfg = AlembicConfig(str(ALEMBIC_INI), stdout=io.StringIO())
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.attributes["skip_logging_config"] = True
    if database_url is not None:
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """``alembic upgrade head`` against ``database_url``."""
    command.upgrade(alembic_config(database_url), revision)


def head_revisions() -> set[str]:
    """The head revision(s) of the migration scripts in this checkout."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    """The revision(s) the database is at (empty for a database never migrated)."""
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def is_current(engine: Engine) -> bool:
    """Whether the database schema is at the head revision."""
    return current_revisions(engine) == head_revisions()
