"""The Slack seam against the fake Slack: retries per call type, 429 with Retry-After, errors -> our types."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from slack.client import SlackClient
from slack.errors import (
    SlackApiCallError,
    SlackAuthError,
    SlackConnectionError,
    SlackRateLimitedError,
    SlackServerError,
)
from tests.fakes.slack import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


class Recorder:
    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def client_for(fake: FakeSlack, rec: Recorder, **kw: object) -> SlackClient:
    return SlackClient(fake.bot_token, base_url=fake.api_url, sleep=rec.sleep, clock=rec.clock, **kw)  # type: ignore[arg-type]


def test_auth_test_reports_the_bot_identity(fake: FakeSlack) -> None:
    ident = client_for(fake, Recorder()).auth_test()
    assert (ident.team_id, ident.user_id, ident.bot_id) == (fake.team_id, fake.bot_user_id, fake.bot_id)
    assert fake.calls_to("auth.test")[0].token == fake.bot_token


def test_a_read_waits_retry_after_on_429_then_succeeds(fake: FakeSlack) -> None:
    rec = Recorder()
    fake.add_channel("C1", "general")
    fake.fail("conversations.history", 429, retry_after=7, times=2)
    pages = list(client_for(fake, rec).paginate("conversations.history", "messages", channel="C1"))
    assert pages == [([], None)]
    assert rec.waits == [7.0, 7.0]
    assert len(fake.calls_to("conversations.history")) == 3


def test_a_post_waits_retry_after_on_429_and_posts_once(fake: FakeSlack) -> None:
    rec = Recorder()
    fake.fail("chat.postMessage", 429, retry_after=3)
    client = client_for(fake, rec)
    reply = client.post_message("C1", "hello", thread_ts=None)
    assert 3.0 in rec.waits
    assert [m["ts"] for m in fake.bot_messages("C1")] == [reply["ts"]]
    assert len(fake.calls_to("chat.postMessage")) == 2


def test_posts_to_one_channel_are_paced_about_a_second_apart(fake: FakeSlack) -> None:
    rec = Recorder()
    client = client_for(fake, rec, post_interval_seconds=1.0)
    for i in range(3):
        client.post_message("C1", f"m{i}")
    client.post_message("C2", "other channel is not delayed by C1")
    assert rec.waits == [1.0, 1.0]
    assert len(fake.bot_messages("C1")) == 3


def test_a_429_asking_for_too_long_a_wait_is_raised_with_retry_after(fake: FakeSlack) -> None:
    fake.fail("conversations.list", 429, retry_after=600)
    with pytest.raises(SlackRateLimitedError) as info:
        client_for(fake, Recorder(), max_retry_after_seconds=60).read("conversations.list")
    assert info.value.retry_after == 600
    assert info.value.code == "ratelimited"


def test_reads_retry_server_errors_but_writes_do_not(fake: FakeSlack) -> None:
    rec = Recorder()
    client = client_for(fake, rec)
    fake.fail("users.list", 503, times=2)
    assert client.read("users.list")["ok"] is True
    assert len(fake.calls_to("users.list")) == 3
    fake.fail("chat.postMessage", 500)
    with pytest.raises(SlackServerError):
        client.post_message("C1", "x")
    assert len(fake.calls_to("chat.postMessage")) == 1


def test_reads_retry_a_reset_connection(fake: FakeSlack) -> None:
    fake.add_user("U1", "ada")
    fake.reset_after_store("users.info")
    assert client_for(fake, Recorder()).user_info("U1")["name"] == "ada"
    assert len(fake.calls_to("users.info")) == 2


def test_a_post_reset_after_slack_stored_it_is_not_retried(fake: FakeSlack) -> None:
    """Fault suite row 19: the client must not post twice; the caller learns the outcome is unknown."""
    fake.reset_after_store("chat.postMessage")
    with pytest.raises(SlackConnectionError) as info:
        client_for(fake, Recorder()).post_message("C1", "answer")
    assert info.value.code == "connection_error"
    assert len(fake.calls_to("chat.postMessage")) == 1
    assert len(fake.bot_messages("C1")) == 1


def test_an_update_reset_is_not_retried_either(fake: FakeSlack) -> None:
    client = client_for(fake, Recorder())
    ts = client.post_message("C1", "draft")["ts"]
    fake.reset_after_store("chat.update")
    with pytest.raises(SlackConnectionError):
        client.update_message("C1", ts, "final")
    assert len(fake.calls_to("chat.update")) == 1
    assert fake.bot_messages("C1")[0]["text"] == "final"


def test_slack_errors_become_our_types_with_the_code(fake: FakeSlack) -> None:
    client = client_for(fake, Recorder())
    with pytest.raises(SlackApiCallError) as info:
        client.conversation_info("CNOPE")
    assert info.value.code == "channel_not_found"
    assert info.value.method == "conversations.info"
    bad = SlackClient("xoxb-wrong", base_url=fake.api_url)
    with pytest.raises(SlackAuthError) as auth:
        bad.auth_test()
    assert auth.value.code == "invalid_auth"
    assert "xoxb-wrong" not in str(auth.value)


def test_post_message_sends_metadata_and_turns_unfurling_off(fake: FakeSlack) -> None:
    client = client_for(fake, Recorder())
    root = client.post_message("C1", "root")["ts"]
    client.post_message(
        "C1", "reply", thread_ts=root, metadata={"event_type": "athenaeum_reply", "event_payload": {"key": "T:C1:1.2"}}
    )
    call = fake.calls_to("chat.postMessage")[-1]
    assert call.params["unfurl_links"] is False and call.params["unfurl_media"] is False
    reply = fake.bot_messages("C1", thread_ts=root)[-1]
    assert reply["metadata"]["event_payload"] == {"key": "T:C1:1.2"}
    assert reply["thread_ts"] == root


def test_reactions_and_streams_and_status(fake: FakeSlack) -> None:
    client = client_for(fake, Recorder())
    ts = client.post_message("C1", "q")["ts"]
    assert client.add_reaction("C1", ts, "white_check_mark") is True
    assert client.add_reaction("C1", ts, "white_check_mark") is False
    started = client.write(
        "chat.startStream", channel="C1", thread_ts=ts, recipient_user_id="U1", recipient_team_id=fake.team_id
    )
    client.write("chat.appendStream", channel="C1", ts=started["ts"], markdown_text="Hel")
    client.write("chat.stopStream", channel="C1", ts=started["ts"], markdown_text="lo")
    assert fake.messages("C1", thread_ts=ts)[-1]["text"] == "Hello"
    with pytest.raises(SlackApiCallError) as info:
        client.write("chat.appendStream", channel="C1", ts=started["ts"], markdown_text="!")
    assert info.value.code == "message_not_in_streaming_state"
    client.set_assistant_status("C1", ts, "is thinking… " * 10)
    assert len(fake.statuses[-1]["status"]) == 50
