"""Log lines are structured (one JSON object per line), carry per-event context, and hold no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from agent.config import Config
from agent.logging import configure_logging, event_log_context
from agent.redaction import register_secret
from agent.snapshot import EventSnapshot, freeze

CANARIES = {
    "slack_bot": "xoxb-1111111111-2222222222-CANARYbotTOKENvalue",
    "slack_app": "xapp-1-A0CANARY-3333-CANARYappTOKENvalue",
    "anthropic": "sk-ant-api03-CANARYanthropicKEYvalue-0000",
    "github": "ghp_CANARYgithubTOKENvalue0123456789ab",
    "db_password": "CanaryDbPassw0rd!",
}
# A configured secret with no recognisable shape is caught only because Config registers it.
REGISTERED_ONLY = "plain-shaped-CANARY-admin-token"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("DEBUG", "json", stream=stream)
    try:
        yield stream
    finally:
        structlog.contextvars.clear_contextvars()
        root.handlers, _ = saved[0], root.setLevel(saved[1])
        structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _snapshot(payload: dict) -> EventSnapshot:
    now = datetime.now(UTC)
    return EventSnapshot(
        id=42,
        event_type="slack.app_mention",
        payload=freeze(payload),
        status="processing",
        retry_count=1,
        attempts=2,
        created_at=now,
        run_after=now,
    )


def test_every_line_is_one_json_object_with_level_logger_and_timestamp(json_log: io.StringIO) -> None:
    structlog.get_logger("athenaeum.test").info("hello", answer=42)
    logging.getLogger("some.library").warning("stdlib %s", "too")
    lines = _lines(json_log)
    assert [line["event"] for line in lines] == ["hello", "stdlib too"]
    assert lines[0]["answer"] == 42 and lines[0]["level"] == "info" and lines[0]["logger"] == "athenaeum.test"
    assert lines[1]["level"] == "warning" and lines[1]["logger"] == "some.library"
    assert all(datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")) for line in lines)


def test_context_bound_per_event_appears_on_every_line_and_is_cleared(json_log: io.StringIO) -> None:
    event = _snapshot({"event": {"type": "app_mention", "channel": "C0123ABC", "text": "hi"}})
    structlog.contextvars.bind_contextvars(**event_log_context(event, worker="host:1:pool-1"))
    log = structlog.get_logger("athenaeum.agent")
    log.info("first")
    logging.getLogger("athenaeum.other").info("second, from the standard library")
    structlog.contextvars.clear_contextvars()
    log.info("after")
    first, second, after = _lines(json_log)
    for line in (first, second):
        assert line["event_id"] == 42 and line["event_type"] == "slack.app_mention"
        assert line["attempt"] == 2 and line["channel"] == "C0123ABC" and line["worker"] == "host:1:pool-1"
    assert "event_id" not in after and "channel" not in after


@pytest.mark.parametrize(
    ("payload", "channel"),
    [
        ({"channel": "C1"}, "C1"),
        ({"channel_id": "C2"}, "C2"),
        ({"event": {"channel": "C3"}}, "C3"),
        ({"event": {"item": {"channel": "C4"}}}, "C4"),
        ({"channel": {"id": "C5", "name": "general"}}, "C5"),
        ({"text": "no channel here"}, None),
    ],
)
def test_the_channel_is_found_in_the_payload_shapes_we_receive(payload: dict, channel: str | None) -> None:
    assert event_log_context(_snapshot(payload)).get("channel") == channel


def test_canary_secrets_never_reach_a_log_line(json_log: io.StringIO) -> None:
    register_secret(REGISTERED_ONLY)
    # Config registers the configured secrets (here: the database password inside DATABASE_URL).
    Config(environ={"DATABASE_URL": f"postgresql://athenaeum:{CANARIES['db_password']}@db/athenaeum"}, env_file=None)
    log = structlog.get_logger("athenaeum.test")
    everything = " ".join([*CANARIES.values(), REGISTERED_ONLY])
    log.info(f"message with {CANARIES['slack_bot']}", token=CANARIES["slack_app"])
    log.warning(
        "nested",
        headers={"Authorization": f"Bearer {CANARIES['anthropic']}"},
        items=[CANARIES["github"], {"deep": [REGISTERED_ONLY]}],
    )
    log.info("url", database=f"postgresql://athenaeum:{CANARIES['db_password']}@db:5432/athenaeum")
    log.info("object", value=RuntimeError(everything))
    try:
        raise ValueError(f"failed with {everything}")
    except ValueError:
        log.exception("exception with traceback")
    logging.getLogger("urllib3").error("stdlib %s", everything)
    text = json_log.getvalue()
    # Only this test's lines: threads left by earlier tests (pools, listeners) may log meanwhile.
    ours = [line for line in _lines(json_log) if line.get("logger") in ("athenaeum.test", "urllib3")]
    assert len(ours) == 6
    for canary in [*CANARIES.values(), REGISTERED_ONLY]:
        assert canary not in text, canary
    assert "***" in text and "Traceback" in text  # redacted, not dropped


def test_console_format_is_readable_and_redacted() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        configure_logging("INFO", "console", stream=stream)
        structlog.get_logger("athenaeum.test").info("console line", token=CANARIES["slack_bot"])
        structlog.get_logger("athenaeum.test").debug("below the level")
    finally:
        root.handlers = saved
        structlog.reset_defaults()
    out = stream.getvalue()
    assert "console line" in out and "token=" in out and CANARIES["slack_bot"] not in out
    assert "below the level" not in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])
