#!/usr/bin/env python3
"""Soak: N minutes of mixed load with periodic faults, then an invariant report (not part of CI).

    make soak MINUTES=10
    .venv/bin/python scripts/soak.py --minutes 10 [--workers 3] [--rate 100] [--fault-every 15]

A private embedded PostgreSQL, ``--workers`` worker processes (``tests/support/pool_process.py``) and a
producer in this process that enqueues at ``--rate`` events/s: singles and batches, redeliveries of keys
already sent (must be dropped), jobs that fail once or twice before succeeding, and a few permanent
failures, and a fifth of jobs that take 0.3 s (so kills find work in flight).
Every ``--fault-every`` seconds one fault, in turn: all backends terminated, a worker SIGKILLed
(and replaced), PostgreSQL restarted, a worker SIGTERMed (and replaced). At the end the producer stops,
every event must be terminal within the deadline, and the report checks in SQL:

- exactly one transition into ``completed`` per completed event (a trigger logs each one);
- every event that is not a scripted permanent failure completed; every permanent one ``failed`` once;
- no redelivered key made a second row; no expired lease left in ``processing``; attempts within bounds;
- a job runs again only after its lease expired (a SIGKILLed worker held it, or a claim's reply was lost).

Exit code 0 when every invariant holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from agent import EventProcessor  # noqa: E402
from agent.logging import configure_logging  # noqa: E402
from database import DatabaseConnection, EmbeddedPostgres  # noqa: E402
from database.migrations import upgrade  # noqa: E402
from tests.support.invariants import COMPLETION_LOG_DDL  # noqa: E402

MAX_RETRY_COUNT = 3


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.tmp = tempfile.mkdtemp(prefix="athenaeum-soak-")
        self.server = EmbeddedPostgres(self.tmp)
        self.url = ""
        self.workers: list[subprocess.Popen[str]] = []
        self.stop_producing = threading.Event()
        self.sent = 0
        self.permanent = 0
        self.redelivered = 0
        self.producer_errors = 0
        self.faults: dict[str, int] = {}
        self.killed_pids: list[int] = []
        self.worker_exit_codes: list[int] = []

    # ------------------------------------------------------------------ set-up
    def start(self) -> None:
        self.url = self.server.start()
        upgrade(self.url)
        self.db = DatabaseConnection(self.url, pool_size=4)
        with self.db.session() as s:
            s.execute(text("CREATE TABLE processed_log (event_id bigint, pid int)"))
            s.execute(text("CREATE TABLE started_log (event_id bigint, pid int)"))
            s.execute(text(COMPLETION_LOG_DDL))
        for _ in range(self.args.workers):
            self.spawn_worker()

    def spawn_worker(self) -> None:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.support.pool_process", self.url, "--size", str(self.args.size)),
                *("--lease", "5", "--reaper", "0.5", "--poll", "0.5", "--grace", "5", "--retry-base", "0.2"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("a worker process did not start")
        self.workers.append(proc)

    # ------------------------------------------------------------------ load
    def produce(self) -> None:
        counter = itertools.count()
        interval = 1.0 / self.args.rate
        next_at = time.monotonic()
        while not self.stop_producing.is_set():
            batch = 1 if self.rng.random() < 0.7 else 10
            items = []
            for _ in range(batch):
                i = next(counter)
                payload: dict[str, object] = {"i": i}
                roll = self.rng.random()
                if roll < 0.01:
                    payload["permanent"] = True
                elif roll < 0.06:
                    payload["fail_attempts"] = self.rng.choice((1, 2))
                elif roll < 0.26:  # slower jobs, so a SIGKILL finds work in flight
                    payload.update(block=True, block_seconds=0.3)
                items.append({"event_type": "soak", "payload": payload, "key": f"soak-{i}"})
            if self.sent > 10 and self.rng.random() < 0.05:  # a redelivery of a key already stored
                items.append({"event_type": "soak", "payload": {"dup": True}, "key": f"soak-{self.rng.randrange(10)}"})
            dup = sum(1 for it in items if it["payload"].get("dup"))
            stored = False
            while not stored:  # the database may be restarting: resend the same batch, as Slack would redeliver
                try:
                    with self.db.session() as s:
                        EventProcessor(s).enqueue_events(items)
                    stored = True
                except Exception:
                    self.producer_errors += 1
                    if self.stop_producing.wait(0.2):
                        return  # stopped while the database was away: this batch was never acknowledged
            self.sent += len(items) - dup
            self.permanent += sum(1 for it in items if it["payload"].get("permanent"))
            self.redelivered += dup
            next_at += interval * batch
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop_producing.wait(delay)
            else:
                next_at = time.monotonic()

    # ------------------------------------------------------------------ faults
    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        if kind == "terminate backends":
            self.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                     "AND backend_type = 'client backend'")  # fmt: skip
        elif kind == "SIGKILL a worker":
            victim = self.workers.pop(self.rng.randrange(len(self.workers)))
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            self.killed_pids.append(victim.pid)
            self.close(victim)
            self.spawn_worker()
        elif kind == "restart PostgreSQL":
            self.server.stop()
            self.server.start()
        elif kind == "SIGTERM a worker":
            victim = self.workers.pop(self.rng.randrange(len(self.workers)))
            victim.send_signal(signal.SIGTERM)
            self.worker_exit_codes.append(victim.wait(30))
            self.close(victim)
            self.spawn_worker()

    def sql(self, statement: str, **params: object) -> object:
        for attempt in range(50):
            try:
                with self.db.session() as s:
                    return s.execute(text(statement), params).scalar()
            except Exception:
                if attempt == 49:
                    raise
                time.sleep(0.2)
        return None

    @staticmethod
    def close(proc: subprocess.Popen[str]) -> None:
        if proc.stdout:
            proc.stdout.close()

    # ------------------------------------------------------------------ run and report
    def run(self) -> dict[str, object]:
        self.start()
        producer = threading.Thread(target=self.produce, name="producer", daemon=True)
        producer.start()
        kinds = itertools.cycle(["terminate backends", "SIGKILL a worker", "restart PostgreSQL", "SIGTERM a worker"])
        end = time.monotonic() + self.args.minutes * 60
        while time.monotonic() < end:
            time.sleep(min(self.args.fault_every, max(0.0, end - time.monotonic())))
            if time.monotonic() < end:
                kind = next(kinds)
                print(f"[{time.strftime('%H:%M:%S')}] fault: {kind} (sent {self.sent})", flush=True)
                self.fault(kind)
        self.stop_producing.set()
        producer.join(30)
        deadline = time.monotonic() + self.args.settle
        while self.sql("SELECT count(*) FROM events WHERE status IN ('pending', 'processing')") and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        for proc in self.workers:
            proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            self.worker_exit_codes.append(proc.wait(30))
            self.close(proc)
        return self.report()

    def report(self) -> dict[str, object]:
        q = self.sql
        r: dict[str, object] = {
            "minutes": self.args.minutes,
            "events stored": q("SELECT count(*) FROM events"),
            "events sent (distinct keys)": self.sent,
            "redeliveries of stored keys offered": self.redelivered,
            "producer errors (database down)": self.producer_errors,
            "faults": self.faults,
            "completed": q("SELECT count(*) FROM events WHERE status = 'completed'"),
            "failed": q("SELECT count(*) FROM events WHERE status = 'failed'"),
            "scripted permanent failures": self.permanent,
            "not terminal at the deadline": q("SELECT count(*) FROM events WHERE status IN ('pending', 'processing')"),
            "completion transitions": q("SELECT count(*) FROM completion_log"),
            "events completed more than once": q(
                "SELECT count(*) FROM (SELECT event_id FROM completion_log GROUP BY 1 HAVING count(*) > 1) d"
            ),
            "jobs run more than once": q(
                "SELECT count(*) FROM (SELECT event_id FROM processed_log GROUP BY 1 HAVING count(*) > 1) d"
            ),
            "leases expired (reclaimed by the reaper)": q(
                "SELECT count(DISTINCT id) FROM events, jsonb_array_elements(attempt_log) AS e "
                "WHERE e->>'error' = 'lease expired'"
            ),
            "of them held by SIGKILLed workers": q(
                "SELECT count(DISTINCT id) FROM events, jsonb_array_elements(attempt_log) AS e "
                "WHERE e->>'error' = 'lease expired' AND split_part(e->>'worker', ':', 2) = ANY(:pids)",
                pids=[str(p) for p in self.killed_pids],
            ),
            "repeats without an expired lease": q(
                "SELECT count(*) FROM (SELECT event_id FROM processed_log GROUP BY 1 HAVING count(*) > 1) d "
                "WHERE NOT EXISTS (SELECT 1 FROM events, jsonb_array_elements(attempt_log) AS e "
                "WHERE events.id = d.event_id AND e->>'error' = 'lease expired')"
            ),
            "expired leases in processing": q(
                "SELECT count(*) FROM events WHERE status = 'processing' AND visibility_timeout < now()"
            ),
            "attempts over the bound": q("SELECT count(*) FROM events WHERE retry_count > :m", m=MAX_RETRY_COUNT),
            "failed without an error": q(
                "SELECT count(*) FROM events WHERE status = 'failed' AND coalesce(error_message, '') = ''"
            ),
            "non-permanent events failed": q(
                "SELECT count(*) FROM events WHERE status = 'failed' "
                "AND NOT coalesce((payload->>'permanent')::bool, false)"
            ),
            "worker exit codes on SIGTERM": sorted(set(self.worker_exit_codes)),
        }
        checks = {
            "every event terminal": r["not terminal at the deadline"] == 0,
            "one row per key, redeliveries dropped": r["events stored"] == self.sent,
            "completed exactly once": r["completion transitions"] == r["completed"]
            and r["events completed more than once"] == 0,
            "only permanent failures failed": r["failed"] == self.permanent and r["non-permanent events failed"] == 0,
            "a job ran again only after its lease expired": r["repeats without an expired lease"] == 0,
            "no expired lease in processing": r["expired leases in processing"] == 0,
            "attempts within bounds": r["attempts over the bound"] == 0 and r["failed without an error"] == 0,
            "SIGTERM exits 0": set(self.worker_exit_codes) <= {0},
        }
        r["checks"] = {k: "ok" if v else "VIOLATED" for k, v in checks.items()}
        r["ok"] = all(checks.values())
        return r

    def cleanup(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        try:
            self.db.dispose()
        except Exception:
            pass
        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--size", type=int, default=4, help="threads per worker process")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second offered")
    parser.add_argument("--fault-every", type=float, default=15.0, help="seconds between faults")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds allowed to finish after the load")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    configure_logging("ERROR", "json")
    soak = Soak(args)
    try:
        report = soak.run()
    finally:
        soak.cleanup()
    print(json.dumps(report, indent=2, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
