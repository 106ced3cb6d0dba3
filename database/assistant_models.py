"""ORM models of the assistant: usage per answered event, the reply ledger, and local chat conversations.

Alembic revision ``0003`` creates these tables; a test keeps models and migrations equal.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Integer, Numeric, Text, func
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from database.models import Base

REPLY_STATES = ("intent", "posted", "final", "unknown", "failed")


class AgentRun(Base):
    """One attempt of the assistant at one event: tokens, tools, time and estimated cost."""

    __tablename__ = "agent_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    request_key: Mapped[str] = mapped_column(Text, nullable=False)
    mode: Mapped[str] = mapped_column(Text, nullable=False)  # 'llm' or 'retrieval'
    model: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False)  # 'ok', 'turn_limit', 'error'
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql_text("0"))
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql_text("0"))
    cache_creation_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql_text("0"))
    cache_read_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql_text("0"))
    llm_calls: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql_text("0"))
    tool_calls: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql_text("0"))
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql_text("0"))
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), nullable=False, server_default=sql_text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class ReplyLedger(Base):
    """Where the reply to one request lives and how far it got: ``intent -> posted(ts) -> final``.

    Written before any Slack call. ``unknown`` marks a post whose outcome we could not see (a reset
    connection): the next attempt looks in the thread before posting again. ``delivered_chars`` fences
    streaming, whose appends are not idempotent.
    """

    __tablename__ = "reply_ledger"

    request_key: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    channel_id: Mapped[str] = mapped_column(Text, nullable=False)
    thread_ts: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, nullable=False, server_default=sql_text("'intent'"))
    message_ts: Mapped[str | None] = mapped_column(Text)
    extra_ts: Mapped[list[str]] = mapped_column(JSONB, nullable=False, server_default=sql_text("'[]'::jsonb"))
    stream_mode: Mapped[str | None] = mapped_column(Text)
    streaming: Mapped[bool] = mapped_column(nullable=False, server_default=sql_text("false"))
    delivered_chars: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql_text("0"))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql_text("0"))
    reconciled: Mapped[int] = mapped_column(Integer, nullable=False, server_default=sql_text("0"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (
        CheckConstraint("state IN ('intent', 'posted', 'final', 'unknown', 'failed')", name="state_valid"),
    )


class ChatMessage(Base):
    """One turn of a local (terminal) conversation, stored like a message of a Slack thread."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)  # 'user' or 'assistant'
    text: Mapped[str] = mapped_column(Text, nullable=False)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=sql_text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant')", name="role_valid"),
        Index("ix_chat_messages_conversation", "conversation_id", "id"),
    )
