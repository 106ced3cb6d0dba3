"""Slack message embeddings for semantic search (HNSW, cosine), beside the Slack store.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "slack_message_embeddings",
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("ts", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("text_hash", sa.Text(), nullable=False),
        sa.Column("embedding_384", Vector(384), nullable=True),
        sa.Column("embedding_1536", Vector(1536), nullable=True),
        sa.Column("embedded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "ts", name=op.f("pk_slack_message_embeddings")),
    )
    for dims in (384, 1536):
        op.create_index(
            f"ix_slack_message_embeddings_embedding_{dims}",
            "slack_message_embeddings",
            [f"embedding_{dims}"],
            unique=False,
            postgresql_using="hnsw",
            postgresql_ops={f"embedding_{dims}": "vector_cosine_ops"},
        )


def downgrade() -> None:
    op.drop_table("slack_message_embeddings")
