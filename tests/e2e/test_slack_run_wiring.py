"""`run` starts Slack ingestion from the configuration, or says what is missing."""

from __future__ import annotations

import pytest

from agent.commands.context import AppContext
from agent.commands.run import start_slack
from agent.config import Config
from agent.errors import ConfigError
from database import DatabaseConnection
from tests.fakes import slack_events as ev
from tests.fakes.slack import FakeSlack


def context(db: DatabaseConnection, **env: str) -> AppContext:
    ctx = AppContext(Config(environ=env, env_file=None))
    ctx.__dict__["db"] = db  # the cached property, pointed at this test's database
    return ctx


def test_without_tokens_slack_is_off(db: DatabaseConnection) -> None:
    assert start_slack(context(db, SLACK_BOT_TOKEN="xoxb-x")) is None
    assert context(db, SLACK_BOT_TOKEN="xoxb-x").config.missing_for_slack() == ["SLACK_APP_TOKEN"]


def test_http_mode_names_the_missing_variables(db: DatabaseConnection) -> None:
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"):
        start_slack(context(db), http_port=0)


def test_with_tokens_socket_mode_ingests_and_the_directory_syncs(db: DatabaseConnection) -> None:
    with FakeSlack() as fake:
        fake.add_user("U1", "ada")
        fake.add_channel("C1", "general")
        ctx = context(db, SLACK_BOT_TOKEN=fake.bot_token, SLACK_APP_TOKEN=fake.app_token, SLACK_API_URL=fake.api_url)
        stop = start_slack(ctx)
        assert stop is not None
        try:
            envelope = fake.send_envelope(fake.event_callback(ev.message("C1", "1700000400.000001", "hi")))
            assert fake.wait_for_acks([envelope], 15)
            assert fake.wait_for(lambda: len(fake.calls_to("conversations.list")) >= 1, 15)  # empty tables: sync
        finally:
            fake.drop_connections()
            stop()
