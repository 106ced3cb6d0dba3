"""Vectors of Slack messages for semantic search (a plain table beside ``slack_messages``).

Kept apart from ``slack_messages`` because that table may be a TimescaleDB hypertable, and search indexes
belong on a non-partitioned table (architecture.md). ``text_hash`` is the MD5 of the text that was embedded,
so an edited message is found and re-embedded by the backfill.
"""

from __future__ import annotations

from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import DateTime, Index, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from database.models import Base

#: Vector columns by dimension (as for the docs index).
MESSAGE_VECTOR_COLUMNS = {384: "embedding_384", 1536: "embedding_1536"}


class SlackMessageEmbedding(Base):
    """The embedding of one message, with the model that made it."""

    __tablename__ = "slack_message_embeddings"

    channel_id: Mapped[str] = mapped_column(Text, primary_key=True)
    ts: Mapped[str] = mapped_column(Text, primary_key=True)
    model: Mapped[str] = mapped_column(Text, nullable=False)
    text_hash: Mapped[str] = mapped_column(Text, nullable=False)
    embedding_384: Mapped[list[float] | None] = mapped_column(Vector(384))
    embedding_1536: Mapped[list[float] | None] = mapped_column(Vector(1536))
    embedded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (
        Index(
            "ix_slack_message_embeddings_embedding_384",
            "embedding_384",
            postgresql_using="hnsw",
            postgresql_ops={"embedding_384": "vector_cosine_ops"},
        ),
        Index(
            "ix_slack_message_embeddings_embedding_1536",
            "embedding_1536",
            postgresql_using="hnsw",
            postgresql_ops={"embedding_1536": "vector_cosine_ops"},
        ),
    )
