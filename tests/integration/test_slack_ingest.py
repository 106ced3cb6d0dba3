"""Live ingestion into a real PostgreSQL: one transaction per event, dedupe keys, store effects, questions."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text

from agent import EventProcessor
from database import DatabaseConnection, SlackChannel, SlackMessage, SlackReaction, SlackUser
from slack.client import BotIdentity
from slack.events import MalformedEventError
from slack.ingest import QUESTION_EVENT_TYPE, Ingester
from tests.fakes import slack_events as ev
from tests.fakes.slack import FakeSlack

BOT = BotIdentity(team_id="T0FAKE", user_id="UBOT", bot_id="BBOT")
fake = FakeSlack()  # used only to build payloads (never started)


def ingester(db: DatabaseConnection, allowed: tuple[str, ...] = ()) -> Ingester:
    return Ingester(db, lambda s: EventProcessor(s, worker_id="test-ingest"), BOT, allowed)


def events(db: DatabaseConnection, event_type: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT event_type, dedupe_key, status, payload, error_message FROM events"
    with db.session() as s:
        rows = [dict(r) for r in s.execute(text(sql + " ORDER BY id")).mappings()]
    return [r for r in rows if event_type is None or r["event_type"] == event_type]


def message_row(db: DatabaseConnection, channel: str, ts: str) -> SlackMessage | None:
    with db.session() as s:
        return s.execute(select(SlackMessage).filter_by(channel_id=channel, ts=ts)).scalar_one_or_none()


def test_a_message_is_recorded_and_stored_in_one_go(db: DatabaseConnection) -> None:
    payload = fake.event_callback(ev.message("C1", "1700000000.000100", "hello world"), event_id="Ev1")
    result = ingester(db).ingest(payload)
    assert result.event_key == "T0FAKE:Ev1" and not result.duplicate and result.question_key is None
    [row] = events(db)
    assert (row["event_type"], row["dedupe_key"], row["status"]) == ("slack.message", "T0FAKE:Ev1", "pending")
    assert "token" not in row["payload"]
    stored = message_row(db, "C1", "1700000000.000100")
    assert stored is not None and stored.text == "hello world" and stored.user_id == "U1"
    assert stored.created_at.timestamp() == pytest.approx(1700000000.0001)
    with db.session() as s:
        hits = s.execute(text("SELECT count(*) FROM slack_messages WHERE search @@ to_tsquery('english', 'worlds')"))
        assert hits.scalar_one() == 1


def test_the_same_event_three_times_is_one_row(db: DatabaseConnection) -> None:
    """Fault suite row 1 (the ingestion half): redeliveries are recognised by team_id:event_id."""
    ing = ingester(db)
    payload = fake.event_callback(ev.app_mention("C1", "1700000000.000200", "<@UBOT> hi"), event_id="EvX")
    results = [ing.ingest(payload) for _ in range(3)]
    assert [r.duplicate for r in results] == [False, True, True]
    assert len(events(db, "slack.app_mention")) == 1
    assert len(events(db, QUESTION_EVENT_TYPE)) == 1


def test_message_and_app_mention_twins_are_one_question(db: DatabaseConnection) -> None:
    """Fault suite row 2: same user post as message + app_mention (different event ids) -> one question."""
    ing = ingester(db)
    ts = "1700000000.000300"
    a = ing.ingest(fake.event_callback(ev.message("C1", ts, "<@UBOT> what is X?"), event_id="EvA"))
    b = ing.ingest(fake.event_callback(ev.app_mention("C1", ts, "<@UBOT> what is X?"), event_id="EvB"))
    assert a.question_key == b.question_key == f"T0FAKE:C1:{ts}"
    [question] = events(db, QUESTION_EVENT_TYPE)
    assert question["dedupe_key"] == f"T0FAKE:C1:{ts}"
    assert question["payload"] == {
        "team_id": "T0FAKE",
        "channel_id": "C1",
        "ts": ts,
        "thread_ts": None,
        "reply_thread_ts": ts,
        "user_id": "U1",
        "text": "<@UBOT> what is X?",
        "channel_type": "channel",
        "reason": "mention",
        "source_event_id": "EvA",
        "source_event_type": "message",
    }
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM slack_messages")).scalar_one() == 1


def test_dms_and_threads_the_bot_is_in_are_questions_others_are_not(db: DatabaseConnection) -> None:
    ing = ingester(db)
    dm = ing.ingest(fake.event_callback(ev.message("D1", "1700000001.000001", "help", channel_type="im")))
    assert dm.question_key is not None
    root = "1700000002.000001"
    ing.ingest(fake.event_callback(ev.message("C1", root, "a plain post")))
    plain_reply = ing.ingest(fake.event_callback(ev.message("C1", "1700000002.000002", "me too", thread_ts=root)))
    assert plain_reply.question_key is None
    ing.ingest(
        fake.event_callback(
            ev.message("C1", "1700000002.000003", "bot answer", user="UBOT", thread_ts=root, bot_id="BBOT")
        )
    )
    follow_up = ing.ingest(fake.event_callback(ev.message("C1", "1700000002.000004", "and then?", thread_ts=root)))
    assert follow_up.question_key == "T0FAKE:C1:1700000002.000004"
    payload = events(db, QUESTION_EVENT_TYPE)[-1]["payload"]
    assert payload["reason"] == "thread" and payload["reply_thread_ts"] == root
    stored_root = message_row(db, "C1", root)
    assert stored_root is not None and stored_root.reply_count == 3
    assert stored_root.latest_reply == "1700000002.000004"


def test_bots_our_own_messages_and_other_channels_never_ask(db: DatabaseConnection) -> None:
    """Fault suite row 27 (ingestion half): stored, but no question."""
    ing = ingester(db, allowed=("CALLOWED",))
    cases = [
        ev.bot_message("CALLOWED", "1700000003.000001", "<@UBOT> loop?"),
        ev.message("CALLOWED", "1700000003.000002", "<@UBOT> me", user="UBOT"),
        ev.message("COTHER", "1700000003.000003", "<@UBOT> not allowed here"),
        ev.message("CALLOWED", "1700000003.000004", "<@UBOT> bot user", bot_id="B9"),
    ]
    for event in cases:
        assert ing.ingest(fake.event_callback(event)).question_key is None
    assert events(db, QUESTION_EVENT_TYPE) == []
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM slack_messages")).scalar_one() == 4
    ok = ing.ingest(fake.event_callback(ev.message("CALLOWED", "1700000003.000005", "<@UBOT> fine")))
    assert ok.question_key is not None


def test_edits_deletes_and_reactions(db: DatabaseConnection) -> None:
    ing = ingester(db)
    ts = "1700000004.000001"
    ing.ingest(fake.event_callback(ev.message("C1", ts, "first")))
    ing.ingest(fake.event_callback(ev.message_changed("C1", ts, "second", "1700000005.000000")))
    ing.ingest(fake.event_callback(ev.message_changed("C1", ts, "older edit", "1700000004.500000")))
    row = message_row(db, "C1", ts)
    assert row is not None and row.text == "second" and row.edited_at is not None
    assert row.edited_at.timestamp() == pytest.approx(1700000005.0)
    ing.ingest(fake.event_callback(ev.reaction(True, "C1", ts, "eyes", "U2")))
    ing.ingest(fake.event_callback(ev.reaction(True, "C1", ts, "eyes", "U3")))
    ing.ingest(fake.event_callback(ev.reaction(False, "C1", ts, "eyes", "U2")))
    with db.session() as s:
        assert [r.user_id for r in s.execute(select(SlackReaction)).scalars()] == ["U3"]
    ing.ingest(fake.event_callback(ev.message_deleted("C1", ts, "1700000006.000000")))
    row = message_row(db, "C1", ts)
    assert row is not None and row.is_deleted and row.text == "" and row.deleted_at is not None
    # A late redelivered post (new event id) must not resurrect it.
    ing.ingest(fake.event_callback(ev.message("C1", ts, "first")))
    row = message_row(db, "C1", ts)
    assert row is not None and row.is_deleted and row.text == ""


def test_channel_and_user_events_keep_the_directory_current(db: DatabaseConnection) -> None:
    ing = ingester(db)
    cb = fake.event_callback
    ing.ingest(cb({"type": "channel_created", "channel": {"id": "C9", "name": "new", "created": 1700000000}}))
    ing.ingest(cb({"type": "channel_rename", "channel": {"id": "C9", "name": "renamed", "created": 1700000000}}))
    ing.ingest(cb({"type": "member_joined_channel", "channel": "C9", "user": "U1"}))
    ing.ingest(cb({"type": "channel_archive", "channel": "C9", "user": "U1"}))
    with db.session() as s:
        chan = s.get(SlackChannel, "C9")
        assert chan is not None and (chan.name, chan.is_archived, chan.member_count) == ("renamed", True, 1)
    ing.ingest(cb({"type": "channel_unarchive", "channel": "C9", "user": "U1"}))
    ing.ingest(cb({"type": "channel_deleted", "channel": "C9"}))
    user = {
        "id": "U5",
        "team_id": "T0FAKE",
        "name": "grace",
        "tz": "UTC",
        "profile": {"real_name": "Grace H", "display_name": "grace", "title": "Admiral"},
    }
    ing.ingest(cb({"type": "team_join", "user": user}))
    ing.ingest(cb({"type": "user_change", "user": {**user, "deleted": True}}))
    ing.ingest(cb({"type": "pin_added", "channel_id": "C9"}))
    with db.session() as s:
        chan = s.get(SlackChannel, "C9")
        assert chan is not None and chan.is_deleted
        u = s.get(SlackUser, "U5")
        assert u is not None and (u.real_name, u.title, u.deleted) == ("Grace H", "Admiral", True)
    assert len(events(db, "slack.pin_added")) == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"type": "event_callback", "team_id": "T0FAKE", "event": {"type": "message"}}, "no event_id"),
        (
            {
                "type": "event_callback",
                "team_id": "T0FAKE",
                "event_id": "EvM",
                "event": {"type": "message", "channel": "C1", "ts": "not-a-ts"},
            },
            "no valid ts",
        ),
        ({"type": "url_verification"}, "not 'event_callback'"),
    ],
)
def test_malformed_payloads_are_recorded_as_failed_with_a_reason(
    db: DatabaseConnection, payload: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MalformedEventError):
        ingester(db).ingest(payload)
    [row] = events(db)
    assert row["status"] == "failed" and reason in row["error_message"]
    assert row["event_type"] == "slack.malformed"


def test_nul_characters_and_huge_text_are_stored_safely(db: DatabaseConnection) -> None:
    ts = "1700000007.000001"
    ingester(db).ingest(fake.event_callback(ev.message("C1", ts, "bad\x00byte " + "x" * 100_000)))
    row = message_row(db, "C1", ts)
    assert row is not None and "\x00" not in row.text and len(row.text) > 100_000
