"""`run`: the service. Checks migrations, starts the worker pool, and drains on SIGTERM.

The Slack ingestion thread, the agent and the health server plug in here as their issues land.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import structlog

from agent.assistant_setup import build_assistant, server_specs, slack_writer_from_config
from agent.commands.context import AppContext
from agent.errors import ConfigError
from agent.event_processor import EventProcessor
from agent.health_server import start_health_server
from agent.metrics import Metrics
from agent.questions import QUESTION_EVENT_TYPES
from agent.snapshot import EventSnapshot
from agent.tools import ToolHub
from agent.tracing import configure_tracing, traced
from agent.worker_pool import WorkerPool

_log = structlog.get_logger("athenaeum.run")


def register(sub: Any) -> None:
    """Add ``run`` to the CLI (it is also the default command)."""
    p = sub.add_parser("run", help="run the service (default command)")
    p.add_argument("--workers", type=int, default=None, help="worker threads (default WORKER_POOL_SIZE)")
    p.add_argument(
        "--http",
        type=int,
        default=None,
        metavar="PORT",
        help="receive Slack events over HTTP at POST /slack/events on PORT instead of Socket Mode "
        "(needs SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)",
    )
    p.set_defaults(handler=cmd_run)


#: Handlers for event types owned outside ``agent`` (e.g. message embeddings, owned by the Slack MCP
#: server), registered by the composition root; each factory builds a process_func when `run` starts.
_HANDLER_FACTORIES: dict[str, Callable[[AppContext], Callable[[EventSnapshot], None]]] = {}


def register_event_handler(event_type: str, factory: Callable[[AppContext], Callable[[EventSnapshot], None]]) -> None:
    """Have `run` hand events of ``event_type`` to the process_func that ``factory(ctx)`` builds."""
    _HANDLER_FACTORIES[event_type] = factory


def log_event(event: EventSnapshot) -> None:
    """The processor used until the assistant is configured: record that the event was seen."""
    _log.info("event received", event_id=event.id, event_type=event.event_type)


def start_slack(
    ctx: AppContext, http_port: int | None = None, metrics: Metrics | None = None
) -> Callable[[], None] | None:
    """Start Slack ingestion (Socket Mode, or HTTP Events API on ``http_port``) and the daily directory sync
    when Slack is configured; returns a stopper. ``metrics`` reports the Socket Mode handler's counters.

    Says clearly which variables are missing otherwise (and runs without Slack).
    """
    if http_port is not None:
        return _start_http(ctx, http_port)
    missing = ctx.config.missing_for_slack()
    if missing:
        _log.warning(
            f"Slack ingestion is off: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set",
            missing=", ".join(missing),
            fix="set SLACK_APP_TOKEN (xapp-...) and SLACK_BOT_TOKEN (xoxb-...) in the environment or .env",
            meanwhile="`python athenaeum.py chat` talks to the assistant in the terminal",
        )
        return None
    from slack.client import SlackClient
    from slack.socket_handler import start_socket_mode
    from slack.sync import start_sync_loop

    config = ctx.config
    assert config.slack_app_token and config.slack_bot_token
    socket = start_socket_mode(
        app_token=config.slack_app_token,
        bot_token=config.slack_bot_token,
        api_url=config.slack_api_url,
        db=ctx.db,
        queue_factory=lambda session: EventProcessor(session, worker_id="slack-socket", config=config),
        allowed_channels=config.allowed_channels,
        ingest_threads=config.slack_ingest_threads,
    )
    if metrics is not None:
        metrics.attach_slack(socket)
    stop_sync = threading.Event()
    start_sync_loop(
        ctx.db,
        SlackClient(config.slack_bot_token, base_url=config.slack_api_url),
        stop_sync,
        team_id=socket.ingester.bot.team_id,
    )

    def stop() -> None:
        stop_sync.set()
        socket.stop()

    return stop


def _start_http(ctx: AppContext, port: int) -> Callable[[], None]:
    from slack.http_events import start_http_events

    config = ctx.config
    missing = [
        name
        for name, value in (
            ("SLACK_SIGNING_SECRET", config.slack_signing_secret),
            ("SLACK_BOT_TOKEN", config.slack_bot_token),
        )
        if not value
    ]
    if missing:
        raise ConfigError(f"run --http needs {' and '.join(missing)}: set them in the environment or .env")
    assert config.slack_signing_secret and config.slack_bot_token
    server = start_http_events(
        port=port,
        signing_secret=config.slack_signing_secret,
        bot_token=config.slack_bot_token,
        api_url=config.slack_api_url,
        db=ctx.db,
        queue_factory=lambda session: EventProcessor(session, worker_id="slack-http", config=config),
        allowed_channels=config.allowed_channels,
    )
    return server.stop


def cmd_run(ctx: AppContext, args: argparse.Namespace) -> int:
    ctx.require_current_schema()
    configure_tracing(ctx.config.otel_exporter_otlp_endpoint, ctx.config.logfire_token)
    metrics = Metrics(db=ctx.db)
    metrics.listen()
    tools = ToolHub(server_specs(ctx.config, ctx.database_url)).start()
    writer, bot_user_id = slack_writer_from_config(ctx.config)
    assistant = build_assistant(ctx.config, ctx.db, slack_writer=writer, tools=tools, bot_user_id=bot_user_id)
    if assistant.llm is None:
        _log.warning("ANTHROPIC_API_KEY is not set: questions are answered with search results only")

    handlers = {event_type: factory(ctx) for event_type, factory in _HANDLER_FACTORIES.items()}

    def process(event: EventSnapshot) -> None:
        if event.event_type in QUESTION_EVENT_TYPES:
            assistant(event)
        elif event.event_type in handlers:
            handlers[event.event_type](event)
        else:
            log_event(event)  # raw slack.* events: their effect is already in the store

    stop_slack = start_slack(ctx, getattr(args, "http", None), metrics=metrics)
    pool = WorkerPool(
        size=getattr(args, "workers", None) or ctx.config.worker_pool_size,
        db_connection=ctx.db,
        process_func=traced(process),
        config=ctx.config,
        observer=metrics,
    )
    metrics.attach_pool(pool)
    slack = metrics.slack_source
    try:
        health = start_health_server(
            ctx.config.health_port,
            ctx.db,
            pool,
            metrics,
            admin_token=ctx.config.admin_token,
            slack_connected=getattr(slack, "is_connected", None),
        )
    except BaseException:
        if stop_slack is not None:
            stop_slack()
        tools.close()
        assistant.close()
        raise
    try:
        pool.run_forever()
    finally:
        if health is not None:
            health.stop()
        metrics.close()
        if stop_slack is not None:
            stop_slack()  # the pool has drained; stop taking events (unacked ones are redelivered)
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
