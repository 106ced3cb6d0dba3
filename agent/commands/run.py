"""`run`: the service. Checks migrations, starts the worker pool, and drains on SIGTERM.

The Slack ingestion thread, the agent and the health server plug in here as their issues land.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import structlog

from agent.assistant_setup import build_assistant, server_specs, slack_writer_from_config
from agent.commands.context import AppContext
from agent.questions import QUESTION_EVENT_TYPES
from agent.snapshot import EventSnapshot
from agent.tools import ToolHub
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
            hint="`python athenaeum.py chat` works meanwhile",
        )
    tools = ToolHub(server_specs(ctx.config, ctx.database_url)).start()
    writer, bot_user_id = slack_writer_from_config(ctx.config)
    assistant = build_assistant(ctx.config, ctx.db, slack_writer=writer, tools=tools, bot_user_id=bot_user_id)
    if assistant.llm is None:
        _log.warning("ANTHROPIC_API_KEY is not set: questions are answered with search results only")

    def process(event: EventSnapshot) -> None:
        if event.event_type in QUESTION_EVENT_TYPES:
            assistant(event)
        else:
            log_event(event)

    pool = WorkerPool(
        size=getattr(args, "workers", None) or ctx.config.worker_pool_size,
        db_connection=ctx.db,
        process_func=process,
        config=ctx.config,
    )
    try:
        pool.run_forever()
    finally:
        tools.close()
        assistant.close()
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
