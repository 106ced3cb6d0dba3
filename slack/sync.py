"""Users and channels sync (``users.list`` + ``conversations.list``): paginated upserts, one instance at a time.

A PostgreSQL advisory lock makes concurrent syncs (several processes, the daily timer and a manual
``slack sync``) skip instead of racing. ``run`` calls :func:`start_sync_loop`: a sync at start when the tables
are empty, then one a day.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import func, select, text

from database import DatabaseConnection
from database.slack_models import SlackChannel, SlackUser
from slack.client import SlackClient
from slack.errors import SlackApiCallError, SlackAuthError, SlackError
from slack.store import upsert_channels, upsert_users

SYNC_LOCK_KEY = 0x4154_4831  # pg advisory lock id of the directory sync ("ATH1")
SYNC_INTERVAL_SECONDS = 86400.0
ALL_TYPES = "public_channel,private_channel"

_log = structlog.get_logger("athenaeum.slack.sync")


@dataclass(frozen=True)
class SyncResult:
    users: int
    channels: int
    private_included: bool


def directory_is_empty(db: DatabaseConnection) -> bool:
    """Whether no user or no channel has been synced yet."""
    with db.session() as session:
        users = session.execute(select(func.count()).select_from(SlackUser)).scalar_one()
        channels = session.execute(select(func.count()).select_from(SlackChannel)).scalar_one()
    return not users or not channels


def sync_directory(
    db: DatabaseConnection, client: SlackClient, *, team_id: str | None = None, page_size: int = 200
) -> SyncResult | None:
    """Upsert every user and channel; returns None when another sync holds the lock.

    Private channels are included when the token has ``groups:read``; without it, public ones only.
    """
    with db.engine.connect() as lock_conn:
        if not lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SYNC_LOCK_KEY}).scalar():
            _log.info("slack sync skipped: another instance is syncing")
            return None
        try:
            users = 0
            for page, _ in client.paginate("users.list", "members", limit=page_size):
                with db.session() as session:
                    users += upsert_users(session, page)
            channels, private = 0, True
            try:
                channels = _sync_channels(db, client, ALL_TYPES, team_id, page_size)
            except SlackAuthError as exc:
                if exc.code != "missing_scope":
                    raise
                private = False
                channels = _sync_channels(db, client, "public_channel", team_id, page_size)
            _log.info("slack directory synced", users=users, channels=channels, private_included=private)
            return SyncResult(users, channels, private)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SYNC_LOCK_KEY})
            lock_conn.commit()


def _sync_channels(db: DatabaseConnection, client: SlackClient, types: str, team_id: str | None, page_size: int) -> int:
    count = 0
    for page, _ in client.paginate(
        "conversations.list", "channels", limit=page_size, types=types, exclude_archived=False
    ):
        with db.session() as session:
            count += upsert_channels(session, page, team_id)
    return count


def start_sync_loop(
    db: DatabaseConnection,
    client: SlackClient,
    stop: threading.Event,
    *,
    team_id: str | None = None,
    interval_seconds: float = SYNC_INTERVAL_SECONDS,
    on_error: Callable[[BaseException], None] | None = None,
) -> threading.Thread:
    """A daemon thread: sync now if the directory is empty, then every ``interval_seconds`` until ``stop``."""

    def loop() -> None:
        first = True
        while not stop.is_set():
            try:
                if not first or directory_is_empty(db):
                    sync_directory(db, client, team_id=team_id)
            except (SlackError, SlackApiCallError, Exception) as exc:  # keep the service up; try again later
                _log.warning("slack sync failed", error=f"{type(exc).__name__}: {exc}")
                if on_error is not None:
                    on_error(exc)
            first = False
            stop.wait(interval_seconds)

    thread = threading.Thread(target=loop, name="slack-sync", daemon=True)
    thread.start()
    return thread
