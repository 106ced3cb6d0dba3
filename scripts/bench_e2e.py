#!/usr/bin/env python3
"""End-to-end overhead of answering: question recorded -> final reply in (fake) Slack, with an instant fake LLM.

    python scripts/bench_e2e.py [--questions 200] [--burst 300] [--pool 5] [--database-url URL]

What runs is the production path: the queue (WorkerPool, pool size 5), the assistant (context from the
database, prompts, the Claude seam through the real ``anthropic`` SDK over SSE to a local fake that answers
at once), the reply ledger and native streaming through the real ``slack_sdk`` to a local fake Slack.

* latency: one question at a time; from just before the transaction that records the question (what Slack
  ingestion does after parsing an envelope) to the moment fake Slack receives ``chat.stopStream`` (the final
  reply). p50/p95/p99 in milliseconds.
* throughput: ``--burst`` questions recorded at once; final replies per second at pool size ``--pool``.

Until Socket Mode ingestion is on this branch the clock starts at the enqueue, not at the WebSocket envelope;
ingestion's own ack path is measured by its benchmark (Socket Mode ack p99).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.agent import AgentSettings, Assistant  # noqa: E402
from agent.event_processor import EventProcessor  # noqa: E402
from agent.llm import ClaudeClient, LLMSettings  # noqa: E402
from agent.logging import configure_logging  # noqa: E402
from agent.prompts import PromptRenderer  # noqa: E402
from agent.questions import Question  # noqa: E402
from agent.slack_sink import SlackReplySink, SlackWriter  # noqa: E402
from agent.worker_pool import WorkerPool  # noqa: E402
from database import DatabaseConnection, EmbeddedPostgres  # noqa: E402
from database.migrations import upgrade  # noqa: E402
from tests.fakes.anthropic_server import FakeAnthropic, text  # noqa: E402
from tests.fakes.slack_web import FakeSlackWeb  # noqa: E402

ANSWER = "Leases expire after the visibility timeout; a heartbeat extends them while the job runs."


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class FinalReplies:
    """Wakes waiters when fake Slack receives the final call of a reply (``chat.stopStream``)."""

    def __init__(self, slack: FakeSlackWeb) -> None:
        self.slack = slack
        self.cond = threading.Condition()
        self.done: dict[str, float] = {}
        original = slack._dispatch

        def dispatch(method: str, args: dict) -> tuple:  # type: ignore[type-arg]
            result = original(method, args)
            if method == "chat.stopStream":
                with self.cond:
                    self.done[args["ts"]] = time.perf_counter()
                    self.cond.notify_all()
            return result

        slack._dispatch = dispatch  # type: ignore[method-assign]

    def wait_count(self, n: int, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.done) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"only {len(self.done)} of {n} replies within {timeout}s (capped run)")
                self.cond.wait(left)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=200, help="sequential questions for latency")
    parser.add_argument("--burst", type=int, default=300, help="questions recorded at once for throughput")
    parser.add_argument("--pool", type=int, default=5)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    configure_logging("WARNING", "console")

    url, server = args.database_url, None
    if url is None:
        server = EmbeddedPostgres(tempfile.mkdtemp(prefix="athenaeum-bench-e2e-"))
        url = server.start()
    upgrade(url)
    db = DatabaseConnection(url, pool_size=20, max_overflow=10)
    try:
        with FakeAnthropic(default=lambda body: text(ANSWER, chunk_size=64)) as llm, FakeSlackWeb() as slack:
            finals = FinalReplies(slack)
            claude = ClaudeClient(
                LLMSettings(api_key="sk-ant-bench-000000", model="claude-sonnet-5-5", base_url=llm.base_url)
            )
            writer = SlackWriter("xoxb-bench-000000", slack.api_url, post_interval=0.0)

            def sinks(q: Question) -> SlackReplySink:
                return SlackReplySink(
                    writer,
                    db,
                    request_key=q.request_key,
                    event_id=q.event_id,
                    channel_id=q.channel_id,
                    thread_ts=q.reply_thread_ts or "",
                    question_ts=q.ts,
                    user_id=q.user_id,
                    team_id=q.team_id,
                    mode="native",
                    update_interval=1.0,
                )

            assistant = Assistant(
                db, sinks, llm=claude, tools=None, prompts=PromptRenderer(), settings=AgentSettings(bot_user_id="UBOT")
            )
            pool = WorkerPool(size=args.pool, db_connection=db, process_func=assistant, poll_interval=1.0)
            pool.start()
            counter = iter(range(10**9))

            def record(n: int) -> list[float]:
                starts = []
                with db.session() as s:
                    proc = EventProcessor(s)
                    for _ in range(n):
                        i = next(counter)
                        ts = f"1700000000.{i:06d}"
                        starts.append(time.perf_counter())
                        proc.enqueue_event(
                            "slack.question",
                            {
                                "team_id": "T1",
                                "channel_id": f"C{i % 50}",
                                "ts": ts,
                                "thread_ts": None,
                                "user_id": "UHUMAN",
                                "text": f"question {i}?",
                                "channel_type": "channel",
                            },
                            key=f"T1:C{i % 50}:{ts}",
                        )
                return starts

            try:
                for _ in range(5):  # warm-up: connections, templates, SDK
                    record(1)
                finals.wait_count(5)
                latencies = []
                for _ in range(args.questions):
                    before = len(finals.done)
                    start = record(1)[0]
                    finals.wait_count(before + 1)
                    latencies.append((max(finals.done.values()) - start) * 1000)
                before = len(finals.done)
                t0 = time.perf_counter()
                record(args.burst)
                finals.wait_count(before + args.burst)
                burst_seconds = time.perf_counter() - t0
            finally:
                pool.stop(timeout=10)
                claude.close()
    finally:
        db.dispose()
        if server is not None:
            server.stop()

    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"pool size {args.pool}; fake Claude (SSE, instant) and fake Slack on 127.0.0.1; native streaming")
    print("| measure | value |\n|---|---|")
    print(f"| question recorded -> final reply, p50 | {pct(latencies, 50):.1f} ms |")
    print(f"| p95 | {pct(latencies, 95):.1f} ms |")
    print(f"| p99 | {pct(latencies, 99):.1f} ms |")
    print(f"| replies/s, {args.burst} at once | {args.burst / burst_seconds:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
