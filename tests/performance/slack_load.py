#!/usr/bin/env python3
"""Load for the HTTP Events API endpoint without locust: signed ``event_callback`` requests at a steady rate.

    python tests/performance/slack_load.py --url http://127.0.0.1:3000/slack/events --secret S \\
        [--rate 50] [--seconds 30] [--threads 8] [--duplicates 0.05]
    python tests/performance/slack_load.py --serve [--rate 200] [--seconds 10]

``--serve`` needs nothing running: it starts a private embedded PostgreSQL and Athenaeum's HTTP Events API
endpoint (``slack.http_events.HttpEventsServer`` with the real ingester) on 127.0.0.1, drives it, and then
checks in SQL that every distinct event is stored exactly once (redeliveries dropped).

Each request is what Slack sends (slack.md): a JSON ``event_callback`` with a unique ``event_id``, signed
``X-Slack-Signature = v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`` with ``X-Slack-Request-Timestamp``;
a share of them are redelivered with ``X-Slack-Retry-Num: 1`` (the endpoint must ack and store nothing new).
Reports requests/s, ack latency p50/p95/p99 and errors (non-2xx, timeouts, refused). Slack wants the ack
within 3 s; anything slower counts as an error. Targets only the URL given (loopback in tests), bounded in
count and time, and stops by itself. ``locustfile.py`` next to this file drives the same requests with locust.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import itertools
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ACK_DEADLINE_SECONDS = 3.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature of ``body`` at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def event_body(n: int, team: str = "T0LOAD", channel: str = "C0LOAD") -> bytes:
    """An ``app_mention`` event_callback, unique by ``event_id`` and ``ts``."""
    ts = f"{1_700_000_000 + n}.{n % 1_000_000:06d}"
    payload = {
        "token": "unused",
        "team_id": team,
        "api_app_id": "A0LOAD",
        "type": "event_callback",
        "event_id": f"Ev{n:012d}",
        "event_time": int(time.time()),
        "event": {
            "type": "app_mention",
            "user": "U0LOAD",
            "text": f"<@U0BOT> load question {n}",
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def signed_headers(secret: str, body: bytes, retry: int = 0) -> dict[str, str]:
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": sign(secret, timestamp, body),
    }
    if retry:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
    return headers


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, seconds: float) -> None:
        with self.lock:
            self.sent += 1
            self.latencies.append(seconds)

    def error(self, kind: str) -> None:
        with self.lock:
            self.sent += 1
            self.errors[kind] = self.errors.get(kind, 0) + 1


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def run_load(url: str, secret: str, rate: float, seconds: float, threads: int = 8, duplicates: float = 0.05) -> dict:
    """Send signed events at ``rate``/s for ``seconds`` from ``threads`` workers; return the report."""
    parts = urlsplit(url)
    results = Results()
    numbers = itertools.count()
    schedule_lock = threading.Lock()
    start = time.perf_counter()
    next_at = [start]
    total = int(rate * seconds)
    every = int(1 / duplicates) if duplicates > 0 else 0

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=ACK_DEADLINE_SECONDS)
        while True:
            with schedule_lock:
                n = next(numbers)
                if n >= total:
                    break
                due = next_at[0]
                next_at[0] += 1.0 / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            retry = 1 if every and n % every == every - 1 else 0
            body = event_body(n - 1 if retry and n else n)  # a redelivery repeats the previous event
            t0 = time.perf_counter()
            try:
                conn.request("POST", parts.path or "/", body=body, headers=signed_headers(secret, body, retry))
                response = conn.getresponse()
                response.read()
            except TimeoutError:
                results.error("timeout (> 3 s)")
                conn.close()
                continue
            except OSError as exc:
                results.error(type(exc).__name__)
                conn.close()
                continue
            elapsed = time.perf_counter() - t0
            if 200 <= response.status < 300 and elapsed <= ACK_DEADLINE_SECONDS:
                results.ok(elapsed)
            else:
                results.error(f"HTTP {response.status}" if response.status >= 300 else "late ack")
        conn.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 30)
    elapsed = time.perf_counter() - start
    ms = [v * 1000 for v in results.latencies]
    return {
        "requests": results.sent,
        "acked": len(ms),
        "errors": results.errors,
        "requests_per_second": round(results.sent / elapsed, 1),
        "ack_ms_p50": round(pct(ms, 50), 2),
        "ack_ms_p95": round(pct(ms, 95), 2),
        "ack_ms_p99": round(pct(ms, 99), 2),
        "duplicates_sent": sum(1 for n in range(total) if every and n % every == every - 1),
    }


def serve_and_load(rate: float, seconds: float, threads: int, duplicates: float) -> dict:
    """Start embedded PostgreSQL + the real HTTP endpoint, run the load, and check what was stored."""
    import shutil
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from sqlalchemy import text

    from agent import EventProcessor
    from agent.logging import configure_logging
    from database import DatabaseConnection, EmbeddedPostgres
    from database.migrations import upgrade
    from slack.client import BotIdentity
    from slack.http_events import EVENTS_PATH, HttpEventsServer
    from slack.ingest import Ingester

    configure_logging("WARNING", "json")
    secret = "load-test-signing-secret"
    tmp = tempfile.mkdtemp(prefix="athenaeum-load-")
    pg = EmbeddedPostgres(tmp)
    url = pg.start()
    try:
        upgrade(url)
        db = DatabaseConnection(url, pool_size=threads + 2)
        ingester = Ingester(db, lambda s: EventProcessor(s, "http-load"), BotIdentity("T0LOAD", "U0BOT", "B0BOT"))
        server = HttpEventsServer(ingester, secret, host="127.0.0.1", port=0)
        server.start()
        try:
            endpoint = f"http://127.0.0.1:{server.port}{EVENTS_PATH}"
            report = run_load(endpoint, secret, rate, seconds, threads, duplicates)
        finally:
            server.stop()
        with db.session() as s:
            stored = s.execute(
                text("SELECT count(*), count(DISTINCT dedupe_key) FROM events WHERE event_type = 'slack.app_mention'")
            ).one()
        db.dispose()
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report["events_stored"] = stored[0]
    report["distinct_events_sent"] = report["requests"] - report["duplicates_sent"]
    report["stored_once_each"] = stored[0] == stored[1] == report["distinct_events_sent"]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:3000/slack/events")
    parser.add_argument("--secret", help="the signing secret the endpoint was started with")
    parser.add_argument("--serve", action="store_true", help="start embedded PostgreSQL and the endpoint here")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--duplicates", type=float, default=0.05, help="share of requests that are redeliveries")
    args = parser.parse_args()
    if args.serve:
        report = serve_and_load(args.rate, args.seconds, args.threads, args.duplicates)
        print(json.dumps(report, indent=2))
        return 0 if not report["errors"] and report["stored_once_each"] else 1
    if not args.secret:
        parser.error("--secret is required unless --serve")
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        print("refusing: load tests only target this machine (loopback)", file=sys.stderr)
        return 2
    report = run_load(args.url, args.secret, args.rate, args.seconds, args.threads, args.duplicates)
    print(json.dumps(report, indent=2))
    return 0 if not report["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
