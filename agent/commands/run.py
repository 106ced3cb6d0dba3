"""`run`: the service. Checks migrations, starts the worker pool, and drains on SIGTERM.

The Slack ingestion thread, the agent and the health server plug in here as their issues land.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import structlog

from agent.commands.context import AppContext
from agent.health_server import start_health_server
from agent.metrics import Metrics
from agent.snapshot import EventSnapshot
from agent.tracing import configure_tracing, traced
from agent.worker_pool import WorkerPool

_log = structlog.get_logger("athenaeum.run")


def register(sub: Any) -> None:
    """Add ``run`` to the CLI (it is also the default command)."""
    p = sub.add_parser("run", help="run the service (default command)")
    p.add_argument("--workers", type=int, default=None, help="worker threads (default WORKER_POOL_SIZE)")
    p.set_defaults(handler=cmd_run)


def log_event(event: EventSnapshot) -> None:
    """The processor used until the assistant is configured: record that the event was seen."""
    _log.info("event received", event_id=event.id, event_type=event.event_type)


def cmd_run(ctx: AppContext, args: argparse.Namespace) -> int:
    ctx.require_current_schema()
    missing = ctx.config.missing_for_slack()
    if missing:
        _log.warning(
            "Slack is not configured; running workers only",
            missing=", ".join(missing),
            fix="set SLACK_APP_TOKEN and SLACK_BOT_TOKEN (docs/SLACK_SETUP.md)",
        )
    configure_tracing(ctx.config.otel_exporter_otlp_endpoint, ctx.config.logfire_token)
    metrics = Metrics(db=ctx.db)
    metrics.listen()
    pool = WorkerPool(
        size=getattr(args, "workers", None) or ctx.config.worker_pool_size,
        db_connection=ctx.db,
        process_func=traced(log_event),
        config=ctx.config,
        observer=metrics,
    )
    metrics.attach_pool(pool)
    health = start_health_server(ctx.config.health_port, ctx.db, pool, metrics, admin_token=ctx.config.admin_token)
    try:
        pool.run_forever()
    finally:
        if health is not None:
            health.stop()
        metrics.close()
    stuck = pool.get_stats()["in_flight"]
    if stuck:
        # Their leases are released and another worker may already run them; waiting for threads
        # that ignore `lease_lost` would keep the process from exiting (executor threads are joined
        # at interpreter exit), so leave now.
        _log.warning("exiting with jobs still running; their leases were released", in_flight=stuck)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
