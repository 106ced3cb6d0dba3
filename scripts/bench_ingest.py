#!/usr/bin/env python3
"""Ingestion benchmarks: history import into the store, and live Socket Mode envelopes with ack latency.

    .venv/bin/python scripts/bench_ingest.py [--messages 100000] [--envelopes 2000] [--rate 200]

Uses the local fake Slack (zero latency) and a throw-away embedded PostgreSQL (or ``--database-url``, a server
on which a scratch database is created and dropped). Prints the machine, then:

- import: messages/s of ``import_channel`` (history pages + thread replies -> ``slack_messages``) at the
  default page size (999, Slack's maximum for ``conversations.history``, what ``slack import`` uses) and at 200
  (the size Slack's pagination guide suggests);
- socket burst: envelopes/s when ``--envelopes`` are pushed at once through the real SocketModeClient;
- socket paced: ack latency p50/p99 (fake's send -> fake's receipt of the ack) at ``--rate`` envelopes/s.

The fake Slack runs in this process, so its threads share the GIL with the client: the latencies include that
(real Slack is another machine), which makes them conservative. Each line ends with the 1-minute load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from agent import EventProcessor  # noqa: E402
from agent.logging import configure_logging  # noqa: E402
from database import DatabaseConnection, EmbeddedPostgres, normalize_url  # noqa: E402
from database.migrations import upgrade  # noqa: E402
from slack.client import SlackClient  # noqa: E402
from slack.history import PAGE_SIZE, import_channel  # noqa: E402
from slack.socket_handler import start_socket_mode  # noqa: E402
from tests.fakes import slack_events as ev  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402

THREAD_ROOTS = 500
REPLIES_PER_THREAD = 4


def seed(fake: FakeSlack, total: int) -> None:
    fake.add_channel("C1", "bench")
    fake.add_user("U1", "ada")
    top = total - THREAD_ROOTS * REPLIES_PER_THREAD
    base = 1_700_000_000
    for i in range(top):
        ts = f"{base + i}.000100"
        fake.add_message(
            "C1", f"message {i}: the quick brown fox jumps over the lazy dog <@U1> #{i % 97}", user="U1", ts=ts
        )
        if i < THREAD_ROOTS:
            for j in range(REPLIES_PER_THREAD):
                fake.add_message("C1", f"reply {j} to {i}", user="U2", ts=f"{base + i}.{200 + j:06d}", thread_ts=ts)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_import(db: DatabaseConnection, fake: FakeSlack, total: int, page_size: int) -> float:
    with db.session() as s:
        s.execute(text("TRUNCATE slack_messages, slack_import_progress"))
    client = SlackClient(fake.bot_token, base_url=fake.api_url)
    start = time.perf_counter()
    result = import_channel(db, client, "C1", page_size=page_size)
    elapsed = time.perf_counter() - start
    with db.session() as s:
        stored = s.execute(text("SELECT count(*) FROM slack_messages")).scalar_one()
    assert result.messages == total == stored, (result.messages, total, stored)
    return total / elapsed


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def bench_socket(db: DatabaseConnection, fake: FakeSlack, n: int, rate: float | None) -> tuple[float, list[float], str]:
    handler = start_socket_mode(
        app_token=fake.app_token,
        bot_token=fake.bot_token,
        api_url=fake.api_url,
        db=db,
        queue_factory=lambda s: EventProcessor(s, worker_id="bench"),
    )
    try:
        if not fake.wait_for_connections(1, timeout=10):
            raise SystemExit("socket mode did not connect")
        sent: dict[str, float] = {}
        start = time.perf_counter()
        for i in range(n):
            if rate:
                due = start + i / rate
                while time.perf_counter() < due:
                    time.sleep(max(0.0, min(0.001, due - time.perf_counter())))
            payload = fake.event_callback(
                ev.message("C2", f"1800000000.{i:06d}", f"live {i}"), event_id=f"Ev{uuid.uuid4().hex}"
            )
            envelope_id = str(uuid.uuid4())
            sent[envelope_id] = time.perf_counter()
            fake.send_envelope(payload, envelope_id=envelope_id)
        if not fake.wait_for_acks(list(sent), timeout=120):
            raise SystemExit("not every envelope was acked within 120 s")
        acks = fake.socket.ack_times
        elapsed = max(acks[e] for e in sent) - start
        latencies = [(acks[e] - t) * 1000 for e, t in sent.items()]
        groups = f"{handler.committer.batches:,} transactions, largest group {handler.committer.largest_batch}"
        return n / elapsed, latencies, groups
    finally:
        handler.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--envelopes", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="envelopes/s of the paced latency run")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    configure_logging("WARNING", "console")

    embedded = None
    with tempfile.TemporaryDirectory(prefix="athenaeum-bench-") as tmp:
        url = args.database_url
        if url is None:
            embedded = EmbeddedPostgres(Path(tmp) / "pg", database="postgres")
            url = embedded.start()
        admin = DatabaseConnection(url)
        name = f"bench_{uuid.uuid4().hex[:8]}"
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        bench_url = normalize_url(url).set(database=name).render_as_string(hide_password=False)
        try:
            upgrade(bench_url)
            db = DatabaseConnection(bench_url, pool_size=12, max_overflow=4)
            with db.session() as s:
                version = s.execute(text("SHOW server_version")).scalar_one()
            print(
                f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
                f"PostgreSQL {version}"
            )
            with FakeSlack() as fake:
                seed(fake, args.messages)
                for page_size in (PAGE_SIZE, 200):
                    rate = bench_import(db, fake, args.messages, page_size)
                    label = f"page {page_size:>4}" + (" (default)" if page_size == PAGE_SIZE else "")
                    print(f"import  {args.messages:,} messages, {label:<19}: {rate:>9,.0f} msg/s; {load()}")
                burst, lat, groups = bench_socket(db, fake, args.envelopes, None)
                print(
                    f"socket  burst of {args.envelopes:,} envelopes: {burst:>9,.0f} envelopes/s "
                    f"(ack p50 {statistics.median(lat):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms under backlog; "
                    f"{groups}); {load()}"
                )
            with FakeSlack() as fake:
                _, lat, groups = bench_socket(db, fake, args.envelopes, args.rate)
                print(
                    f"socket  paced {args.rate:.0f}/s x {args.envelopes:,}: ack p50 {statistics.median(lat):.2f} ms, "
                    f"p99 {percentile(lat, 0.99):.2f} ms ({groups}); {load()}"
                )
            db.dispose()
        finally:
            with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
            if embedded is not None:
                embedded.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
