"""`status` and `events list|show|retry|purge`: looking at and repairing the queue."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import text

from agent.commands.context import AppContext, print_json
from agent.event_processor import EventProcessor
from agent.queue_admin import get_event, list_events
from agent.usage import usage_totals
from database.models import EVENT_STATUSES
from database.slack_models import message_storage


def register(sub: Any) -> None:
    """Add ``status`` and ``events`` to the CLI."""
    p = sub.add_parser("status", help="database health, queue counts, oldest pending age")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_status)

    events = sub.add_parser("events", help="inspect, retry and purge events")
    esub = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    p = esub.add_parser("list", help="the newest events, optionally of one status")
    p.add_argument("--status", choices=EVENT_STATUSES)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_events_list)
    p = esub.add_parser("show", help="one event with its payload and attempt history")
    p.add_argument("id", type=int)
    p.set_defaults(handler=cmd_events_show)
    p = esub.add_parser("retry", help="requeue a failed event, or all of them")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("id", type=int, nargs="?")
    group.add_argument("--all-failed", action="store_true", help="requeue every failed event")
    p.set_defaults(handler=cmd_events_retry)
    p = esub.add_parser("purge", help="delete completed events older than N days (failed ones are kept)")
    p.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    p.set_defaults(handler=cmd_events_purge)


def collect_status(ctx: AppContext) -> dict[str, Any]:
    """What `status` reports, as a dict (the health server reuses it)."""
    healthy = ctx.db.health_check()
    report: dict[str, Any] = {"database": {"url": ctx.db.safe_url, "healthy": healthy}}
    if not healthy:
        return report
    with ctx.db.session() as session:
        proc = EventProcessor(session)
        report["queue"] = proc.get_queue_stats()
        report["queue"]["oldest_pending_age_seconds"] = proc.oldest_pending_age()
        workers = (
            session.execute(
                _sql(
                    "SELECT claimed_by, max(claimed_at) AS last_claim FROM events "
                    "WHERE claimed_at > now() - interval '1 hour' AND claimed_by IS NOT NULL "
                    "GROUP BY claimed_by ORDER BY 2 DESC LIMIT 50"
                )
            )
            .mappings()
            .all()
        )
        report["workers_seen_last_hour"] = len({_pool_of(w["claimed_by"]) for w in workers})
        report["assistant"] = usage_totals(session)
        report["message_storage"] = message_storage(session)
    return report


def cmd_status(ctx: AppContext, args: argparse.Namespace) -> int:
    report = collect_status(ctx)
    if args.json:
        print_json(report)
    else:
        db = report["database"]
        print(f"database   {db['url']}  {'ok' if db['healthy'] else 'UNREACHABLE'}")
        if "queue" in report:
            q = report["queue"]
            age = q["oldest_pending_age_seconds"]
            print(
                f"queue      pending {q['pending']}  processing {q['processing']}  "
                f"completed {q['completed']}  failed {q['failed']}"
            )
            print(f"oldest due {'-' if age is None else f'{age:.1f}s'}")
            print(f"workers    {report['workers_seen_last_hour']} pool(s) claimed events in the last hour")
            u = report["assistant"]
            print(
                f"assistant  {u['runs']} run(s), {u['errors']} error(s), tokens in {u['input_tokens']} "
                f"out {u['output_tokens']} cache-read {u['cache_read_tokens']}, {u['tool_calls']} tool call(s), "
                f"~${u['cost_usd']:.4f}"
            )
            print(f"messages   stored on {report['message_storage']}")
    return 0 if report["database"]["healthy"] else 1


def cmd_events_list(ctx: AppContext, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        rows = list_events(session, status=args.status, limit=args.limit)
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        err = (r["error_message"] or "").replace("\n", " ")[:80]
        print(f"{r['id']:>8}  {r['status']:<10} {r['event_type']:<28} retries={r['retry_count']}  {err}")
    if not rows:
        print("no events")
    return 0


def cmd_events_show(ctx: AppContext, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        row = get_event(session, args.id)
    if row is None:
        print(f"no event with id {args.id}")
        return 1
    print_json(row)
    return 0


def cmd_events_retry(ctx: AppContext, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        count = EventProcessor(session).retry_failed(None if args.all_failed else [args.id])
    print(f"requeued {count} failed event(s)")
    return 0 if count or args.all_failed else 1


def cmd_events_purge(ctx: AppContext, args: argparse.Namespace) -> int:
    with ctx.db.session() as session:
        count = EventProcessor(session).purge_completed(args.older_than)
    print(f"purged {count} completed event(s) older than {args.older_than:g} day(s)")
    return 0


def _pool_of(claimed_by: str) -> str:
    # claimed_by is "host:pid:pool-N:thread"; the pool is the first three parts.
    return ":".join(claimed_by.split(":")[:3])


def _sql(sql: str) -> Any:
    return text(sql)
