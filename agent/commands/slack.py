"""`slack sync` and `slack import`: the users/channels directory and historical messages."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from agent.commands.context import AppContext
from agent.errors import ConfigError
from slack.client import SlackClient
from slack.formats import datetime_to_ts
from slack.history import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    import_channel,
    import_export,
    member_channels,
    resolve_channel,
)
from slack.sync import directory_is_empty, sync_directory


def register(sub: Any) -> None:
    """Add ``slack sync`` and ``slack import`` to the CLI."""
    slack = sub.add_parser("slack", help="Slack directory sync and history import")
    ssub = slack.add_subparsers(dest="slack_command", required=True, metavar="COMMAND")
    p = ssub.add_parser("sync", help="upsert users and channels (users.list, conversations.list)")
    p.set_defaults(handler=cmd_sync)
    p = ssub.add_parser(
        "import",
        help="import message history (resumable, idempotent)",
        description="Import history with conversations.history + conversations.replies, or from a Slack "
        "export directory. Interrupted imports resume where they stopped; re-runs add nothing new.",
    )
    p.add_argument(
        "--channel",
        action="append",
        metavar="C…|#name",
        help="channel id or #name (repeatable); default: every channel the bot is in",
    )
    p.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="only messages from this day on")
    p.add_argument("--until", type=_date, metavar="YYYY-MM-DD", help="only messages before this day")
    p.add_argument("--export", metavar="DIR", help="read a Slack export directory instead of the API")
    p.add_argument(
        "--page-size",
        type=_page_size,
        default=PAGE_SIZE,
        help=f"messages per API page (1-{MAX_PAGE_SIZE}, Slack's maximum; default {PAGE_SIZE})",
    )
    p.set_defaults(handler=cmd_import)


def _page_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from exc
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_PAGE_SIZE} (Slack's maximum), got {size}")
    return size


def _date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-01-31") from exc


def _client(ctx: AppContext) -> SlackClient:
    if not ctx.config.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: set it to the bot token (xoxb-...) in the environment or .env")
    return SlackClient(ctx.config.slack_bot_token, base_url=ctx.config.slack_api_url)


def cmd_sync(ctx: AppContext, args: argparse.Namespace) -> int:
    ctx.require_current_schema()
    client = _client(ctx)
    result = sync_directory(ctx.db, client, team_id=client.auth_test().team_id)
    if result is None:
        print("another instance is syncing right now; nothing done")
        return 1
    scope = "public and private" if result.private_included else "public (no groups:read scope)"
    print(f"synced {result.users} user(s) and {result.channels} {scope} channel(s)")
    return 0


def cmd_import(ctx: AppContext, args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ctx.require_current_schema()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} msg/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("importing", total=None, rate="-")

        def advance(n: int) -> None:
            bar.advance(task, n)
            t = bar.tasks[task]
            bar.update(task, rate=f"{t.completed / t.elapsed:,.0f}" if t.elapsed else "-")

        if args.export:
            counts = import_export(ctx.db, args.export, progress=advance)
            total = sum(counts.values())
            print(f"imported {total} message(s) from {len(counts)} channel(s) of {args.export}")
            _schedule_embeddings(ctx, total)
            return 0
        client = _client(ctx)
        team = client.auth_test().team_id
        if args.channel:
            channels = [resolve_channel(ctx.db, client, c) for c in args.channel]
        else:
            if directory_is_empty(ctx.db):
                sync_directory(ctx.db, client, team_id=team)
            channels = member_channels(ctx.db)
        oldest = datetime_to_ts(args.since) if args.since else None
        latest = datetime_to_ts(args.until) if args.until else None
        total = 0
        for channel in channels:
            bar.update(task, description=f"importing {channel}")
            result = import_channel(
                ctx.db,
                client,
                channel,
                oldest=oldest,
                latest=latest,
                team_id=team,
                page_size=args.page_size,
                progress=advance,
            )
            total += result.messages
    print(f"imported {total} message(s) from {len(channels)} channel(s)")
    _schedule_embeddings(ctx, total)
    return 0


def _schedule_embeddings(ctx: AppContext, imported: int) -> None:
    # Imported messages get their vectors from a worker (`run`), or now with `mcp embed-messages`.
    if imported:
        from agent.event_processor import EventProcessor
        from slack.ingest import schedule_embeddings

        with ctx.db.session() as session:
            schedule_embeddings(EventProcessor(session))
