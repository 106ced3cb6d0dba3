#!/usr/bin/env python3
"""Athenaeum's queue side by side with the anchors of performance.md (pgqueuer, procrastinate), in one run.

    make bench-compare                  # creates .venv-bench, runs everything, writes docs/benchmarks.md
    .venv-bench/bin/python scripts/bench_compare.py [--runs 3] [--scale 1.0] [--write docs/benchmarks.md]

One private embedded PostgreSQL serves all systems (a database each, same server, same settings). Every
measurement runs in a fresh subprocess so no system inherits another's threads, pools or caches; within each
run the systems take turns workload by workload, and the order rotates from run to run, so drift on a
shared machine hits all alike. The table gives medians over the runs and each figure's ratio to the best
anchor of that row. Any workload that hits its cap or misses work makes the whole report refuse (exit 1):
a partial table would be a lie. ``--scale`` below 1 is a smoke run and is never written to docs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_anchors as anchors  # noqa: E402
import bench_queue  # noqa: E402

SYSTEMS = ("athenaeum", "pgqueuer", "pgqueuer_capped", "procrastinate")
ANCHORS = SYSTEMS[1:]
# Anchors configured with the same number of jobs in flight as WorkerPool(c): the "equal concurrency" of
# performance.md's drain target. pgqueuer's default managers have no cap (up to 10 jobs each).
EQUAL_IN_FLIGHT = ("pgqueuer_capped", "procrastinate")
DATABASE_OF = {"pgqueuer_capped": "pgqueuer"}


def applies(system: str, key: str) -> bool:
    """pgqueuer's own in-flight cap needs at least 2 jobs, so the capped shape runs the c >= 4 drains only."""
    return system != "pgqueuer_capped" or key in ("drain_4", "drain_16")


CAP_SECONDS = 600.0


def workloads(scale: float) -> list[tuple[str, str, dict]]:
    """(key, label, parameters) in the order they run; ``kind`` says how a figure is read."""
    n = lambda k: max(10, int(k * scale))  # noqa: E731
    rows = [
        ("enqueue_single", "enqueue, 1 per transaction (events/s)", {"n": n(5000), "kind": "rate"}),
        ("enqueue_batched", "enqueue, batches of 100 (events/s)", {"n": n(20000), "kind": "rate"}),
    ]
    for c in (1, 4, 16):
        rows.append((f"drain_{c}", f"drain {n(20000):,} no-op events, c={c} (events/s)", {"n": n(20000), "c": c}))
        rows[-1][2]["kind"] = "rate"
    rows.append(("pickup_200", "pickup from another process at 200/s, p50 / p99 (ms)", {"n": n(2000), "rate": 200.0}))
    rows.append(("pickup_50", "pickup from another process at 50/s, p50 / p99 (ms)", {"n": n(500), "rate": 50.0}))
    for _key, _label, params in rows:
        params.setdefault("kind", "latency")
    return rows


# ----------------------------------------------------------------------------- one measurement (child process)
def measure(system: str, key: str, params: dict, url: str) -> dict:
    dsn = anchors.libpq_url(url)
    n = params["n"]
    if system == "athenaeum":
        from database import DatabaseConnection

        db = DatabaseConnection(url, pool_size=24, max_overflow=8)
        try:
            if key == "enqueue_single":
                return {"value": bench_queue.bench_enqueue_single(db, n)}
            if key == "enqueue_batched":
                return {"value": bench_queue.bench_enqueue_batched(db, n)}
            if key.startswith("drain_"):
                return {"value": bench_queue.bench_drain(db, n, params["c"])}
            p50, _p95, p99 = bench_queue.bench_pickup(db, url, n, params["rate"], cross_process=True)
            return {"p50": p50, "p99": p99}
        finally:
            db.dispose()
    mod = {"pgqueuer": "pgq", "pgqueuer_capped": "pgq", "procrastinate": "pro"}[system]
    fn = lambda name: getattr(anchors, f"{mod}_{name}")  # noqa: E731
    if system == "pgqueuer_capped":
        return {"value": asyncio.run(anchors.pgq_drain(dsn, n, params["c"], CAP_SECONDS, capped=True))}
    if key == "enqueue_single":
        return {"value": asyncio.run(fn("enqueue_single")(dsn, n))}
    if key == "enqueue_batched":
        return {"value": asyncio.run(fn("enqueue_batched")(dsn, n))}
    if key.startswith("drain_"):
        return {"value": asyncio.run(fn("drain")(dsn, n, params["c"], CAP_SECONDS))}

    async def spawn_producer() -> dict[int, float]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--produce", system, str(n), str(params["rate"]), url,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), CAP_SECONDS)
        if proc.returncode != 0:
            raise anchors.Incomplete(f"{system} producer exited {proc.returncode}")
        return {int(k): v for k, v in json.loads(out.decode().strip().splitlines()[-1]).items()}

    lat = asyncio.run(fn("pickup")(dsn, n, params["rate"], spawn_producer, CAP_SECONDS))
    ms = [v * 1000 for v in lat.values()]
    return {"p50": bench_queue.pct(ms, 50), "p99": bench_queue.pct(ms, 99)}


def run_child(system: str, key: str, params: dict, url: str) -> dict:
    cmd = [sys.executable, __file__, "--one", system, key, json.dumps(params), url]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CAP_SECONDS + 120)
    except subprocess.TimeoutExpired as exc:
        raise bench_queue.CappedRun(f"{system} {key} did not finish within its cap") from exc
    if proc.returncode != 0:
        raise bench_queue.CappedRun(f"{system} {key} failed: {proc.stderr.strip().splitlines()[-3:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- orchestration
def create_databases(url: str) -> dict[str, str]:
    import psycopg2
    from sqlalchemy.engine import make_url

    from database import normalize_url
    from database.migrations import upgrade

    base = normalize_url(url)
    params = base.translate_connect_args(username="user", database="dbname")
    params.update(dict(make_url(url).query))
    admin = psycopg2.connect(**params)
    admin.autocommit = True
    urls = {}
    with admin.cursor() as cur:
        for system in SYSTEMS:
            if system in DATABASE_OF:
                continue
            cur.execute(f"DROP DATABASE IF EXISTS bench_{system} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE bench_{system}")
            urls[system] = base.set(database=f"bench_{system}").render_as_string(hide_password=False)
    admin.close()
    for system, database in DATABASE_OF.items():
        urls[system] = urls[database]
    upgrade(urls["athenaeum"])
    asyncio.run(anchors.pgq_install(anchors.libpq_url(urls["pgqueuer"])))
    asyncio.run(anchors.pro_install(anchors.libpq_url(urls["procrastinate"])))
    return urls


def versions() -> dict[str, str]:
    out = {"athenaeum": "this checkout"}
    for name in ("pgqueuer", "procrastinate", "asyncpg", "psycopg", "psycopg2-binary", "sqlalchemy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def fmt(system: str, key: str, kind: str, results: dict) -> str:
    """Median over runs, and its ratio to the best anchor (higher rate / lower p99 is better).

    Athenaeum's drain cells carry a second ratio: against the best anchor run with the same number of
    jobs in flight (pgqueuer capped, procrastinate), the comparison performance.md's target asks for.
    """
    runs = results[system].get(key)
    if not runs:
        return "—"

    def median(s: str, field: str) -> float:
        return statistics.median(r[field] for r in results[s][key])

    ran = [s for s in ANCHORS if results[s].get(key)]
    if kind == "rate":
        med = median(system, "value")
        best = max(median(s, "value") for s in ran)
        cell = f"{med:,.0f} ({med / best:.2f}x)"
        equal = [s for s in EQUAL_IN_FLIGHT if s in ran]
        if system == "athenaeum" and key.startswith("drain_") and "pgqueuer_capped" in equal:
            cell += f"; equal in flight {med / max(median(s, 'value') for s in equal):.2f}x"
        return cell
    p50, p99 = median(system, "p50"), median(system, "p99")
    best = min(median(s, "p99") for s in ran)
    return f"{p50:.1f} / {p99:.1f} (p99 {p99 / best:.2f}x)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per workload and system (median; default 3)")
    parser.add_argument("--scale", type=float, default=1.0, help="workload size factor (<1: smoke run, never written)")
    parser.add_argument("--write", metavar="PATH", help="write the table as Markdown to PATH")
    parser.add_argument("--only", help="comma-separated workload keys (e.g. drain_4,pickup_200)")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--produce", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from agent.logging import configure_logging

    configure_logging("WARNING", "json")
    if args.one:
        system, key, params, url = args.one
        print(json.dumps(measure(system, key, json.loads(params), url)))
        return 0
    if args.produce:
        system, n, rate, url = args.produce
        mod = {"pgqueuer": anchors.pgq_produce, "procrastinate": anchors.pro_produce}[system]
        print(json.dumps(asyncio.run(mod(anchors.libpq_url(url), int(n), float(rate)))))
        return 0
    if args.runs < 3 and args.write:
        print("refusing to write fewer than 3 runs", file=sys.stderr)
        return 2

    from database import DatabaseConnection, EmbeddedPostgres

    tmp = tempfile.mkdtemp(prefix="athenaeum-bench-compare-")
    server = EmbeddedPostgres(tmp)
    url = server.start()
    plan = workloads(args.scale)
    if args.only:
        keep = set(args.only.split(","))
        plan = [w for w in plan if w[0] in keep]
    results: dict[str, dict[str, list[dict]]] = {s: {k: [] for k, _, _ in plan if applies(s, k)} for s in SYSTEMS}
    started = time.monotonic()
    try:
        urls = create_databases(url)
        db = DatabaseConnection(urls["athenaeum"])
        info = bench_queue.machine(db)
        db.dispose()
        for run in range(args.runs):
            order = SYSTEMS[run % len(SYSTEMS) :] + SYSTEMS[: run % len(SYSTEMS)]
            for key, _label, params in plan:
                for system in (s for s in order if applies(s, key)):
                    t0 = time.monotonic()
                    results[system][key].append(run_child(system, key, params, urls[system]))
                    print(
                        f"run {run + 1}/{args.runs} {key:16} {system:14} {results[system][key][-1]} "
                        f"({time.monotonic() - t0:.0f}s)",
                        file=sys.stderr,
                        flush=True,
                    )
    except (bench_queue.CappedRun, anchors.Incomplete) as exc:
        print(f"refusing to report: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        f"| workload | Athenaeum | pgqueuer {versions()['pgqueuer']} (asyncpg), 10 per manager | "
        f"pgqueuer, at most c in flight | procrastinate {versions()['procrastinate']} |",
        "|---|---|---|---|---|",
    ]
    for key, label, params in plan:
        cells = [fmt(s, key, params["kind"], results) for s in SYSTEMS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    info["versions"] = ", ".join(f"{k} {v}" for k, v in versions().items())
    info["runs"] = f"{args.runs} per workload and system, medians; scale {args.scale}"
    info["wall time"] = f"{time.monotonic() - started:.0f}s"
    table = "\n".join(lines)
    print(table)
    print("\n".join(f"{k}: {v}" for k, v in info.items()))
    if args.write:
        if args.scale < 1.0 or args.only:
            print("not writing a smoke or partial run", file=sys.stderr)
            return 0
        write_report(Path(args.write), table, info)
    return 0


def write_report(path: Path, table: str, info: dict) -> None:
    text = path.read_text() if path.exists() else ""
    begin, end = "<!-- bench-compare:begin -->", "<!-- bench-compare:end -->"
    block = (
        f"{begin}\n## Athenaeum against the anchors (`make bench-compare`)\n\n"
        "Ratios in brackets are against the best anchor of the row in the same run (rates: higher is better; "
        "pickup: p99 against the lowest anchor p99, lower is better). The machine is shared and noisy: "
        "absolute figures drift by tens of percent between runs; the ratios are what to compare. "
        "pgqueuer runs twice on the drains: as shipped (c managers, batches of 10, nothing caps a manager's "
        "jobs in flight, so up to 10·c at once) and with at most c jobs in flight (one manager, "
        "`max_concurrent_tasks=c`, `batch_size=c/2`; pgqueuer cannot cap below 2, so not at c = 1). "
        "Athenaeum's `WorkerPool(c)` and procrastinate's `concurrency=c` never run more than c. "
        '"equal in flight" is Athenaeum against the best anchor holding the same number of jobs.\n\n'
        f"{table}\n\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()) + f"\n{end}\n"
    )
    if begin in text and end in text:
        text = text.split(begin)[0] + block + text.split(end, 1)[1].lstrip("\n")
    else:
        text = (text.rstrip() + "\n\n" if text else "# Benchmarks\n\n") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
