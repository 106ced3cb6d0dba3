"""`slack sync`, `slack import` (API and export) and `status` through the real CLI, against the fake Slack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

import athenaeum
from database import DatabaseConnection
from tests.fakes.slack import FakeSlack
from tests.integration.test_slack_history import write_export


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def cli(database_url: str, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    monkeypatch.setenv("SLACK_BOT_TOKEN", fake.bot_token)
    monkeypatch.setenv("SLACK_API_URL", fake.api_url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = athenaeum.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def count(db: DatabaseConnection, sql: str) -> int:
    with db.session() as s:
        return int(s.execute(text(sql)).scalar_one())


def test_sync_then_import_a_channel_by_name(cli, fake: FakeSlack, db: DatabaseConnection) -> None:
    fake.add_user("U1", "ada")
    fake.add_channel("C1", "general")
    fake.add_channel("C2", "random", is_private=True)
    for i in range(5):
        fake.add_message("C1", f"m{i}", ts=f"1700003000.{i:06d}")
    code, out, _ = cli("slack", "sync")
    assert code == 0 and "synced 1 user(s) and 2 public and private channel(s)" in out
    code, out, _ = cli("slack", "import", "--channel", "#general", "--since", "2020-01-01")
    assert code == 0 and "imported 5 message(s) from 1 channel(s)" in out
    assert fake.calls_to("conversations.history")[0].params["oldest"] == "1577836800.000000"
    assert fake.calls_to("conversations.history")[0].params["limit"] == "999"  # Slack's maximum is the default
    assert count(db, "SELECT count(*) FROM slack_messages") == 5
    code, out, _ = cli("status", "--json")
    assert json.loads(out)["message_storage"] == "postgresql"


def test_import_every_channel_and_an_export(cli, fake: FakeSlack, db: DatabaseConnection, tmp_path: Path) -> None:
    fake.add_user("U1", "ada")
    fake.add_channel("C7", "seven")
    fake.add_message("C7", "hello", ts="1700004000.000001")
    code, out, _ = cli("slack", "import")  # syncs first: the directory is empty
    assert code == 0 and "imported 1 message(s) from 1 channel(s)" in out
    write_export(tmp_path)
    code, out, _ = cli("slack", "import", "--export", str(tmp_path))
    assert code == 0 and "imported 3 message(s) from 1 channel(s)" in out
    assert count(db, "SELECT count(*) FROM slack_messages") == 4


def test_import_without_a_token_says_what_to_set(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    code, _, err = cli("slack", "sync")
    assert code == 2 and "SLACK_BOT_TOKEN is not set" in err


def test_a_page_size_beyond_slacks_maximum_is_refused(cli) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli("slack", "import", "--page-size", "1000")
    assert exit_info.value.code == 2
