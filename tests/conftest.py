"""Test fixtures shared by every tier: a real PostgreSQL, a migrated template, and network guards.

PostgreSQL: ``TEST_DATABASE_URL`` when set (a server we may create databases on), otherwise an
embedded server started once per test session in a temporary directory. Each test that asks for
``database_url`` gets a fresh database cloned from a template migrated with ``alembic upgrade head``,
so tests may commit across connections and processes without seeing each other.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import close_all_sessions

from database import DatabaseConnection, EmbeddedPostgres, normalize_url

ROOT = Path(__file__).resolve().parent.parent
_SCRUBBED_PREFIXES = ("SLACK_", "ANTHROPIC_", "OPENAI_", "GITHUB_", "LOGFIRE_")
_SCRUBBED = ("DATABASE_URL", "MCP_CONFIG", "PROMPTS_DIR", "ADMIN_TOKEN", "EMBEDDING_PROVIDER")

# ------------------------------------------------------------------ no test reaches the internet
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: object) -> bool:
    if isinstance(address, str | bytes):  # Unix sockets
        return True
    if isinstance(address, tuple) and address:
        host = str(address[0])
        return host in ("localhost", "::1") or host.startswith("127.") or host == "0.0.0.0"
    return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _allowed(address):
        raise ConnectionRefusedError(f"tests may not reach the network (tried {address!r})")
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _allowed(address):
        raise ConnectionRefusedError(f"tests may not reach the network (tried {address!r})")
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


def _forbid_real_anthropic() -> None:
    """Any Anthropic client a test builds must point at a local fake (tests/fakes/anthropic_server.py)."""
    import anthropic

    real_init = anthropic.Anthropic.__init__

    def guarded(self: anthropic.Anthropic, *args: object, base_url: object = None, **kwargs: object) -> None:
        if not str(base_url or "").startswith(("http://127.0.0.1", "http://localhost")):
            raise RuntimeError(f"tests may not call the real Anthropic API (base_url={base_url!r}); use the fake")
        real_init(self, *args, base_url=base_url, **kwargs)  # type: ignore[arg-type]

    anthropic.Anthropic.__init__ = guarded  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    _forbid_real_anthropic()
    # pytest keeps the last three numbered temp dirs per user and deletes older ones, so two
    # checkouts testing at once delete each other's embedded servers. One temp root per checkout.
    import hashlib

    temproot = Path("/tmp") / f"athenaeum-pytest-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]}"
    temproot.mkdir(exist_ok=True)
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(temproot))
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _scrub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test inherits real credentials or a real database from the developer's shell."""
    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES) or name in _SCRUBBED:
            monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------ PostgreSQL
class PgServer:
    """The admin URL of the test server and, for the embedded one, its data directory."""

    def __init__(self, url: str, embedded: EmbeddedPostgres | None) -> None:
        self.url = url
        self.embedded = embedded

    def url_for(self, database: str) -> str:
        return normalize_url(self.url).set(database=database).render_as_string(hide_password=False)

    def admin(self) -> psycopg2.extensions.connection:
        url = make_url(self.url)
        params = {k: v for k, v in url.translate_connect_args(username="user", database="dbname").items()}
        params.update(dict(url.query))
        conn = psycopg2.connect(**params)
        conn.autocommit = True
        return conn


_TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    if _TEST_DATABASE_URL:
        yield PgServer(_TEST_DATABASE_URL, None)
        return
    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), database="postgres")
    url = embedded.start()
    try:
        yield PgServer(url, embedded)
    finally:
        embedded.stop()


def migrate(url: str) -> None:
    """Run ``alembic upgrade head`` against ``url`` (as the CLI does)."""
    from alembic.config import Config as AlembicConfig

    from alembic import command

    cfg = AlembicConfig(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["skip_logging_config"] = True
    command.upgrade(cfg, "head")


@pytest.fixture(scope="session")
def template_db(pg_server: PgServer) -> Iterator[str]:
    name = f"athenaeum_tmpl_{uuid.uuid4().hex[:8]}"
    conn = pg_server.admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        migrate(pg_server.url_for(name))
        yield name
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def _fresh_database(pg_server: PgServer, template: str | None) -> Iterator[str]:
    name = f"athenaeum_test_{uuid.uuid4().hex[:12]}"
    conn = pg_server.admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        yield pg_server.url_for(name)
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


@pytest.fixture
def database_url(pg_server: PgServer, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test."""
    yield from _fresh_database(pg_server, template_db)


@pytest.fixture
def empty_database_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh database with no schema (for migration tests)."""
    yield from _fresh_database(pg_server, None)


@pytest.fixture
def db(database_url: str) -> Iterator[DatabaseConnection]:
    """A ``DatabaseConnection`` to this test's database."""
    conn = DatabaseConnection(database_url, pool_size=5, max_overflow=10)
    try:
        yield conn
    finally:
        try:
            close_all_sessions()  # sessions a test left open give their connections back first
        except Exception:
            pass  # one whose connection the test killed has nothing to give back
        conn.dispose()
