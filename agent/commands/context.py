"""AppContext: what every command needs, built once from the configuration and created lazily."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import cached_property
from typing import Any

from agent.config import Config
from agent.errors import ConfigError
from database import DatabaseConnection, init_db
from database.migrations import current_revisions, head_revisions

Handler = Callable[["AppContext", argparse.Namespace], int]


class AppContext:
    """The configuration plus lazily opened resources (the database starts only when asked for)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @cached_property
    def db(self) -> DatabaseConnection:
        """The database: ``DATABASE_URL``, or the embedded server under the data directory."""
        return init_db(
            database_url=self.config.database_url,
            data_dir=self.config.data_dir,
            pool_size=self.config.database_pool_size,
            max_overflow=self.config.database_max_overflow,
            ping_after=self.config.database_ping_after,
        )

    @property
    def database_url(self) -> str:
        """A URL psql, psycopg2 and SQLAlchemy all accept (password included: never log it)."""
        return self.db.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def require_current_schema(self) -> None:
        """Raise :class:`ConfigError` unless migrations are at head, saying how to get there."""
        current, heads = current_revisions(self.db.engine), head_revisions()
        if current != heads:
            raise ConfigError(
                f"database schema is at {sorted(current) or 'nothing'}, code expects {sorted(heads)}: "
                "run `python athenaeum.py db upgrade` (or `alembic upgrade head`)"
            )


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (datetimes as ISO-8601)."""
    json.dump(value, sys.stdout, indent=2, default=_json_default, sort_keys=True)
    sys.stdout.write("\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")
