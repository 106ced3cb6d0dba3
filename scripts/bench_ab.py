#!/usr/bin/env python3
"""A/B queue benchmark of two git revisions of this repository, alternating, in one run.

    python scripts/bench_ab.py BASE_REV NEW_REV [--c 1,4,16] [--rounds 3] [--events 20000]
    python scripts/bench_ab.py BASE_REV NEW_REV --workload enqueue_single --events 5000 [--rounds 5]

Each revision is checked out into a temporary git worktree; one private embedded PostgreSQL serves both.
For every round and concurrency the two revisions drain the same pre-filled queue (``bench_queue``'s
drain, through that revision's ``WorkerPool``) in fresh subprocesses, alternating which goes first, and
the medians per revision are printed. ``--workload enqueue_single`` measures ``bench_queue``'s enqueue
of one event per ``db.session()`` instead (one producer; ``--c`` is ignored). This is how the "Changes
made from the measurements" rows of docs/benchmarks.md are measured: on a shared machine only figures from
one alternating run compare.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys
tree = sys.argv[1]
sys.path[:0] = [tree, tree + "/scripts"]
from agent.logging import configure_logging
from database import DatabaseConnection
import bench_queue
configure_logging("WARNING", "json")
db = DatabaseConnection(sys.argv[2], pool_size=24, max_overflow=8)
try:
    if sys.argv[5] == "enqueue_single":
        print(json.dumps(bench_queue.bench_enqueue_single(db, int(sys.argv[4]))))
    else:
        print(json.dumps(bench_queue.bench_drain(db, int(sys.argv[4]), int(sys.argv[3]))))
finally:
    db.dispose()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base")
    parser.add_argument("new")
    parser.add_argument("--c", default="1,4,16", help="concurrencies (default 1,4,16)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--workload", choices=("drain", "enqueue_single"), default="drain")
    args = parser.parse_args()
    if args.workload == "enqueue_single":
        args.c = "1"
    sys.path.insert(0, str(ROOT))
    from database import EmbeddedPostgres
    from database.migrations import upgrade

    tmp = Path(tempfile.mkdtemp(prefix="athenaeum-bench-ab-"))
    trees = {}
    server = None
    try:
        for label, rev in (("base", args.base), ("new", args.new)):
            trees[label] = tmp / label
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(trees[label]), rev],
                check=True,
                capture_output=True,
            )
        server = EmbeddedPostgres(str(tmp / "pg"))
        url = server.start()
        upgrade(url)
        results: dict[tuple[str, int], list[float]] = {}
        for r in range(args.rounds):
            for c in (int(x) for x in args.c.split(",")):
                order = ["base", "new"] if r % 2 == 0 else ["new", "base"]
                for label in order:
                    out = subprocess.run(
                        [sys.executable, "-c", CHILD, str(trees[label]), url, str(c), str(args.events), args.workload],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    rate = json.loads(out.stdout.strip().splitlines()[-1])
                    results.setdefault((label, c), []).append(rate)
                    print(f"round {r + 1} c={c} {label}: {rate:,.0f}/s", file=sys.stderr, flush=True)
        print(f"| c | {args.base} (base) | {args.new} (new) | ratio |\n|---|---|---|---|")
        for c in (int(x) for x in args.c.split(",")):
            base, new = statistics.median(results[("base", c)]), statistics.median(results[("new", c)])
            print(f"| {c} | {base:,.0f}/s | {new:,.0f}/s | {new / base:.2f}x |")
    finally:
        if server is not None:
            server.stop()
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
