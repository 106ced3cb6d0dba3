"""ORM models of the Slack store: messages, channels, users, reactions, import progress.

``slack_messages`` is keyed by ``(channel_id, ts, created_at)``: ``created_at`` is derived from ``ts``
(so the key is as unique as ``(channel_id, ts)``), and including it lets the table become a TimescaleDB
hypertable partitioned on ``created_at``, whose unique keys must contain the time column. Migration 0002
makes it a hypertable when TimescaleDB is available; :func:`message_storage` says which happened.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    DateTime,
    Index,
    Integer,
    Text,
    func,
)
from sqlalchemy import (
    text as sa_text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, Session, mapped_column

from database.models import Base

#: The text search configuration of ``slack_messages.search`` (queries must use the same one).
SEARCH_CONFIG = "english"


class SlackMessage(Base):
    """One Slack message (a thread root, a reply, a bot post...), as last seen."""

    __tablename__ = "slack_messages"

    channel_id: Mapped[str] = mapped_column(Text, primary_key=True)
    ts: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    team_id: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    bot_id: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, nullable=False, server_default=sa_text("''"))
    thread_ts: Mapped[str | None] = mapped_column(Text)
    subtype: Mapped[str | None] = mapped_column(Text)
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sa_text("false"))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reply_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sa_text("0"))
    latest_reply: Mapped[str | None] = mapped_column(Text)
    files: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=sa_text("'{}'::jsonb"))
    search: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(f"to_tsvector('{SEARCH_CONFIG}'::regconfig, text)", persisted=True)
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (
        # Thread context: every reply of (channel, thread_ts).
        Index("ix_slack_messages_thread", "channel_id", "thread_ts", postgresql_where=sa_text("thread_ts IS NOT NULL")),
        Index("ix_slack_messages_user_id", "user_id"),
        # A short pending list: every search scans it linearly (revision 0009).
        Index(
            "ix_slack_messages_search",
            "search",
            postgresql_using="gin",
            postgresql_with={"gin_pending_list_limit": 64},
        ),
    )


class SlackChannel(Base):
    """A conversation the workspace has (public or private channel, DM, group DM)."""

    __tablename__ = "slack_channels"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    team_id: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    topic: Mapped[str | None] = mapped_column(Text)
    purpose: Mapped[str | None] = mapped_column(Text)
    is_private: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sa_text("false"))
    is_archived: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sa_text("false"))
    is_ext_shared: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sa_text("false"))
    is_im: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sa_text("false"))
    is_mpim: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sa_text("false"))
    is_deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sa_text("false"))
    member_count: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=sa_text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (Index("ix_slack_channels_name", "name"),)


class SlackUser(Base):
    """A workspace member (people and bots)."""

    __tablename__ = "slack_users"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    team_id: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    real_name: Mapped[str | None] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    tz: Mapped[str | None] = mapped_column(Text)
    is_bot: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sa_text("false"))
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=sa_text("false"))
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=sa_text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class SlackReaction(Base):
    """One user's reaction ``name`` on one message."""

    __tablename__ = "slack_reactions"

    channel_id: Mapped[str] = mapped_column(Text, primary_key=True)
    ts: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class SlackImportProgress(Base):
    """How far ``slack import`` got in one channel, so an interrupted import resumes where it stopped.

    History is read newest first; ``resume_before`` is the oldest top-level ``ts`` fully imported (with
    its thread) in the current run, so a resume asks for messages older than it. ``oldest``/``latest``
    are the bounds the run was started with; a run with other bounds starts over.
    """

    __tablename__ = "slack_import_progress"

    channel_id: Mapped[str] = mapped_column(Text, primary_key=True)
    oldest: Mapped[str | None] = mapped_column(Text)
    latest: Mapped[str | None] = mapped_column(Text)
    resume_before: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=sa_text("'running'"))
    messages_imported: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=sa_text("0"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def message_storage(session: Session) -> str:
    """``"timescaledb"`` when ``slack_messages`` is a hypertable, else ``"postgresql"`` (what ``status`` shows)."""
    has_extension = session.execute(
        sa_text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')")
    ).scalar_one()
    if not has_extension:
        return "postgresql"
    is_hypertable = session.execute(
        sa_text(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'slack_messages')"
        )
    ).scalar_one()
    return "timescaledb" if is_hypertable else "postgresql"
