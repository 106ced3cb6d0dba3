#!/usr/bin/env python3
"""Athenaeum's command line and composition root: ``python athenaeum.py [command]``.

The default command is ``run``. Every command has ``--help``. This file is the only place that
builds the configuration from the environment and wires the packages together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
# mcp/ is a folder of server packages, not a package: put it on the path (it must never shadow the SDK).
if str(ROOT / "mcp") not in sys.path:
    sys.path.insert(1, str(ROOT / "mcp"))

import docs_cli  # noqa: E402  (mcp/docs_cli.py)
import mcp_cli  # noqa: E402  (mcp/mcp_cli.py)

from agent.commands import chat as chat_commands  # noqa: E402
from agent.commands import database as database_commands  # noqa: E402
from agent.commands import queue as queue_commands  # noqa: E402
from agent.commands import run as run_commands  # noqa: E402
from agent.commands import slack as slack_commands  # noqa: E402
from agent.commands.context import AppContext  # noqa: E402
from agent.config import Config  # noqa: E402
from agent.logging import configure_logging  # noqa: E402
from database.errors import AthenaeumError  # noqa: E402

COMMAND_MODULES = [run_commands, chat_commands, queue_commands, database_commands, slack_commands, docs_cli, mcp_cli]


def _embedding_worker(ctx: AppContext) -> Callable[[Any], None]:
    """The worker side of Slack message embeddings (owned by the Slack MCP server, wired here)."""
    from embeddings import build_provider
    from slack_mcp.embedding_jobs import make_processor

    config = ctx.config
    provider = build_provider(
        config.embedding_provider,
        openai_api_key=config.openai_api_key,
        openai_base_url=config.openai_base_url,
        max_tokens=config.embedding_max_tokens,
    )
    return make_processor(ctx.db, provider)


run_commands.register_event_handler("slack_embed_messages", _embedding_worker)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="athenaeum",
        description="Athenaeum: a Slack-native AI assistant on a PostgreSQL event queue.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, configure logging, run the command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    config = Config()
    configure_logging(config.log_level, config.log_format)
    try:
        config.validate()
        return int(args.handler(AppContext(config), args))
    except AthenaeumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
