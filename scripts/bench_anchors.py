"""The anchors of performance.md driven through their own public APIs: pgqueuer (asyncpg) and procrastinate.

Used by ``scripts/bench_compare.py`` inside the benchmark virtualenv (``.venv-bench``); neither library is a
project dependency. Every function runs one workload against an already installed schema and returns a
figure; anything short of the full workload raises :class:`Incomplete` so the caller refuses to report.

What "concurrency c" means for each system (they differ in shape, so say it):

- pgqueuer: ``c`` QueueManagers in one event loop, each on its own asyncpg connection (its unit of
  scale-out), dequeuing in batches of 10 (its default), ``mode=drain``. Nothing caps the jobs a manager
  has in flight, so this runs up to ``10·c`` jobs at once.
- pgqueuer with at most ``c`` jobs in flight (``capped=True``): one QueueManager with its own hard cap,
  ``max_concurrent_tasks=c``, and ``batch_size=c/2`` (it requires the cap to be at least twice the batch).
  This is the shape that matches ``WorkerPool(c)`` and procrastinate's ``concurrency=c``.
- procrastinate: one worker with ``concurrency=c`` (its own knob), ``wait=False`` (stop when caught up).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Any

PAYLOAD = b'{"i": 0}'


class Incomplete(RuntimeError):
    """A workload did not finish (cap reached or work missing): its figure would be a lie."""


def libpq_url(url: str) -> str:
    """The psycopg2 SQLAlchemy URL of the embedded server as a plain libpq URI (asyncpg, psycopg 3)."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


# ------------------------------------------------------------------------------------------- pgqueuer
async def _pgq_queries(dsn: str) -> tuple[Any, Any]:
    import asyncpg
    from pgqueuer import Queries
    from pgqueuer.db import AsyncpgDriver

    conn = await asyncpg.connect(dsn)
    return conn, Queries(AsyncpgDriver(conn))


async def pgq_install(dsn: str) -> None:
    conn, queries = await _pgq_queries(dsn)
    try:
        if not await queries.schema_is_installed():
            await queries.install()
    finally:
        await conn.close()


async def pgq_reset(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")
    finally:
        await conn.close()


async def pgq_enqueue_single(dsn: str, n: int) -> float:
    await pgq_reset(dsn)
    conn, queries = await _pgq_queries(dsn)
    try:
        start = time.perf_counter()
        for _ in range(n):
            await queries.enqueue("noop", PAYLOAD)  # autocommit: one statement, one transaction
        return n / (time.perf_counter() - start)
    finally:
        await conn.close()


async def pgq_enqueue_batched(dsn: str, n: int, batch: int = 100) -> float:
    await pgq_reset(dsn)
    conn, queries = await _pgq_queries(dsn)
    try:
        start = time.perf_counter()
        for _ in range(0, n, batch):
            await queries.enqueue(["noop"] * batch, [PAYLOAD] * batch, [0] * batch)
        return n / (time.perf_counter() - start)
    finally:
        await conn.close()


async def pgq_fill(dsn: str, n: int) -> None:
    await pgq_reset(dsn)
    conn, queries = await _pgq_queries(dsn)
    try:
        for offset in range(0, n, 1000):
            k = min(1000, n - offset)
            await queries.enqueue(["noop"] * k, [PAYLOAD] * k, [0] * k)
        await conn.execute("ANALYZE pgqueuer")
    finally:
        await conn.close()


async def pgq_drain(dsn: str, n: int, concurrency: int, cap: float, *, capped: bool = False) -> float:
    from pgqueuer import QueueManager
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    if capped and concurrency < 2:
        raise ValueError("pgqueuer cannot cap a manager below 2 jobs in flight (2 x batch_size of 1)")
    batch_size = concurrency // 2 if capped else 10
    max_tasks = concurrency if capped else None
    await pgq_fill(dsn, n)
    done = [0]
    managers, conns = [], []
    for _ in range(1 if capped else concurrency):
        conn, queries = await _pgq_queries(dsn)
        qm = QueueManager(queries)

        @qm.entrypoint("noop")
        async def noop(job: Job) -> None:
            done[0] += 1

        managers.append(qm)
        conns.append(conn)
    start = time.perf_counter()
    runs = [
        asyncio.create_task(
            qm.run(
                dequeue_timeout=timedelta(seconds=0.5),
                batch_size=batch_size,
                max_concurrent_tasks=max_tasks,
                mode=QueueExecutionMode.drain,
                log_aggregation_interval=timedelta(0),
            )
        )
        for qm in managers
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*runs), cap)
    except TimeoutError as exc:
        raise Incomplete(f"pgqueuer drain at c={concurrency} hit the {cap:.0f}s cap") from exc
    elapsed = time.perf_counter() - start
    left = await conns[0].fetchval("SELECT count(*) FROM pgqueuer")
    for conn in conns:
        await conn.close()
    if done[0] != n or left:
        raise Incomplete(f"pgqueuer drain at c={concurrency}: {done[0]} of {n} ran, {left} left queued")
    return n / elapsed


async def pgq_pickup(dsn: str, n: int, rate: float, spawn_producer: Any, cap: float) -> dict[int, float]:
    """Run one QueueManager; ``spawn_producer()`` (a coroutine) returns {job id: commit time}."""
    from pgqueuer import QueueManager
    from pgqueuer.models import Job

    await pgq_reset(dsn)
    conn, queries = await _pgq_queries(dsn)
    qm = QueueManager(queries)
    started: dict[int, float] = {}

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        started[int(job.id)] = time.time()

    runner = asyncio.create_task(qm.run(dequeue_timeout=timedelta(seconds=1), log_aggregation_interval=timedelta(0)))
    await asyncio.sleep(0.5)  # let it LISTEN before the producer starts (as for every system)
    committed = await spawn_producer()
    deadline = time.monotonic() + 30
    while len(started) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    qm.shutdown.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runner, 10)
    await conn.close()
    if len(started) < n:
        raise Incomplete(f"pgqueuer pickup saw {len(started)} of {n} jobs")
    return {i: started[i] - committed[i] for i in committed}


async def pgq_produce(dsn: str, n: int, rate: float) -> dict[int, float]:
    conn, queries = await _pgq_queries(dsn)
    committed: dict[int, float] = {}
    interval, next_at = 1.0 / rate, time.perf_counter()
    try:
        for _ in range(n):
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            (job_id,) = await queries.enqueue("noop", PAYLOAD)
            committed[int(job_id)] = time.time()
            next_at += interval
    finally:
        await conn.close()
    return committed


# ------------------------------------------------------------------------------------------- procrastinate
def procrastinate_app(dsn: str, pool_size: int = 4) -> Any:
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=pool_size),
    )
    return app


async def pro_install(dsn: str) -> None:
    app = procrastinate_app(dsn)
    async with app.open_async():
        exists = await app.connector.execute_query_one_async(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
        )
        if not exists["present"]:
            await app.schema_manager.apply_schema_async()


async def pro_reset(app: Any) -> None:
    await app.connector.execute_query_async("TRUNCATE procrastinate_jobs CASCADE")


async def pro_enqueue_single(dsn: str, n: int) -> float:
    app = procrastinate_app(dsn)

    @app.task(name="noop")
    async def noop(i: int) -> None:
        return None

    async with app.open_async():
        await pro_reset(app)
        start = time.perf_counter()
        for i in range(n):
            await noop.defer_async(i=i)
        return n / (time.perf_counter() - start)


async def pro_enqueue_batched(dsn: str, n: int, batch: int = 100) -> float:
    app = procrastinate_app(dsn)

    @app.task(name="noop")
    async def noop(i: int) -> None:
        return None

    async with app.open_async():
        await pro_reset(app)
        start = time.perf_counter()
        for offset in range(0, n, batch):
            await noop.batch_defer_async(*({"i": i} for i in range(offset, offset + batch)))
        return n / (time.perf_counter() - start)


async def pro_drain(dsn: str, n: int, concurrency: int, cap: float) -> float:
    app = procrastinate_app(dsn, pool_size=concurrency + 4)
    done = [0]

    @app.task(name="noop")
    async def noop(i: int) -> None:
        done[0] += 1

    async with app.open_async():
        await pro_reset(app)
        for offset in range(0, n, 1000):
            await noop.batch_defer_async(*({"i": i} for i in range(offset, min(n, offset + 1000))))
        await app.connector.execute_query_async("ANALYZE procrastinate_jobs")
        start = time.perf_counter()
        try:
            await asyncio.wait_for(
                app.run_worker_async(concurrency=concurrency, wait=False, install_signal_handlers=False), cap
            )
        except TimeoutError as exc:
            raise Incomplete(f"procrastinate drain at c={concurrency} hit the {cap:.0f}s cap") from exc
        elapsed = time.perf_counter() - start
        row = await app.connector.execute_query_one_async(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'succeeded'"
        )
    if done[0] != n or row["n"] != n:
        raise Incomplete(f"procrastinate drain at c={concurrency}: {done[0]} ran, {row['n']} succeeded of {n}")
    return n / elapsed


async def pro_pickup(dsn: str, n: int, rate: float, spawn_producer: Any, cap: float) -> dict[int, float]:
    import procrastinate

    app = procrastinate_app(dsn, pool_size=8)
    started: dict[int, float] = {}

    @app.task(name="noop", pass_context=True)
    async def noop(context: procrastinate.JobContext, i: int) -> None:
        started[int(context.job.id)] = time.time()

    async with app.open_async():
        await pro_reset(app)
        runner = asyncio.create_task(app.run_worker_async(concurrency=4, install_signal_handlers=False))
        await asyncio.sleep(0.5)
        committed = await spawn_producer()
        deadline = time.monotonic() + 30
        while len(started) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        runner.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(runner, 10)
    if len(started) < n:
        raise Incomplete(f"procrastinate pickup saw {len(started)} of {n} jobs")
    return {i: started[i] - committed[i] for i in committed}


async def pro_produce(dsn: str, n: int, rate: float) -> dict[int, float]:
    app = procrastinate_app(dsn, pool_size=2)

    @app.task(name="noop")
    async def noop(i: int) -> None:
        return None

    committed: dict[int, float] = {}
    interval, next_at = 1.0 / rate, time.perf_counter()
    async with app.open_async():
        for i in range(n):
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            job_id = await noop.defer_async(i=i)
            committed[int(job_id)] = time.time()
            next_at += interval
    return committed
