"""Message search: a short GIN pending list on ``slack_messages.search``.

A GIN index with ``fastupdate`` (PostgreSQL's default) collects new entries in a pending list that every
search scans linearly until a vacuum, or an insert past ``gin_pending_list_limit`` (4 MB by default), merges
it. Messages arrive all the time, so the list is rarely empty: at 10,000 pending entries (395 pages) each
lexeme's index scan took 2.8 ms instead of 0.13, and message search p50 went from 16 to 21 ms (words only:
9 to 16 ms). A 64 kB limit keeps the scan short and the inserts batched (a merge every few dozen messages),
where ``fastupdate = off`` (as on the docs index, which is written only at ingest) would update the index once
per lexeme of every message. The migration also merges what is pending now.

On a TimescaleDB hypertable this sets the parent index; each chunk has an index of its own, and whether new
chunks copy the setting is TimescaleDB's doing (not testable here: no TimescaleDB package). Check a chunk
index's ``pg_class.reloptions`` and set it there too if it is missing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: kB; see the module docstring.
PENDING_LIST_LIMIT_KB = 64


def upgrade() -> None:
    op.execute(f"ALTER INDEX ix_slack_messages_search SET (gin_pending_list_limit = {PENDING_LIST_LIMIT_KB})")
    op.execute("SELECT gin_clean_pending_list(CAST('ix_slack_messages_search' AS regclass))")


def downgrade() -> None:
    op.execute("ALTER INDEX ix_slack_messages_search RESET (gin_pending_list_limit)")
