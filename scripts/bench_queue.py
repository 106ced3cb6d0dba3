#!/usr/bin/env python3
"""Queue benchmarks through the public API: enqueue, drain, claim latency and pickup latency.

    python scripts/bench_queue.py [--quick] [--write docs/benchmarks.md] [--database-url URL]

Workloads follow ../shared/design/performance.md. With no URL a private embedded PostgreSQL is started
in a temporary directory (so the numbers are not disturbed by other databases). Prints the machine, the
PostgreSQL version and settings, and a table. Absolute numbers on a shared 2-core machine drift by tens of
percent between runs: compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.event import listen as event_listen  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from agent import EventProcessor, EventSnapshot, WorkerPool  # noqa: E402
from agent.logging import configure_logging  # noqa: E402
from database import DatabaseConnection, EmbeddedPostgres  # noqa: E402
from database.migrations import upgrade  # noqa: E402

CAP_SECONDS = 600.0


class CappedRun(RuntimeError):
    """A workload hit its time cap: its figure would be a lie, so the report is refused."""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def reset(db: DatabaseConnection) -> None:
    with db.session() as s:
        s.execute(text("TRUNCATE events RESTART IDENTITY"))


def bench_enqueue_single(db: DatabaseConnection, n: int) -> float:
    reset(db)
    start = time.perf_counter()
    for i in range(n):
        with db.session() as s:
            EventProcessor(s).enqueue_event("bench", {"i": i})
    return n / (time.perf_counter() - start)


def bench_enqueue_batched(db: DatabaseConnection, n: int, batch: int = 100) -> float:
    reset(db)
    start = time.perf_counter()
    for offset in range(0, n, batch):
        with db.session() as s:
            EventProcessor(s).enqueue_events([("bench", {"i": i}) for i in range(offset, offset + batch)])
    return n / (time.perf_counter() - start)


def fill(db: DatabaseConnection, n: int) -> None:
    reset(db)
    with db.session() as s:
        for offset in range(0, n, 1000):
            EventProcessor(s).enqueue_events([("bench", {"i": i}) for i in range(offset, min(n, offset + 1000))])
    with db.session() as s:
        s.execute(text("ANALYZE events"))


def bench_drain(db: DatabaseConnection, n: int, concurrency: int) -> float:
    fill(db, n)
    pool = WorkerPool(concurrency, db, lambda event: None, poll_interval=1.0)
    start = time.perf_counter()
    pool.start()
    deadline = start + CAP_SECONDS
    while pool.get_stats()["total_events_processed"] < n:
        if time.perf_counter() > deadline:
            pool.stop(timeout=1)
            raise CappedRun(f"drain at c={concurrency} did not finish in {CAP_SECONDS}s")
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    pool.stop(timeout=5)
    with db.session() as s:
        done = s.execute(text("SELECT count(*) FROM events WHERE status = 'completed'")).scalar()
    if done != n:
        raise CappedRun(f"drain at c={concurrency} completed {done} of {n}")
    return n / elapsed


def bench_plain_drain(db: DatabaseConnection, n: int, concurrency: int) -> float:
    """The anchor of performance.md measured in the same run: hand-written SKIP LOCKED with psycopg2,
    one claim and one ack per transaction, a thread per worker, no framework at all."""
    fill(db, n)
    done = threading.Event()
    remaining = [n]
    lock = threading.Lock()

    def worker() -> None:
        conn = db.raw_dbapi_connection()
        cur = conn.cursor()
        while not done.is_set():
            cur.execute(
                "UPDATE events SET status = 'processing', visibility_timeout = now() + interval '5 minutes' "
                "WHERE id = (SELECT id FROM events WHERE status = 'pending' AND run_after <= now() "
                "ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, payload"
            )
            row = cur.fetchone()
            conn.commit()
            if row is None:
                break
            cur.execute("UPDATE events SET status = 'completed', processed_at = now() WHERE id = %s", (row[0],))
            conn.commit()
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CAP_SECONDS)
    if remaining[0]:
        raise CappedRun(f"plain drain at c={concurrency} left {remaining[0]} events")
    return n / (time.perf_counter() - start)


def bench_claim_latency(
    db: DatabaseConnection, threads: int, claims_each: int, interval: float | None = None
) -> tuple[float, float]:
    """p50/p99 of ``claim_event`` with ``threads`` claimers on a deep queue.

    With no ``interval`` each claimer claims back to back (a closed loop): on 2 cores that measures
    queueing for the CPU (16 claimers each wait for the other 15), not the claim. With ``interval`` each
    claimer claims on a fixed schedule (an open loop, staggered), which is how claims arrive in service:
    one per free worker slot.
    """
    fill(db, threads * claims_each + 100)
    sessions = sessionmaker(bind=db.engine.execution_options(isolation_level="AUTOCOMMIT"))
    timings: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def claimer(k: int) -> None:
        session = sessions()
        proc = EventProcessor(session, worker_id=f"bench-{k}")
        local: list[float] = []
        barrier.wait()
        begin = time.perf_counter() + (interval or 0.0) * k / threads
        for i in range(claims_each):
            if interval is not None:
                pause = begin + i * interval - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            t0 = time.perf_counter()
            event = proc.claim_event()
            local.append(time.perf_counter() - t0)
            assert event is not None
        session.close()
        with lock:
            timings.extend(local)

    workers = [threading.Thread(target=claimer, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return pct(timings, 50) * 1000, pct(timings, 99) * 1000


def bench_pickup(db: DatabaseConnection, url: str, n: int, rate: float, cross_process: bool) -> tuple[float, ...]:
    reset(db)
    started: dict[int, float] = {}
    lock = threading.Lock()

    def handler(event: EventSnapshot) -> None:
        now = time.time()
        with lock:
            started[event.id] = now

    pool = WorkerPool(4, db, handler, poll_interval=1.0)
    pool.start()
    time.sleep(0.5)  # let the listener connect before the producer starts
    committed: dict[int, float] = {}
    if cross_process:
        out = subprocess.run(
            [sys.executable, __file__, "--produce", str(n), "--rate", str(rate), "--database-url", url],
            capture_output=True,
            text=True,
            check=True,
            timeout=CAP_SECONDS,
        ).stdout
        committed = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
    else:
        committed = produce(db, n, rate)
    deadline = time.time() + 30
    while len(started) < n and time.time() < deadline:
        time.sleep(0.01)
    pool.stop(timeout=5)
    if len(started) < n:
        raise CappedRun(f"pickup run saw {len(started)} of {n} events")
    latencies = [(started[i] - committed[i]) * 1000 for i in committed]
    return pct(latencies, 50), pct(latencies, 95), pct(latencies, 99)


def produce(db: DatabaseConnection, n: int, rate: float) -> dict[int, float]:
    committed: dict[int, float] = {}
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for i in range(n):
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        commit_time: list[float] = []
        with db.session() as s:
            # The commit's time is taken by the first after_commit listener, before the queue's own hooks
            # (which, in process, may already hand the event to a worker inside commit()).
            event_listen(s, "after_commit", lambda _s, times=commit_time: times.append(time.time()))
            event = EventProcessor(s).enqueue_event("bench.pickup", {"i": i})
        committed[event.id] = commit_time[0]
        next_at += interval
    return committed


def machine(db: DatabaseConnection) -> dict[str, str]:
    with db.session() as s:
        version = s.execute(text("SHOW server_version")).scalar()
        settings = {
            name: s.execute(text(f"SHOW {name}")).scalar()
            for name in ("shared_buffers", "synchronous_commit", "fsync", "max_connections")
        }
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "postgresql": f"{version} ({', '.join(f'{k}={v}' for k, v in settings.items())})",
        "os": platform.platform(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a database to use (its events table is truncated!)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    parser.add_argument("--write", metavar="PATH", help="also write the results as Markdown to PATH")
    parser.add_argument("--produce", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=200.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    configure_logging("WARNING", "json")

    if args.produce:
        db = DatabaseConnection(args.database_url)
        print(json.dumps(produce(db, args.produce, args.rate)))
        return 0

    tmp = None
    url = args.database_url
    if url is None:
        tmp = tempfile.mkdtemp(prefix="athenaeum-bench-")
        server = EmbeddedPostgres(tmp)
        url = server.start()
    upgrade(url)
    db = DatabaseConnection(url, pool_size=24, max_overflow=8)
    scale = 0.1 if args.quick else 1.0
    rows: list[tuple[str, str]] = []
    try:
        info = machine(db)
        rows.append(("enqueue, 1 per transaction (events/s)", f"{bench_enqueue_single(db, int(5000 * scale)):,.0f}"))
        rows.append(("enqueue, batches of 100 (events/s)", f"{bench_enqueue_batched(db, int(20000 * scale)):,.0f}"))
        for c in (1, 4, 16):
            # Alternate the two systems so drift on a shared machine hits both alike.
            ours = bench_drain(db, int(20000 * scale), c)
            plain = bench_plain_drain(db, int(20000 * scale), c)
            rows.append(
                (
                    f"drain no-op events, c={c} (events/s): WorkerPool / plain SKIP LOCKED",
                    f"{ours:,.0f} / {plain:,.0f} ({ours / plain:.1f}x)",
                )
            )
        p50, p99 = bench_claim_latency(db, 16, int(300 * scale) or 10)
        rows.append(("claim latency, 16 claimers back to back p50 / p99 (ms)", f"{p50:.2f} / {p99:.2f}"))
        p50, p99 = bench_claim_latency(db, 16, int(300 * scale) or 10, interval=0.02)
        rows.append(("claim latency, 16 claimers, each every 20 ms p50 / p99 (ms)", f"{p50:.2f} / {p99:.2f}"))
        n = int(2000 * scale)
        p50, p95, p99 = bench_pickup(db, url, n, 200.0, cross_process=False)
        rows.append(("pickup in-process at 200/s p50 / p95 / p99 (ms)", f"{p50:.2f} / {p95:.2f} / {p99:.2f}"))
        p50, p95, p99 = bench_pickup(db, url, n, 200.0, cross_process=True)
        rows.append(("pickup cross-process at 200/s p50 / p95 / p99 (ms)", f"{p50:.2f} / {p95:.2f} / {p99:.2f}"))
    except CappedRun as exc:
        print(f"refusing to report: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
        if tmp is not None:
            server.stop()
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k}: {v}" for k, v in info.items()))
    print()
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    if args.write:
        lines = [
            "| workload | result |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in rows),
            "",
            "Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items()),
        ]
        Path(args.write).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
