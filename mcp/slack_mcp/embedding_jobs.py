"""Message embeddings, computed off the Socket Mode thread: a queue event type and a backfill.

The ingestion path enqueues ``EMBED_EVENT_TYPE`` (payload ``{}``, dedupe key per minute is enough); a worker
runs :func:`process_embed_event`, which embeds whatever messages lack an up-to-date vector. The same function
backs ``python athenaeum.py mcp embed-messages``. Both are idempotent: a message whose text hash matches its
stored vector is skipped; an edited message is re-embedded.

Switching the embedding model re-embeds every message: each update leaves a dead entry in the HNSW index of
the old vector, so the backfill ends with :func:`heal_message_indexes` (rebuild once dead entries pass the
policy, see ``database.vector_indexes``). The worker job does not: a rebuild of a large index can outlast a
lease; the next backfill, or ``mcp embed-messages``, catches up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from embeddings import EmbeddingProvider
from sqlalchemy import text

from database import DatabaseConnection
from database.slack_embedding_models import MESSAGE_VECTOR_COLUMNS
from database.vector_indexes import HnswIndex, ReindexPolicy, ReindexResult, heal_indexes

EMBED_EVENT_TYPE = "slack_embed_messages"
DEFAULT_BATCH = 256
#: Per event: bounded so one job fits comfortably in a lease; the next event carries on.
EVENT_MAX_MESSAGES = 2000
#: The HNSW index of each vector column of ``slack_message_embeddings``.
MESSAGE_HNSW_INDEXES = [
    HnswIndex(f"ix_slack_message_embeddings_{column}", "slack_message_embeddings", column)
    for column in MESSAGE_VECTOR_COLUMNS.values()
]


def heal_message_indexes(db: DatabaseConnection, policy: ReindexPolicy | None = None) -> list[ReindexResult]:
    """Rebuild the message vector indexes whose dead entries passed ``policy``; failures are in the results."""
    return heal_indexes(db.engine, MESSAGE_HNSW_INDEXES, policy)


def embed_missing_messages(
    db: DatabaseConnection, provider: EmbeddingProvider, *, batch_size: int = DEFAULT_BATCH, limit: int | None = None
) -> int:
    """Embed messages with no vector, a vector of another model, or a vector of older text; the count done."""
    column = MESSAGE_VECTOR_COLUMNS[provider.dimensions]
    done = 0
    while limit is None or done < limit:
        size = batch_size if limit is None else min(batch_size, limit - done)
        with db.session() as session:
            rows = session.execute(
                text(
                    "SELECT m.channel_id, m.ts, m.text, md5(m.text) AS hash FROM slack_messages m "
                    "LEFT JOIN slack_message_embeddings e ON e.channel_id = m.channel_id AND e.ts = m.ts "
                    "WHERE NOT m.is_deleted AND length(trim(m.text)) > 0 AND "
                    "(e.ts IS NULL OR e.model <> :model OR e.text_hash <> md5(m.text)) "
                    "ORDER BY m.created_at DESC LIMIT :n"
                ),
                {"model": provider.model, "n": size},
            ).all()
            if not rows:
                break
            vectors = provider.embed([r.text for r in rows])
            other = "embedding_1536" if column == "embedding_384" else "embedding_384"
            session.execute(
                text(
                    f"INSERT INTO slack_message_embeddings (channel_id, ts, model, text_hash, {column}) "
                    "VALUES (:c, :ts, :model, :hash, CAST(:v AS vector)) ON CONFLICT (channel_id, ts) DO UPDATE SET "
                    f"model = EXCLUDED.model, text_hash = EXCLUDED.text_hash, {column} = EXCLUDED.{column}, "
                    f"{other} = NULL, embedded_at = now()"
                ),
                [
                    {
                        "c": r.channel_id,
                        "ts": r.ts,
                        "model": provider.model,
                        "hash": r.hash,
                        "v": "[" + ",".join(f"{x:.7g}" for x in v) + "]",
                    }
                    for r, v in zip(rows, vectors, strict=True)
                ],
            )
        done += len(rows)
        if len(rows) < size:
            break
    return done


def process_embed_event(db: DatabaseConnection, provider: EmbeddingProvider, event: Any) -> int:
    """The job for one ``EMBED_EVENT_TYPE`` event: embed up to ``EVENT_MAX_MESSAGES`` pending messages."""
    return embed_missing_messages(db, provider, limit=EVENT_MAX_MESSAGES)


def make_processor(db: DatabaseConnection, provider: EmbeddingProvider) -> Callable[[Any], None]:
    """A ``process_func`` for the worker pool that handles ``EMBED_EVENT_TYPE`` events."""

    def process(event: Any) -> None:
        process_embed_event(db, provider, event)

    return process
