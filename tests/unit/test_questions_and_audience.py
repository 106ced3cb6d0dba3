"""Question parsing, trigger rules and the audience filter (pure functions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from agent.audience import Audience, filter_tool_result
from agent.questions import BadQuestionError, ignore_reason, parse_question, without_mention
from agent.snapshot import EventSnapshot, freeze

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def event(payload: object, event_type: str = "slack.question", key: str | None = "T1:C1:1.0") -> EventSnapshot:
    return EventSnapshot(
        id=7,
        event_type=event_type,
        payload=freeze(payload),
        status="processing",
        retry_count=0,
        attempts=1,
        created_at=NOW,
        run_after=NOW,
        dedupe_key=key,
    )


SLACK = {
    "team_id": "T1",
    "channel_id": "C1",
    "ts": "1.0",
    "thread_ts": None,
    "user_id": "U1",
    "text": "hi",
    "channel_type": "channel",
    "reply_thread_ts": "1.0",
}


def test_a_slack_question_parses_into_a_frozen_question() -> None:
    q = parse_question(event(SLACK))
    assert (q.source, q.request_key, q.channel_id, q.reply_thread_ts, q.audience.is_public) == (
        "slack",
        "T1:C1:1.0",
        "C1",
        "1.0",
        True,
    )
    with pytest.raises(AttributeError):
        q.text = "changed"  # type: ignore[misc]


def test_the_request_key_falls_back_to_the_event_id() -> None:
    assert parse_question(event(SLACK, key=None)).request_key == "event:7"


@pytest.mark.parametrize(
    "payload",
    [{}, {**SLACK, "text": 5}, {**SLACK, "ts": None}, {**SLACK, "text": "a\x00b"}, {**SLACK, "text": "x" * 50_000}],
)
def test_malformed_payloads_are_permanent_errors(payload: dict[str, object]) -> None:
    with pytest.raises(BadQuestionError):
        parse_question(event(payload))


def test_unknown_event_types_are_refused() -> None:
    with pytest.raises(BadQuestionError):
        parse_question(event(SLACK, event_type="slack.reaction_added"))


@pytest.mark.parametrize(
    ("change", "allowed", "reason"),
    [
        ({}, (), None),
        ({"bot_id": "B1"}, (), "sent by a bot"),
        ({"subtype": "bot_message"}, (), "sent by a bot"),
        ({"user_id": "UBOT"}, (), "our own message"),
        ({"channel_id": "C2"}, ("C1",), "channel not in ALLOWED_CHANNELS"),
        ({"channel_id": "D9", "channel_type": "im"}, ("C1",), None),  # DMs with the assistant are always allowed
        ({"user_team": "T2"}, (), "external (Slack Connect) user"),
    ],
)
def test_trigger_rules(change: dict[str, str], allowed: tuple[str, ...], reason: str | None) -> None:
    q = parse_question(event({**SLACK, **change}))
    assert ignore_reason(q, bot_user_id="UBOT", allowed_channels=allowed) == reason


def test_the_addressing_mention_is_removed() -> None:
    assert without_mention("<@UBOT> how do leases work? cc <@U2>", "UBOT") == "how do leases work? cc <@U2>"
    assert without_mention("<@UBOT|athenaeum>", "UBOT") == "<@UBOT|athenaeum>"  # nothing left: keep the text


def test_audience_filter_keeps_public_and_same_channel_content_only() -> None:
    hits = {
        "hits": [
            {"channel_id": "CPUB", "channel_type": "channel", "text": "public"},
            {"channel_id": "CPRIV", "channel_type": "group", "text": "private"},
            {"channel_id": "D1", "channel_type": "im", "text": "dm"},
            {"channel": {"id": "CP2", "is_private": True}, "text": "nested private"},
            {"channel_id": "CHERE", "channel_type": "group", "text": "this very channel"},
        ]
    }
    out = filter_tool_result(json.dumps(hits), Audience("CHERE", "group"))
    kept = [h["text"] for h in json.loads(out.split("\n")[0])["hits"]]
    assert kept == ["public", "this very channel"] and "3 result(s)" in out
    assert filter_tool_result(json.dumps(hits), Audience("local", "local")) == json.dumps(hits)
    assert filter_tool_result("plain text", Audience("C", "channel")) == "plain text"
