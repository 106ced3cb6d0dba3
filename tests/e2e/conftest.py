"""Shared pieces of the Socket Mode end-to-end tests: the fake Slack, a handler factory, database helpers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from agent import EventProcessor
from database import DatabaseConnection
from slack.socket_handler import SocketModeIngestion, start_socket_mode
from tests.fakes.slack import FakeSlack

WAIT = 15.0


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    """A fake Slack: Web API and Socket Mode WebSocket on 127.0.0.1."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def start_handler(fake: FakeSlack, db: DatabaseConnection) -> Iterator[Callable[..., SocketModeIngestion]]:
    """Start Socket Mode ingestion against ``fake`` (keyword arguments override the defaults); stopped at the end."""
    started: list[SocketModeIngestion] = []

    def _start(**overrides: Any) -> SocketModeIngestion:
        h = start_socket_mode(
            **{
                "app_token": fake.app_token,
                "bot_token": fake.bot_token,
                "api_url": fake.api_url,
                "db": db,
                "queue_factory": lambda s: EventProcessor(s, worker_id="socket"),
                "ping_interval": 2.0,
                **overrides,
            }
        )
        started.append(h)
        assert fake.wait_for_connections(1, WAIT)
        return h

    yield _start
    for h in started:
        # Server-side close wakes the client's reader at once (its poll() ignores a local close).
        threading.Timer(0.2, fake.drop_connections).start()
        assert h.stop(timeout_seconds=WAIT)


def count(db: DatabaseConnection, sql: str, **params: Any) -> int:
    with db.session() as s:
        return int(s.execute(text(sql), params).scalar_one())


def set_connections(pg_server: Any, database_url: str, allowed: bool) -> None:
    """Refuse (and cut) or allow connections to the test's database: the database 'down' and back."""
    name = database_url.rsplit("/", 1)[-1].split("?")[0]
    conn = pg_server.admin()
    try:
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
            if not allowed:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
    finally:
        conn.close()


def refuse_message_inserts(db: DatabaseConnection, when: str = "true") -> None:
    """Make inserting a Slack message fail with 'refused' whenever the SQL condition ``when`` (on NEW) holds."""
    with db.session() as s:
        s.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF {when} THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
            )
        )
        s.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON slack_messages FOR EACH ROW EXECUTE FUNCTION refuse()"))
