"""Rebuilding HNSW indexes concurrently once enough of their entries are dead, and cleaning up failed rebuilds.

A rebuild is ``REINDEX INDEX CONCURRENTLY``: reads and writes carry on while it runs (it waits for older
transactions, then builds a new index from the live rows and swaps it in). It cannot run in a transaction
block, so it runs on an AUTOCOMMIT connection of its own. When it fails (cancelled, lock timeout, the server
went away) PostgreSQL leaves the half-built copy behind as an INVALID index named ``<index>_ccnew`` (or the old
one as ``<index>_ccold`` if it failed while swapping); every insert keeps paying to maintain it, so each rebuild
first drops such leftovers, and a failed rebuild drops its own before raising.

When is a rebuild worth it (:class:`ReindexPolicy`)? Rebuilding costs about as much as building the index from
its live rows; waiting until dead entries reach a fifth of them bounds that to five live rows rebuilt per
deleted row, while the index never grows past ~1.2 times its fresh size between rebuilds. It is the same
trade-off as autovacuum's default ``autovacuum_vacuum_scale_factor = 0.2``. The absolute minimum (1,000 dead
entries, a few MB at most) keeps small sources from triggering rebuilds that buy nothing.

Concurrent callers are serialised by a session advisory lock per index: a second caller skips instead of
queueing a second, pointless rebuild behind the first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from database.errors import DatabaseError

#: Namespace (first key) of the advisory locks taken while rebuilding; the second key is a hash of the name.
ADVISORY_LOCK_CLASS = 0x7665  # "ve"


class VectorIndexError(DatabaseError):
    """An HNSW index could not be rebuilt (the old index is still in place and in use)."""


@dataclass(frozen=True)
class HnswIndex:
    """A vector index: its name, and the table and column it covers."""

    name: str
    table: str
    column: str


@dataclass(frozen=True)
class ReindexPolicy:
    """When a rebuild is due, and how long it may wait for locks.

    Attributes:
        min_dead_entries: never rebuild for fewer dead entries than this.
        dead_fraction: rebuild once dead entries reach this fraction of the live rows.
        lock_timeout_seconds: give up (and leave the rebuild for next time) if a lock, or an older transaction
            the rebuild must wait for, is held longer than this; ``None`` waits as long as it takes.
    """

    min_dead_entries: int = 1000
    dead_fraction: float = 0.2
    lock_timeout_seconds: float | None = 60.0

    def due(self, dead_entries: int, live_rows: int) -> bool:
        """Whether an index with these counts should be rebuilt."""
        return dead_entries >= self.min_dead_entries and dead_entries >= self.dead_fraction * live_rows


@dataclass(frozen=True)
class ReindexResult:
    """What one rebuild (or the decision not to) found and did.

    Attributes:
        index: the index name.
        rebuilt: whether ``REINDEX`` ran and succeeded.
        reason: why it was or was not rebuilt, for people.
        dead_entries: counted dead entries when it started.
        live_rows: rows with a vector in the column (``-1`` when not counted).
        bytes_before: ``pg_relation_size`` before.
        bytes_after: ``pg_relation_size`` after (equal to before when not rebuilt).
        seconds: time the ``REINDEX`` took.
        dropped_leftovers: invalid copies of the index left by failed rebuilds, dropped now.
        error: why the rebuild failed (from :func:`heal_indexes`, which reports instead of raising).
    """

    index: str
    rebuilt: bool
    reason: str
    dead_entries: int
    live_rows: int
    bytes_before: int
    bytes_after: int
    seconds: float = 0.0
    dropped_leftovers: tuple[str, ...] = ()
    error: str | None = None

    def summary(self) -> str:
        """One line for people: rebuilt or not and why, sizes before and after, leftovers dropped."""
        if self.error:
            return f"{self.index}: {self.error}"
        if self.rebuilt:
            line = (
                f"{self.index}: rebuilt in {self.seconds:.1f}s, {_mb(self.bytes_before)} -> {_mb(self.bytes_after)} "
                f"({self.reason})"
            )
        else:
            line = f"{self.index}: not rebuilt, {self.reason} ({_mb(self.bytes_before)})"
        if self.dropped_leftovers:
            line += f"; dropped invalid leftovers of a failed rebuild: {', '.join(self.dropped_leftovers)}"
        return line


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB" if size >= 0 else "size unknown"


def dead_entries(conn: Connection, index: str) -> int:
    """Entries of ``index`` counted dead since its last rebuild."""
    value = conn.execute(
        text("SELECT dead_entries FROM vector_index_churn WHERE index_name = :n"), {"n": index}
    ).scalar()
    return int(value or 0)


def index_bytes(conn: Connection, index: str) -> int:
    """The on-disk size of ``index`` (0 if it does not exist)."""
    return int(conn.execute(text("SELECT coalesce(pg_relation_size(to_regclass(:n)), 0)"), {"n": index}).scalar_one())


def invalid_leftovers(conn: Connection, index: HnswIndex) -> list[str]:
    """Invalid ``<name>_ccnew``/``_ccold`` indexes on the table, left by failed concurrent rebuilds of ``index``."""
    return list(
        conn.execute(
            text(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = to_regclass(:table) AND NOT i.indisvalid "
                "AND left(c.relname, length(:name)) = :name "
                "AND substr(c.relname, length(:name) + 1) ~ '^_cc(new|old)[0-9]*$' ORDER BY c.relname"
            ),
            {"table": index.table, "name": index.name},
        ).scalars()
    )


def drop_invalid_leftovers(conn: Connection, index: HnswIndex) -> tuple[str, ...]:
    """Drop the leftovers of failed rebuilds of ``index``; their names.

    ``conn`` must be in AUTOCOMMIT mode (``DROP INDEX CONCURRENTLY``, so writers are not blocked). Call it only
    while holding the rebuild lock: a rebuild in progress has an invalid ``_ccnew`` too.
    """
    dropped = []
    quote = conn.dialect.identifier_preparer.quote
    for name in invalid_leftovers(conn, index):
        conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(name)}"))
        dropped.append(name)
    return tuple(dropped)


def rebuild_index(
    engine: Engine, index: HnswIndex, policy: ReindexPolicy | None = None, *, force: bool = False
) -> ReindexResult:
    """Rebuild ``index`` concurrently if ``policy`` says it is due (or always, with ``force``).

    Args:
        engine: the database engine; one connection is taken from it and set to AUTOCOMMIT.
        index: the index.
        policy: thresholds and lock timeout (default :class:`ReindexPolicy`).
        force: rebuild whatever the counts (``docs reindex``).

    Raises:
        VectorIndexError: the rebuild failed; its invalid copy has been dropped, the old index still serves.
    """
    policy = policy or ReindexPolicy()
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            key = {"cls": ADVISORY_LOCK_CLASS, "name": index.name}
            if not conn.execute(text("SELECT pg_try_advisory_lock(:cls, hashtext(:name))"), key).scalar():
                size = index_bytes(conn, index.name)
                return ReindexResult(index.name, False, "another rebuild of it is running", -1, -1, size, size)
            try:
                return _rebuild_locked(conn, index, policy, force)
            finally:
                if not conn.invalidated:  # a lost connection released the lock with its session
                    conn.execute(text("SELECT pg_advisory_unlock(:cls, hashtext(:name))"), key)
    except DBAPIError as exc:
        # The database went away or refused a catalog query: the caller gets our error, with what to do.
        raise VectorIndexError(
            f"could not check or rebuild {index.name!r}: {_first_line(exc)}. Check the database and rebuild again."
        ) from exc


def _rebuild_locked(conn: Connection, index: HnswIndex, policy: ReindexPolicy, force: bool) -> ReindexResult:
    if conn.execute(text("SELECT to_regclass(:n)"), {"n": index.name}).scalar() is None:
        raise VectorIndexError(f"index {index.name!r} does not exist: run `python athenaeum.py db upgrade`")
    # Dropping a leftover waits for writers just as the rebuild does, so both run under the lock timeout.
    timeout = "0" if policy.lock_timeout_seconds is None else f"{max(1, round(policy.lock_timeout_seconds * 1000))}ms"
    conn.execute(text("SELECT set_config('lock_timeout', :t, false)"), {"t": timeout})
    try:
        return _rebuild_with_timeout(conn, index, policy, force)
    finally:
        if not conn.invalidated:
            conn.execute(text("SELECT set_config('lock_timeout', '0', false)"))


def _rebuild_with_timeout(conn: Connection, index: HnswIndex, policy: ReindexPolicy, force: bool) -> ReindexResult:
    try:
        dropped = drop_invalid_leftovers(conn, index)
    except DBAPIError as exc:
        raise VectorIndexError(
            f"could not drop the invalid leftovers of an earlier rebuild of {index.name!r}: {_first_line(exc)}. "
            "If a long-running transaction held it up, end it and rebuild again."
        ) from exc
    dead = dead_entries(conn, index.name)
    before = index_bytes(conn, index.name)
    live = -1
    if not force:
        # The count scans the table, so it is skipped while the minimum alone rules a rebuild out.
        if dead < policy.min_dead_entries:
            reason = f"{dead} dead entries, below the minimum of {policy.min_dead_entries}"
            return ReindexResult(index.name, False, reason, dead, live, before, before, 0.0, dropped)
        live = int(
            conn.execute(text(f"SELECT count(*) FROM {index.table} WHERE {index.column} IS NOT NULL")).scalar_one()
        )
        if not policy.due(dead, live):
            reason = f"{dead} dead entries, below {policy.dead_fraction:.0%} of {live} live rows"
            return ReindexResult(index.name, False, reason, dead, live, before, before, 0.0, dropped)
    started = time.monotonic()
    try:
        conn.execute(text(f"REINDEX INDEX CONCURRENTLY {conn.dialect.identifier_preparer.quote(index.name)}"))
    except DBAPIError as exc:
        raise VectorIndexError(_failure_message(conn, index, exc)) from exc
    seconds = time.monotonic() - started
    # Deletes that committed while the rebuild ran may still be in the new index: only what was counted
    # before it started is forgiven.
    conn.execute(
        text(
            "INSERT INTO vector_index_churn (index_name, dead_entries, rebuilt_at) VALUES (:n, 0, now()) "
            "ON CONFLICT (index_name) DO UPDATE SET dead_entries = greatest(vector_index_churn.dead_entries - :d, 0), "
            "rebuilt_at = now()"
        ),
        {"n": index.name, "d": dead},
    )
    after = index_bytes(conn, index.name)
    reason = "requested" if force else f"{dead} dead entries, at least {policy.dead_fraction:.0%} of {live} live rows"
    return ReindexResult(index.name, True, reason, dead, live, before, after, seconds, dropped)


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]


def _failure_message(conn: Connection, index: HnswIndex, exc: DBAPIError) -> str:
    """Drop what the failed rebuild left behind if the locks allow; say what happened and what to do."""
    try:
        cleaned = drop_invalid_leftovers(conn, index)
        leftovers = f"Dropped its unfinished copy {', '.join(cleaned)}. " if cleaned else ""
    except DBAPIError:
        # Dropping waits for the same transactions the rebuild gave up on.
        leftovers = (
            f"Its unfinished copy ({index.name}_ccnew, INVALID) could not be dropped yet; the next rebuild drops it. "
        )
    return (
        f"rebuilding {index.name!r} failed: {_first_line(exc)}. {leftovers}The old index is intact and still used. "
        "If a long-running transaction held it up, end it and rebuild again."
    )


def heal_indexes(engine: Engine, indexes: list[HnswIndex], policy: ReindexPolicy | None = None) -> list[ReindexResult]:
    """Rebuild whichever of ``indexes`` are due; a failure is reported in its result instead of raised.

    For the end of a bulk change: the change itself has committed and must not be reported as failed because
    the upkeep after it was; indexes that saw no deletes cost a few catalog queries.
    """
    results = []
    for index in indexes:
        try:
            results.append(rebuild_index(engine, index, policy))
        except VectorIndexError as exc:
            results.append(ReindexResult(index.name, False, "rebuild failed", -1, -1, -1, -1, error=str(exc)))
    return results
