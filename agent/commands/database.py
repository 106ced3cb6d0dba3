"""`db upgrade|start|stop|url` and `doctor`: the database and the health of the set-up."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.commands.context import AppContext
from agent.event_processor import describe_error
from database import EmbeddedPostgres
from database.migrations import current_revisions, head_revisions, upgrade


def register(sub: Any) -> None:
    """Add ``db`` and ``doctor`` to the CLI."""
    db = sub.add_parser("db", help="migrations and the embedded PostgreSQL")
    dsub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    p = dsub.add_parser("upgrade", help="apply migrations (alembic upgrade head)")
    p.set_defaults(handler=cmd_db_upgrade)
    p = dsub.add_parser("start", help="start the embedded PostgreSQL (if DATABASE_URL is unset) and print its URL")
    p.set_defaults(handler=cmd_db_start)
    p = dsub.add_parser("stop", help="stop the embedded PostgreSQL")
    p.set_defaults(handler=cmd_db_stop)

    p = sub.add_parser("doctor", help="check configuration and connections and say what to fix")
    p.set_defaults(handler=cmd_doctor)


def cmd_db_upgrade(ctx: AppContext, args: argparse.Namespace) -> int:
    before = current_revisions(ctx.db.engine)
    upgrade(ctx.database_url)
    after = current_revisions(ctx.db.engine)
    print(f"schema: {', '.join(sorted(before)) or 'empty'} -> {', '.join(sorted(after))}")
    return 0


def cmd_db_start(ctx: AppContext, args: argparse.Namespace) -> int:
    if ctx.config.database_url:
        print("DATABASE_URL is set; the embedded PostgreSQL is not used.", file=sys.stderr)
    # The URL goes to stdout alone so scripts can capture it: DATABASE_URL=$(python athenaeum.py db start)
    print(ctx.database_url)
    return 0


def cmd_db_stop(ctx: AppContext, args: argparse.Namespace) -> int:
    stopped = EmbeddedPostgres(ctx.config.data_dir).stop()
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    return 0


def cmd_doctor(ctx: AppContext, args: argparse.Namespace) -> int:
    problems = 0

    def report(ok: bool, what: str, fix: str = "", *, optional: bool = False) -> None:
        nonlocal problems
        problems += 0 if ok or optional else 1
        label = "ok" if ok else ("note" if optional else "FAIL")
        print(f"[{label}] {what}" + ("" if ok or not fix else f"\n       fix: {fix}"))

    try:
        ctx.config.validate()
        report(True, "configuration is valid")
    except Exception as exc:
        report(False, "configuration", str(exc))
    try:
        healthy = ctx.db.health_check()
        report(healthy, f"database reachable at {ctx.db.safe_url}", "check DATABASE_URL and that the server runs")
    except Exception as exc:
        healthy = False
        report(False, "database", describe_error(exc))
    if healthy:
        current, heads = current_revisions(ctx.db.engine), head_revisions()
        report(
            current == heads,
            f"schema at {', '.join(sorted(current)) or 'nothing'} (code expects {', '.join(sorted(heads))})",
            "run `python athenaeum.py db upgrade`",
        )
    missing = ctx.config.missing_for_slack()
    report(
        not missing,
        "Slack tokens set" if not missing else f"Slack not configured (missing {', '.join(missing)})",
        "set SLACK_APP_TOKEN and SLACK_BOT_TOKEN (see docs/SLACK_SETUP.md); `chat` works without them",
        optional=True,
    )
    report(
        bool(ctx.config.anthropic_api_key),
        "ANTHROPIC_API_KEY set" if ctx.config.anthropic_api_key else "ANTHROPIC_API_KEY not set",
        "set it to answer with Claude; without it answers are search results only",
        optional=True,
    )
    print(f"\n{problems} problem(s) found" if problems else "\neverything looks good")
    return 1 if problems else 0
