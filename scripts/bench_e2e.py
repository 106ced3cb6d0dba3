#!/usr/bin/env python3
"""End-to-end overhead of answering: Socket Mode envelope -> final reply in (fake) Slack, with an instant fake LLM.

    python scripts/bench_e2e.py [--questions 200] [--burst 300] [--pool 5] [--source envelope|enqueue]
                                [--database-url URL]

What runs is the production path: Socket Mode ingestion (slack_sdk's client against the fake Slack's
WebSocket, ack after commit), the queue (WorkerPool, pool size 5), the assistant (context from the database,
prompts, the Claude seam through the real ``anthropic`` SDK over SSE to a local fake that answers at once),
the reply ledger and native streaming through the real ``slack_sdk`` to the fake Slack Web API.

* latency: one question at a time, from just before the envelope is sent (``--source enqueue``: just before
  the transaction that records the question event) to the moment the fake Slack receives ``chat.stopStream``
  (the final reply). p50/p95/p99 in milliseconds.
* throughput: ``--burst`` questions at once; final replies per second at pool size ``--pool``.

Without Slack ingestion installed the clock starts at the enqueue (``--source enqueue``).
"""

from __future__ import annotations

import argparse
import contextlib
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
from agent.questions import QUESTION_EVENT_TYPES, Question  # noqa: E402
from agent.slack_sink import SlackReplySink, SlackWriter  # noqa: E402
from agent.snapshot import EventSnapshot  # noqa: E402
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
    """Wakes waiters when a fake Slack receives the final call of a reply (``chat.stopStream``)."""

    def __init__(self, fake: object, attribute: str) -> None:
        self.cond = threading.Condition()
        self.done: list[float] = []
        original = getattr(fake, attribute)

        def hooked(method: str, *args: object) -> object:
            result = original(method, *args)
            if method == "chat.stopStream":
                with self.cond:
                    self.done.append(time.perf_counter())
                    self.cond.notify_all()
            return result

        setattr(fake, attribute, hooked)

    def wait_count(self, n: int, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.done) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"only {len(self.done)} of {n} replies within {timeout}s (capped run)")
                self.cond.wait(left)


def question_payload(i: int) -> dict[str, object]:
    ts = f"1700000000.{i:06d}"
    return {
        "team_id": "T1",
        "channel_id": f"C{i % 50}",
        "ts": ts,
        "thread_ts": None,
        "user_id": "UHUMAN",
        "text": f"question {i}?",
        "channel_type": "channel",
    }


class StatementTimes:
    """Every statement and commit the process sends to PostgreSQL, timed at the driver.

    psycopg2 connections are created with a connection factory whose cursors time ``execute``; the queue's
    hot statements skip SQLAlchemy's execute path (database/driver_sql.py), so SQLAlchemy's own cursor
    events would miss them. Round trip included: this is the latency the service sees.
    """

    def __init__(self) -> None:
        self.statements: list[float] = []
        self.commits: list[float] = []
        self.enabled = False

    def install(self, engine: object) -> None:
        import psycopg2.extensions
        from sqlalchemy import event

        times = self

        class TimingCursor(psycopg2.extensions.cursor):
            def execute(self, query: object, vars: object = None) -> object:
                t0 = time.perf_counter()
                try:
                    return super().execute(query, vars)  # type: ignore[arg-type]
                finally:
                    if times.enabled:
                        times.statements.append(time.perf_counter() - t0)

        class TimingConnection(psycopg2.extensions.connection):
            def cursor(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
                kwargs.setdefault("cursor_factory", TimingCursor)
                return super().cursor(*args, **kwargs)  # type: ignore[arg-type]

            def commit(self) -> None:
                t0 = time.perf_counter()
                try:
                    super().commit()
                finally:
                    if times.enabled:
                        times.commits.append(time.perf_counter() - t0)

        @event.listens_for(engine, "do_connect")
        def _timed(dialect: object, conn_rec: object, cargs: object, cparams: dict) -> None:
            cparams["connection_factory"] = TimingConnection


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=200, help="sequential questions for latency")
    parser.add_argument("--burst", type=int, default=300, help="questions at once for throughput")
    parser.add_argument("--pool", type=int, default=5)
    parser.add_argument(
        "--source",
        choices=("envelope", "enqueue"),
        default=None,
        help="start the clock at a Socket Mode envelope (default when ingestion is installed) "
        "or at the enqueue of the question event",
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    try:
        from slack.socket_handler import start_socket_mode
        from tests.fakes.slack import FakeSlack
    except ImportError:
        start_socket_mode = FakeSlack = None  # type: ignore[assignment,misc]
    source = args.source or ("envelope" if FakeSlack is not None else "enqueue")
    if source == "envelope" and FakeSlack is None:
        parser.error("--source envelope needs Slack ingestion (slack/socket_handler.py), not on this branch")

    url, server = args.database_url, None
    if url is None:
        server = EmbeddedPostgres(tempfile.mkdtemp(prefix="athenaeum-bench-e2e-"))
        url = server.start()
    upgrade(url)
    db = DatabaseConnection(url, pool_size=20, max_overflow=10)
    times = StatementTimes()
    times.install(db.engine)
    counter = iter(range(10**9))
    stack = contextlib.ExitStack()
    try:
        llm = stack.enter_context(FakeAnthropic(default=lambda body: text(ANSWER, chunk_size=64)))
        if source == "envelope":
            slack: object = stack.enter_context(FakeSlack())
            finals = FinalReplies(slack, "handle")
            api_url, bot_token, bot_user = slack.api_url, slack.bot_token, slack.bot_user_id  # type: ignore[attr-defined]
        else:
            slack = stack.enter_context(FakeSlackWeb())
            finals = FinalReplies(slack, "_apply")
            api_url, bot_token, bot_user = slack.api_url, "xoxb-bench-000000", "UBOT"  # type: ignore[attr-defined]
        claude = ClaudeClient(
            LLMSettings(api_key="sk-ant-bench-000000", model="claude-sonnet-5-5", base_url=llm.base_url)
        )
        stack.callback(claude.close)
        writer = SlackWriter(bot_token, api_url, post_interval=0.0)

        def sinks(q: Question) -> SlackReplySink:
            return SlackReplySink.for_question(writer, db, q, update_interval=1.0)

        assistant = Assistant(
            db, sinks, llm=claude, tools=None, prompts=PromptRenderer(), settings=AgentSettings(bot_user_id=bot_user)
        )

        def process(event: EventSnapshot) -> None:
            if event.event_type in QUESTION_EVENT_TYPES:
                assistant(event)

        pool = WorkerPool(size=args.pool, db_connection=db, process_func=process, poll_interval=1.0)
        pool.start()
        stack.callback(pool.stop, 10)
        if source == "envelope":
            ingestion = start_socket_mode(
                app_token=slack.app_token,
                bot_token=bot_token,
                api_url=api_url,  # type: ignore[attr-defined]
                db=db,
                queue_factory=lambda s: EventProcessor(s),
            )
            stack.callback(ingestion.stop)
            slack.wait_for_connections(1)  # type: ignore[attr-defined]

            def record(n: int) -> list[float]:
                starts = []
                for _ in range(n):
                    i = next(counter)
                    ts = f"1700000000.{i:06d}"
                    event = {
                        "type": "app_mention",
                        "user": "UHUMAN",
                        "text": f"<@{bot_user}> question {i}?",
                        "ts": ts,
                        "channel": f"C{i % 50}",
                        "event_ts": ts,
                    }
                    starts.append(time.perf_counter())
                    slack.send_envelope(slack.event_callback(event))  # type: ignore[attr-defined]
                return starts
        else:

            def record(n: int) -> list[float]:
                starts = []
                with db.session() as s:
                    proc = EventProcessor(s)
                    for _ in range(n):
                        payload = question_payload(next(counter))
                        starts.append(time.perf_counter())
                        proc.enqueue_event("slack.question", payload, key=f"T1:{payload['channel_id']}:{payload['ts']}")
                return starts

        for _ in range(5):  # warm-up: connections, templates, SDK
            record(1)
        finals.wait_count(5)
        latencies = []
        times.enabled = True
        for _ in range(args.questions):
            before = len(finals.done)
            start = record(1)[0]
            finals.wait_count(before + 1)
            latencies.append((finals.done[before] - start) * 1000)
        times.enabled = False
        before = len(finals.done)
        t0 = time.perf_counter()
        record(args.burst)
        finals.wait_count(before + args.burst)
        burst_seconds = time.perf_counter() - t0
    finally:
        stack.close()
        db.dispose()
        if server is not None:
            server.stop()

    start_label = "Socket Mode envelope sent" if source == "envelope" else "question event recorded"
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"pool size {args.pool}; fake Claude (SSE, instant) and fake Slack on 127.0.0.1; native streaming")
    print("| measure | value |\n|---|---|")
    print(f"| {start_label} -> final reply, p50 | {pct(latencies, 50):.1f} ms |")
    print(f"| p95 | {pct(latencies, 95):.1f} ms |")
    print(f"| p99 | {pct(latencies, 99):.1f} ms |")
    print(f"| replies/s, {args.burst} at once | {args.burst / burst_seconds:.0f} |")
    statements = [t * 1000 for t in times.statements]
    commits = [t * 1000 for t in times.commits]
    print(
        f"| database statement latency during the latency run, p50 / p95 / p99 ({len(statements)} statements) "
        f"| {pct(statements, 50):.2f} / {pct(statements, 95):.2f} / {pct(statements, 99):.2f} ms |"
    )
    if commits:
        print(
            f"| commit latency, p50 / p95 ({len(commits)} commits) "
            f"| {pct(commits, 50):.2f} / {pct(commits, 95):.2f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
