"""History import, export import and the directory sync against the fake Slack and a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from database import DatabaseConnection, SlackImportProgress
from slack.client import SlackClient
from slack.errors import SlackServerError
from slack.history import import_channel, import_export, resolve_channel
from slack.sync import SYNC_LOCK_KEY, directory_is_empty, sync_directory
from tests.fakes.slack import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def client_for(fake: FakeSlack, waits: list[float] | None = None) -> SlackClient:
    return SlackClient(fake.bot_token, base_url=fake.api_url, sleep=(waits if waits is not None else []).append)


def count(db: DatabaseConnection, sql: str) -> int:
    with db.session() as s:
        return int(s.execute(text(sql)).scalar_one())


def seed(fake: FakeSlack, channel: str = "C1", n: int = 25, threads_every: int = 5) -> None:
    fake.add_channel(channel, "general")
    for i in range(n):
        ts = f"1700001000.{i:06d}"
        fake.add_message(channel, f"message {i}", user="U1", ts=ts)
        if i % threads_every == 0:
            for j in range(3):
                fake.add_message(channel, f"reply {i}.{j}", user="U2", ts=f"1700002000.{i * 10 + j:06d}", thread_ts=ts)


def test_import_paginates_history_and_threads(fake: FakeSlack, db: DatabaseConnection) -> None:
    seed(fake)
    seen: list[int] = []
    result = import_channel(db, client_for(fake), "C1", page_size=4, progress=seen.append)
    assert result.messages == 25 + 5 * 3 == sum(seen)
    assert count(db, "SELECT count(*) FROM slack_messages") == 40
    assert len(fake.calls_to("conversations.history")) == 7  # ceil(25 / 4)
    assert {c.params["limit"] for c in fake.calls_to("conversations.history")} == {"4"}
    assert count(db, "SELECT reply_count FROM slack_messages WHERE ts = '1700001000.000000'") == 3
    assert (
        count(db, "SELECT count(*) FROM slack_messages WHERE thread_ts = '1700001000.000005' AND ts <> thread_ts") == 3
    )
    with db.session() as s:
        row = s.get(SlackImportProgress, "C1")
        assert row is not None and row.status == "done" and row.messages_imported == 40


def test_reimport_is_idempotent_and_writes_nothing(fake: FakeSlack, db: DatabaseConnection) -> None:
    seed(fake)
    import_channel(db, client_for(fake), "C1", page_size=10)
    with db.session() as s:
        before = s.execute(text("SELECT max(updated_at), count(*) FROM slack_messages")).one()
    again = import_channel(db, client_for(fake), "C1", page_size=10)
    with db.session() as s:
        after = s.execute(text("SELECT max(updated_at), count(*) FROM slack_messages")).one()
    assert again.messages == 40 and not again.resumed
    assert before == after  # same rows, none rewritten


def test_an_interrupted_import_resumes_after_the_last_committed_page(fake: FakeSlack, db: DatabaseConnection) -> None:
    seed(fake, n=30, threads_every=100)
    fake.delay("conversations.history", 0, times=2)  # two pages go through, then Slack fails
    fake.fail("conversations.history", 500, times=4)  # beyond the client's 3 read retries
    with pytest.raises(SlackServerError):
        import_channel(db, client_for(fake), "C1", page_size=10)
    assert count(db, "SELECT count(*) FROM slack_messages") == 20
    with db.session() as s:
        progress = s.get(SlackImportProgress, "C1")
        assert progress is not None and progress.status == "running"
        assert progress.resume_before == "1700001000.000010"
    calls_before = len(fake.calls_to("conversations.history"))
    resumed = import_channel(db, client_for(fake), "C1", page_size=10)
    assert resumed.resumed and resumed.messages == 10 + 3  # message 0 starts a thread of 3
    assert fake.calls_to("conversations.history")[calls_before].params["latest"] == "1700001000.000010"
    assert count(db, "SELECT count(*) FROM slack_messages") == 33


def test_import_waits_out_429_with_retry_after(fake: FakeSlack, db: DatabaseConnection) -> None:
    """Fault suite row 20 on the read side: wait Retry-After, then carry on; nothing lost or doubled."""
    seed(fake, n=12, threads_every=100)
    fake.fail("conversations.history", 429, retry_after=30, times=2)
    waits: list[float] = []
    result = import_channel(db, client_for(fake, waits), "C1", page_size=5)
    assert waits == [30.0, 30.0]
    assert result.messages == 12 + 3 and count(db, "SELECT count(*) FROM slack_messages") == 15


def test_since_and_until_bound_the_import(fake: FakeSlack, db: DatabaseConnection) -> None:
    seed(fake, n=10, threads_every=100)
    result = import_channel(db, client_for(fake), "C1", oldest="1700001000.000002", latest="1700001000.000007")
    assert result.messages == 4  # 3, 4, 5, 6 (both bounds exclusive; thread 0 is outside)


def test_sync_upserts_users_and_channels_with_pagination(fake: FakeSlack, db: DatabaseConnection) -> None:
    for i in range(7):
        fake.add_user(f"U{i}", f"user{i}")
        fake.add_channel(f"C{i}", f"chan{i}", is_private=i % 2 == 1)
    assert directory_is_empty(db)
    result = sync_directory(db, client_for(fake), page_size=3)
    assert result is not None and (result.users, result.channels, result.private_included) == (7, 7, True)
    assert len(fake.calls_to("users.list")) == 3 and len(fake.calls_to("conversations.list")) == 3
    fake.add_channel("C0", "renamed")
    sync_directory(db, client_for(fake))
    assert count(db, "SELECT count(*) FROM slack_channels WHERE name = 'renamed'") == 1
    assert count(db, "SELECT count(*) FROM slack_channels WHERE is_private") == 3
    assert not directory_is_empty(db)
    assert resolve_channel(db, None, "#renamed") == "C0"


def test_sync_falls_back_to_public_channels_without_the_scope(fake: FakeSlack, db: DatabaseConnection) -> None:
    fake.add_user("U1", "ada")
    fake.add_channel("C1", "pub")
    fake.error("conversations.list", "missing_scope")
    result = sync_directory(db, client_for(fake))
    assert result is not None and not result.private_included and result.channels == 1


def test_only_one_sync_runs_at_a_time(fake: FakeSlack, db: DatabaseConnection) -> None:
    with db.engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SYNC_LOCK_KEY})
        assert sync_directory(db, client_for(fake)) is None
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SYNC_LOCK_KEY})
    assert fake.calls_to("users.list") == []


def write_export(root: Path) -> None:
    (root / "general").mkdir(parents=True)
    (root / "channels.json").write_text(
        json.dumps(
            [{"id": "C1", "name": "general", "created": 1600000000, "topic": {"value": "t"}, "purpose": {"value": "p"}}]
        )
    )
    (root / "users.json").write_text(json.dumps([{"id": "U1", "name": "ada", "profile": {"real_name": "Ada"}}]))
    (root / "general" / "2023-11-14.json").write_text(
        json.dumps(
            [
                {"type": "message", "user": "U1", "text": "first", "ts": "1700000000.000001"},
                {
                    "type": "message",
                    "user": "U1",
                    "text": "joined",
                    "ts": "1700000000.000002",
                    "subtype": "channel_join",
                },
                {
                    "type": "message",
                    "user": "U1",
                    "text": "root",
                    "ts": "1700000001.000001",
                    "thread_ts": "1700000001.000001",
                    "reply_count": 1,
                },
            ]
        )
    )
    (root / "general" / "2023-11-15.json").write_text(
        json.dumps(
            [
                {
                    "type": "message",
                    "user": "U2",
                    "text": "reply",
                    "ts": "1700090000.000001",
                    "thread_ts": "1700000001.000001",
                },
            ]
        )
    )


def test_export_directory_import_is_idempotent_and_resumable(tmp_path: Path, db: DatabaseConnection) -> None:
    write_export(tmp_path)
    assert import_export(db, tmp_path) == {"C1": 3}
    with db.session() as s:
        before = s.execute(text("SELECT max(updated_at), count(*) FROM slack_messages")).one()
    assert import_export(db, tmp_path) == {"C1": 3}  # a finished import re-reads everything, writes nothing
    with db.session() as s:
        assert s.execute(text("SELECT max(updated_at), count(*) FROM slack_messages")).one() == before
        # An import interrupted after the first day resumes with the second.
        s.execute(text("UPDATE slack_import_progress SET status = 'running', resume_before = '2023-11-14.json'"))
    assert import_export(db, tmp_path) == {"C1": 1}
    assert count(db, "SELECT count(*) FROM slack_messages") == 3
    assert count(db, "SELECT count(*) FROM slack_users") == 1
    assert count(db, "SELECT count(*) FROM slack_channels WHERE topic = 't'") == 1
    assert count(db, "SELECT count(*) FROM slack_messages WHERE thread_ts = '1700000001.000001'") == 2
