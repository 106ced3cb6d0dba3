#!/usr/bin/env python3
"""Profile a drain of no-op events through WorkerPool and say where the time goes.

    make profile                     # py-spy over all threads, then the summary below
    .venv-bench/bin/python scripts/profile_drain.py [--events 20000] [--concurrency 4]

Runs itself under ``py-spy record --format raw`` (collapsed stacks of every thread, idle frames dropped,
C extensions included) and prints: the share of samples per thread role, the hottest functions by
self time, and the hottest project functions by inclusive time. py-spy comes from the benchmark
virtualenv, never from the project's requirements.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def drain(events: int, concurrency: int) -> None:
    import bench_queue

    from agent.logging import configure_logging
    from database import DatabaseConnection, EmbeddedPostgres
    from database.migrations import upgrade

    configure_logging("WARNING", "json")
    tmp = tempfile.mkdtemp(prefix="athenaeum-profile-")
    server = EmbeddedPostgres(tmp)
    url = server.start()
    try:
        upgrade(url)
        db = DatabaseConnection(url, pool_size=24, max_overflow=8)
        bench_queue.fill(db, events)
        print("DRAIN-START", flush=True)
        rate = bench_queue.bench_drain(db, events, concurrency)
        print(f"drained {events} at c={concurrency}: {rate:,.0f} events/s", flush=True)
        db.dispose()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def summarise(raw: Path, top: int) -> str:
    """Collapsed stacks ("thread;frame;frame count") to self and inclusive tables."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    roles: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0]
        role = next((r for r in ("dispatcher", "completer", "maintenance", "worker", "listener") if r in thread), "")
        role = role or ("main" if "MainThread" in thread or "process" in thread.lower() else thread[:40])
        roles[role] += n
        total += n
        self_time[frames[-1]] += n
        for frame in set(frames[1:]):
            if "agent/" in frame or "database/" in frame:
                inclusive[frame] += n
    out = [f"samples: {total}", "", "by thread role:"]
    out += [f"  {share(n, total)}  {role}" for role, n in roles.most_common()]
    out += ["", f"top {top} by self time (the frame on top of the stack):"]
    out += [f"  {share(n, total)}  {frame}" for frame, n in self_time.most_common(top)]
    out += ["", f"top {top} project frames by inclusive time:"]
    out += [f"  {share(n, total)}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(out)


def share(n: int, total: int) -> str:
    return f"{100 * n / max(total, 1):5.1f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default="/tmp/athenaeum-drain.pyspy.txt", help="raw collapsed stacks")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        drain(args.events, args.concurrency)
        return 0
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.path.exists(pyspy):
        print("py-spy not found: run `make profile` (it installs .venv-bench)", file=sys.stderr)
        return 2
    cmd = [pyspy, "record", "--format", "raw", "--threads", "-r", "100", "-o", args.out, "--"]
    cmd += [sys.executable, __file__, "--child", "--events", str(args.events), "--concurrency", str(args.concurrency)]
    started = time.monotonic()
    subprocess.run(cmd, check=True)
    print(f"(profiled run took {time.monotonic() - started:.0f}s, raw stacks in {args.out})")
    print(summarise(Path(args.out), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
