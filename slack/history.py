"""History import: ``conversations.history`` + ``conversations.replies``, and Slack export directories.

Resumable: history is read newest first, page by page; each page (with the threads it starts) is written in
one transaction together with the channel's progress row (``slack_import_progress.resume_before`` = the oldest
top-level ``ts`` done), so an interrupted import resumes right after the last committed page. Idempotent:
upserts skip unchanged rows, so a re-run inserts nothing new. Rate limits are handled by the client (429 ->
wait ``Retry-After``). The next page is fetched while the current one is written.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from database import DatabaseConnection
from database.slack_models import SlackChannel, SlackImportProgress
from slack.client import SlackClient
from slack.errors import SlackError
from slack.events import STORED_SUBTYPES, MalformedEventError, MessageRecord, message_record
from slack.store import upsert_channels, upsert_messages, upsert_users

#: Slack's documented maximum ``limit`` for ``conversations.history`` (999). The largest page is the default:
#: history import is bound by Slack's per-minute rate limits (Tier 3 for internal apps), so fewer, fuller pages
#: import up to five times faster than the 200 Slack suggests, and the store writes bigger batches. (Apps
#: distributed outside the Marketplace and installed since May 2025 get at most 15 per page whatever they ask;
#: cursor pagination copes with short pages.)
MAX_PAGE_SIZE = 999
PAGE_SIZE = MAX_PAGE_SIZE
EXPORT_MARK = "export"

Progress = Callable[[int], None]
_log = structlog.get_logger("athenaeum.slack.history")


@dataclass(frozen=True)
class ImportResult:
    channel_id: str
    messages: int
    resumed: bool


def _records(messages: Iterable[Mapping[str, Any]], channel_id: str, team_id: str | None) -> list[MessageRecord]:
    out = []
    for m in messages:
        if m.get("subtype") not in STORED_SUBTYPES:
            continue
        try:
            out.append(message_record(m, channel_id, team_id))
        except MalformedEventError:
            _log.warning("history message skipped", channel=channel_id, reason="no valid ts")
    return out


def _start(session: Session, channel_id: str, oldest: str | None, latest: str | None) -> str | None:
    """Create or reuse the channel's progress row; returns where to resume (None: from the newest)."""
    row = session.get(SlackImportProgress, channel_id, with_for_update=True)
    if row is not None and row.status == "running" and (row.oldest, row.latest) == (oldest, latest):
        return row.resume_before
    values = {
        "oldest": oldest,
        "latest": latest,
        "resume_before": None,
        "status": "running",
        "messages_imported": 0,
        "started_at": func.now(),
        "updated_at": func.now(),
        "completed_at": None,
    }
    stmt = pg_insert(SlackImportProgress).values(channel_id=channel_id, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["channel_id"], set_=values))
    return None


def _prefetch(pages: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``pages`` on a helper thread, ``depth`` pages ahead (HTTP overlaps the database writes).

    If the consumer stops early (an exception while writing), the helper stops after its current page.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not put(page):
                    return
            put(done)
        except BaseException as exc:  # re-raised in the consumer
            put(exc)

    threading.Thread(target=produce, name="slack-import-fetch", daemon=True).start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def import_channel(
    db: DatabaseConnection,
    client: SlackClient,
    channel_id: str,
    *,
    oldest: str | None = None,
    latest: str | None = None,
    team_id: str | None = None,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one channel's history (``oldest`` < ts < ``latest``, both optional) with every thread.

    Raises:
        SlackError: Slack failed after the client's retries; progress so far is kept for a resume.
    """
    with db.session() as session:
        resume_before = _start(session, channel_id, oldest, latest)
    bound = resume_before or latest
    params: dict[str, Any] = {"channel": channel_id, "inclusive": False}
    if oldest:
        params["oldest"] = oldest
    if bound:
        params["latest"] = bound

    def pages() -> Iterator[tuple[list[MessageRecord], str | None]]:
        for page, _ in client.paginate("conversations.history", "messages", limit=page_size, **params):
            records = _records(page, channel_id, team_id)
            for m in page:
                if m.get("reply_count") and m.get("thread_ts") == m.get("ts"):
                    records.extend(
                        r for r in _replies(client, channel_id, str(m["ts"]), team_id, page_size) if r.ts != m["ts"]
                    )
            tops = [str(m["ts"]) for m in page if isinstance(m.get("ts"), str)]
            yield records, min(tops, key=float) if tops else None

    total = 0
    for records, page_oldest in _prefetch(pages()):
        with db.session() as session:
            upsert_messages(session, records)
            values: dict[Any, Any] = {
                "messages_imported": SlackImportProgress.messages_imported + len(records),
                "updated_at": func.now(),
            }
            if page_oldest:
                values["resume_before"] = page_oldest
            session.query(SlackImportProgress).filter_by(channel_id=channel_id).update(values)
        total += len(records)
        if progress is not None:
            progress(len(records))
    with db.session() as session:
        session.query(SlackImportProgress).filter_by(channel_id=channel_id).update(
            {"status": "done", "completed_at": func.now(), "updated_at": func.now()}
        )
    _log.info("slack channel imported", channel=channel_id, messages=total, resumed=resume_before is not None)
    return ImportResult(channel_id, total, resume_before is not None)


def _replies(
    client: SlackClient, channel_id: str, ts: str, team_id: str | None, page_size: int
) -> Iterator[MessageRecord]:
    for page, _ in client.paginate("conversations.replies", "messages", limit=page_size, channel=channel_id, ts=ts):
        yield from _records(page, channel_id, team_id)


def resolve_channel(db: DatabaseConnection, client: SlackClient | None, name_or_id: str) -> str:
    """A channel id from ``C…`` or ``#name`` (looked up in the synced directory, else ``conversations.list``).

    Raises:
        SlackError: no such channel.
    """
    if not name_or_id.startswith("#"):
        return name_or_id
    name = name_or_id[1:]
    with db.session() as session:
        found = session.execute(select(SlackChannel.id).where(SlackChannel.name == name)).scalar()
    if found:
        return str(found)
    if client is not None:
        for page, _ in client.paginate("conversations.list", "channels", types="public_channel,private_channel"):
            for channel in page:
                if channel.get("name") == name:
                    return str(channel["id"])
    raise SlackError(
        f"no channel named {name_or_id!r}; run `python athenaeum.py slack sync` first", code="channel_not_found"
    )


def member_channels(db: DatabaseConnection) -> list[str]:
    """Channels to import by default: synced, not deleted, where the bot is a member (when Slack said so)."""
    with db.session() as session:
        rows = session.execute(
            select(SlackChannel.id, SlackChannel.raw)
            .where(SlackChannel.is_deleted.is_(False))
            .order_by(SlackChannel.id)
        ).all()
    return [cid for cid, raw in rows if (raw or {}).get("is_member", True)]


# --------------------------------------------------------------------------------------------- exports
def import_export(
    db: DatabaseConnection, directory: str | Path, *, progress: Progress | None = None, team_id: str | None = None
) -> dict[str, int]:
    """Import a Slack export directory (``users.json``, ``channels.json``, ``<channel>/<date>.json``).

    Resumable per channel (the last date file done is remembered), idempotent. Returns messages per channel.

    Raises:
        SlackError: the directory is not a Slack export.
    """
    root = Path(directory)
    channels_file = root / "channels.json"
    if not channels_file.is_file():
        raise SlackError(f"{root} is not a Slack export: channels.json is missing", code="bad_export")
    channels = json.loads(channels_file.read_text(encoding="utf-8"))
    users_file = root / "users.json"
    with db.session() as session:
        if users_file.is_file():
            upsert_users(session, json.loads(users_file.read_text(encoding="utf-8")))
        upsert_channels(session, channels, team_id)
    counts: dict[str, int] = {}
    for channel in channels:
        channel_id, folder = channel.get("id"), root / str(channel.get("name", ""))
        if not isinstance(channel_id, str) or not folder.is_dir():
            continue
        with db.session() as session:
            done_upto = _start(session, channel_id, EXPORT_MARK, str(root.resolve()))
        counts[channel_id] = 0
        for day in sorted(folder.glob("*.json")):
            if done_upto and day.name <= done_upto:
                continue
            records = _records(json.loads(day.read_text(encoding="utf-8")), channel_id, team_id)
            with db.session() as session:
                upsert_messages(session, records)
                session.query(SlackImportProgress).filter_by(channel_id=channel_id).update(
                    {
                        "resume_before": day.name,
                        "updated_at": func.now(),
                        "messages_imported": SlackImportProgress.messages_imported + len(records),
                    }
                )
            counts[channel_id] += len(records)
            if progress is not None:
                progress(len(records))
        with db.session() as session:
            session.query(SlackImportProgress).filter_by(channel_id=channel_id).update(
                {"status": "done", "completed_at": func.now()}
            )
    return counts
