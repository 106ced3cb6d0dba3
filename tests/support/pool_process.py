"""A worker process for crash and scale-out tests: ``python -m tests.support.pool_process URL [options]``.

Each processed event is recorded in ``processed_log`` (created by the test) with this process's pid,
in the job itself, so a test can prove exactly-once processing across processes and crashes.
Payload ``{"block": true}`` makes a job wait forever (to be SIGKILLed or drained); ``{"fail_attempts": n}``
fails its first ``n`` attempts (then succeeds); ``{"permanent": true}`` fails at once with a PermanentError.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import text

from agent import EventSnapshot, PermanentError, WorkerPool
from agent.logging import configure_logging
from database import DatabaseConnection


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--size", type=int, default=4)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--reaper", type=float, default=0.5)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--retry-base", type=float, default=None, help="retry base delay (default: the config's)")
    parser.add_argument("--no-listen", action="store_true")
    args = parser.parse_args()
    configure_logging("WARNING", "json")
    db = DatabaseConnection(args.url, pool_size=args.size + 4)
    import os

    pid = os.getpid()

    def process(event: EventSnapshot) -> None:
        if event.payload.get("permanent"):
            raise PermanentError("scripted permanent failure")
        if event.payload.get("fail_attempts", 0) >= event.attempt:
            raise RuntimeError(f"scripted failure on attempt {event.attempt}")
        if event.payload.get("block"):
            with db.session() as s:
                s.execute(text("INSERT INTO started_log (event_id, pid) VALUES (:e, :p)"), {"e": event.id, "p": pid})
            # A well-behaved long job watches lease_lost: a drain or a lost lease stops it early.
            if event.lease_lost.wait(event.payload.get("block_seconds", 3600)):
                return
        with db.session() as s:
            s.execute(text("INSERT INTO processed_log (event_id, pid) VALUES (:e, :p)"), {"e": event.id, "p": pid})

    pool = WorkerPool(
        args.size,
        db,
        process,
        visibility_timeout=args.lease,
        heartbeat_interval=args.lease / 3,
        reaper_interval=args.reaper,
        poll_interval=args.poll,
        stop_grace_period=args.grace,
        retry_base_delay=args.retry_base,
        listen=not args.no_listen,
    )
    pool.start()
    print("READY", flush=True)
    pool.run_forever()
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
