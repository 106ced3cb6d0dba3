"""The whole path: Socket Mode envelope -> recorded event -> worker -> assistant -> streamed reply -> ledger final.

Real PostgreSQL, the real Socket Mode ingestion against the fake Slack (Web API + WebSocket), the real
WorkerPool, the assistant with the real anthropic SDK against the fake Messages API.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text as sql

from agent.agent import AgentSettings, Assistant
from agent.event_processor import EventProcessor
from agent.llm import ClaudeClient, LLMSettings
from agent.prompts import PromptRenderer
from agent.questions import QUESTION_EVENT_TYPES, Question
from agent.slack_sink import SlackReplySink, SlackWriter
from agent.snapshot import EventSnapshot
from agent.worker_pool import WorkerPool
from database import DatabaseConnection
from slack.socket_handler import start_socket_mode
from tests.fakes.anthropic_server import FakeAnthropic, text
from tests.fakes.slack import FakeSlack
from tests.support.waiting import wait_for


@pytest.fixture
def world(db: DatabaseConnection) -> Iterator[tuple[FakeSlack, FakeAnthropic, WorkerPool]]:
    with FakeSlack() as slack, FakeAnthropic() as llm:
        slack.add_channel("C1", "general")
        slack.add_user("U1", "alice")
        claude = ClaudeClient(
            LLMSettings(api_key="sk-ant-e2e-000000", model="claude-sonnet-5-5", base_url=llm.base_url)
        )
        writer = SlackWriter(slack.bot_token, slack.api_url, post_interval=0.0)

        def sinks(q: Question) -> SlackReplySink:
            return SlackReplySink.for_question(writer, db, q, update_interval=0.0)

        assistant = Assistant(
            db,
            sinks,
            llm=claude,
            tools=None,
            prompts=PromptRenderer(),
            settings=AgentSettings(bot_user_id=slack.bot_user_id),
        )

        def process(event: EventSnapshot) -> None:
            if event.event_type in QUESTION_EVENT_TYPES:
                assistant(event)

        pool = WorkerPool(size=2, db_connection=db, process_func=process, poll_interval=0.1, listen=False)
        pool.start()
        ingestion = start_socket_mode(
            app_token=slack.app_token,
            bot_token=slack.bot_token,
            api_url=slack.api_url,
            db=db,
            queue_factory=lambda s: EventProcessor(s),
        )
        try:
            assert slack.wait_for_connections(1)
            yield slack, llm, pool
        finally:
            ingestion.stop()
            pool.stop(timeout=5)
            claude.close()


def test_an_envelope_becomes_one_streamed_reply_in_the_right_thread(
    db: DatabaseConnection, world: tuple[FakeSlack, FakeAnthropic, WorkerPool]
) -> None:
    slack, llm, _ = world
    llm.script(text("Leases expire unless a heartbeat extends them."))
    ts = slack.new_ts()
    mention = {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@{slack.bot_user_id}> how do leases work?",
        "ts": ts,
        "channel": "C1",
        "event_ts": ts,
    }
    message = {**mention, "type": "message", "channel_type": "channel"}
    envelopes = [
        slack.send_envelope(slack.event_callback(mention)),
        slack.send_envelope(slack.event_callback(message)),
    ]  # the same post, twice (row 2)
    assert slack.wait_for_acks(envelopes)
    wait_for(
        lambda: len(slack.bot_messages("C1")) == 1 and not slack.bot_messages("C1")[0].get("streaming"),
        timeout=30,
        what="the reply",
    )
    with db.session() as s:
        wait_for(
            lambda: s.execute(sql("SELECT count(*) FROM reply_ledger WHERE state = 'final'")).scalar() == 1,
            timeout=10,
            what="ledger final",
        )
        wait_for(  # the completion is written by the pool's completer just after the job returns
            lambda: (
                s.execute(sql("SELECT status FROM events WHERE event_type = 'slack.question'")).scalars().all()
                != ["processing"]
            ),
            timeout=10,
            what="the question event completed",
        )
        questions = s.execute(sql("SELECT status FROM events WHERE event_type = 'slack.question'")).scalars().all()
    reply = slack.bot_messages("C1")[0]
    assert reply["thread_ts"] == ts
    assert reply["text"] == "Leases expire unless a heartbeat extends them."
    assert questions == ["completed"]
    assert len(llm.requests) == 1 and "how do leases work?" in str(llm.requests[0]["messages"])
    assert f"<@{slack.bot_user_id}>" not in str(llm.requests[0]["messages"])
    assert len(slack.bot_messages("C1")) == 1
