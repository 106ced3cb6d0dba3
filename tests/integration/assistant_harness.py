"""Shared wiring for assistant tests: real PostgreSQL, the real queue, fake Claude, fake Slack, a real MCP server."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from agent.agent import AgentSettings, Assistant
from agent.event_processor import EventProcessor
from agent.llm import ClaudeClient, LLMSettings
from agent.prompts import PromptRenderer
from agent.questions import Question
from agent.slack_sink import SlackReplySink, SlackWriter
from agent.tools import ServerSpec, ToolHub
from agent.worker_pool import WorkerPool
from database import DatabaseConnection
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.slack_web import BOT_USER_ID, FakeSlackWeb
from tests.support.waiting import wait_for

TINY = str(Path(__file__).resolve().parent.parent / "fakes" / "tiny_mcp_server.py")
API_KEY = "sk-ant-api03-canary-DO-NOT-LEAK-0123456789"
BOT_TOKEN = "xoxb-canary-bot-token-0123456789"


def tiny_hub() -> ToolHub:
    return ToolHub([ServerSpec(name="tiny", command=sys.executable, args=(TINY,))], start_timeout=20).start()


@dataclass
class Harness:
    db: DatabaseConnection
    llm: FakeAnthropic
    slack: FakeSlackWeb
    hub: ToolHub | None
    mode: str = "native"
    max_turns: int = 4
    max_retry_count: int = 3
    llm_retries: int = 2
    allowed_channels: tuple[str, ...] = ()
    retrieval_only: bool = False
    waits: list[float] = field(default_factory=list)
    sinks: list[SlackReplySink] = field(default_factory=list)

    def writer(self) -> SlackWriter:
        return SlackWriter(BOT_TOKEN, self.slack.api_url, post_interval=0.0, sleep=self.waits.append)

    def assistant(self) -> Assistant:
        writer = self.writer()
        llm = (
            None
            if self.retrieval_only
            else ClaudeClient(
                LLMSettings(
                    api_key=API_KEY,
                    model="claude-sonnet-5-5",
                    base_url=self.llm.base_url,
                    max_retries=self.llm_retries,
                    retry_base_seconds=0.0,
                ),
                sleep=lambda seconds: None,
            )
        )

        def sinks(q: Question) -> SlackReplySink:
            sink = SlackReplySink.for_question(writer, self.db, q, mode=self.mode, update_interval=0.0)
            self.sinks.append(sink)
            return sink

        settings = AgentSettings(
            max_turns=self.max_turns,
            max_retry_count=self.max_retry_count,
            bot_user_id=BOT_USER_ID,
            allowed_channels=self.allowed_channels,
        )
        return Assistant(self.db, sinks, llm=llm, tools=self.hub, prompts=PromptRenderer(), settings=settings)

    def ask(
        self,
        question: str,
        *,
        channel: str = "CPUB",
        channel_type: str = "channel",
        user: str = "UHUMAN",
        thread_ts: str | None = None,
        **extra: Any,
    ) -> tuple[int, str]:
        """Post a user message in the fake Slack and enqueue its question event; returns (event id, ts)."""
        ts = self.slack.add_user_message(channel, question, user=user, thread_ts=thread_ts)
        payload = {
            "team_id": "T1",
            "channel_id": channel,
            "ts": ts,
            "thread_ts": thread_ts,
            "user_id": user,
            "text": question,
            "channel_type": channel_type,
            **extra,
        }
        with self.db.session() as s:
            event = EventProcessor(s).enqueue_event("slack.question", payload, key=f"T1:{channel}:{ts}")
        return event.id, ts

    def run(self, *event_ids: int, timeout: float = 30.0) -> None:
        """Run a pool until every event is terminal."""
        assistant = self.assistant()
        pool = WorkerPool(
            size=2,
            db_connection=self.db,
            process_func=assistant,
            retry_base_delay=0.01,
            reaper_interval=0.2,
            max_retry_count=self.max_retry_count,
            poll_interval=0.05,
            listen=False,
        )
        pool.start()
        try:
            wait_for(
                lambda: all(self.status(i) in ("completed", "failed") for i in event_ids),
                timeout=timeout,
                what=f"events {event_ids} terminal",
            )
        finally:
            pool.stop(timeout=5)
            assistant.close()

    def status(self, event_id: int) -> str:
        with self.db.session() as s:
            return str(s.execute(text("SELECT status FROM events WHERE id = :i"), {"i": event_id}).scalar())

    def event(self, event_id: int) -> Any:
        with self.db.session() as s:
            return s.execute(text("SELECT * FROM events WHERE id = :i"), {"i": event_id}).one()

    def ledger(self, key: str) -> Any:
        with self.db.session() as s:
            return s.execute(text("SELECT * FROM reply_ledger WHERE request_key = :k"), {"k": key}).one()

    def runs(self) -> list[Any]:
        with self.db.session() as s:
            return list(s.execute(text("SELECT * FROM agent_runs ORDER BY id")).all())
