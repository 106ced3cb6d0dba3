"""EventProcessor: enqueue, claim, heartbeat, complete, fail/retry, reclaim, and queue statistics.

Transactions: the calls that move an event between workers (``claim_event``, ``heartbeat``,
``complete_event``, ``fail_event``, ``release_event``, ``reclaim_expired``) commit at once, because
their point is to be visible to every other worker immediately and to hold no row lock while a job
runs. The calls that add or administer events (``enqueue_event(s)``, ``retry_failed``,
``purge_completed``) join the caller's transaction, so an enqueue can commit atomically with other
writes (a Slack message upsert, say); the caller's session scope commits them.

Every write that depends on owning a lease matches ``lease_token`` (the fencing token) and
``status = 'processing'``: a worker whose lease expired changes nothing and gets ``LeaseLostError``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    Text,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from agent import wakeup
from agent.backoff import retry_delay_seconds
from agent.config import QueueSettings
from agent.errors import LeaseLostError, PermanentError
from agent.observers import notify_enqueued
from agent.redaction import redact
from agent.snapshot import EventSnapshot
from database.driver_sql import DriverStatement
from database.models import EVENT_STATUSES, Event

ERROR_MESSAGE_MAX_CHARS = 4000
RECLAIM_BATCH = 1000

_now = func.statement_timestamp  # the time of this statement, not of a transaction begun earlier

_EVENT_COLUMNS = [c for c in Event.__table__.c]
# What a snapshot reads: a claim does not ship the attempt history (it grows with every retry) back.
_SNAPSHOT_COLUMNS = [c for c in Event.__table__.c if c.name not in ("attempt_log", "processed_at")]


def _seconds(value: float) -> Any:
    return func.make_interval(0, 0, 0, 0, 0, 0, literal(float(value)))


def _interval_seconds(name: str) -> Any:
    return func.make_interval(0, 0, 0, 0, 0, 0, bindparam(name, type_=Float))


# The hot statements are built once with bind parameters: building and cache-keying a statement per
# call cost more client CPU than the round trip to PostgreSQL.
_CLAIM = (
    update(Event)
    .where(
        Event.id.in_(
            select(Event.id)
            .where(Event.status == "pending", Event.run_after <= _now())
            .order_by(Event.run_after, Event.id)
            .limit(bindparam("limit", type_=Integer))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(
        status="processing",
        claimed_by=bindparam("worker_id", type_=Text),
        claimed_at=_now(),
        visibility_timeout=_now() + _interval_seconds("lease_seconds"),
        lease_token=func.nextval("events_lease_token_seq"),
        attempts=Event.attempts + 1,
    )
    .returning(*_SNAPSHOT_COLUMNS)
)
# One INSERT shape for every enqueue: a NULL key never conflicts, a NULL run_after means now.
_NEW_EVENT = {
    "event_type": bindparam("event_type", type_=Text),
    "payload": bindparam("payload", type_=JSONB),
    "dedupe_key": bindparam("dedupe_key", type_=Text),
}
_INSERT = (
    pg_insert(Event)
    .values(**_NEW_EVENT, run_after=func.coalesce(bindparam("run_after", type_=Event.run_after.type), _now()))
    .on_conflict_do_nothing(index_elements=[Event.dedupe_key])
)
_INSERT_ONE = _INSERT.returning(*_EVENT_COLUMNS)
# The hand-over insert (agent/wakeup.py): the row is born claimed by a local pool's reserved slot, with
# the same lease, token and attempt count a claim would give it.
_INSERT_CLAIMED = (
    pg_insert(Event)
    .values(
        **_NEW_EVENT,
        run_after=_now(),
        status="processing",
        claimed_by=bindparam("worker_id", type_=Text),
        claimed_at=_now(),
        visibility_timeout=_now() + _interval_seconds("lease_seconds"),
        lease_token=func.nextval("events_lease_token_seq"),
        attempts=1,
    )
    .on_conflict_do_nothing(index_elements=[Event.dedupe_key])
    .returning(*_EVENT_COLUMNS)
)
# A batch travels as four parallel arrays: one statement and one round trip for 1 or 1,000 events, with
# each payload serialised once (multi-row VALUES cost a bind per column per row). Rows are inserted in
# the caller's order (WITH ORDINALITY), so ids come back in that order; server defaults fill the rest.
_INSERT_ARRAYS = text(
    "INSERT INTO events (event_type, payload, dedupe_key, run_after) "
    "SELECT t.event_type, t.payload::jsonb, t.dedupe_key, coalesce(t.run_after, statement_timestamp()) "
    "FROM unnest(CAST(:event_types AS text[]), CAST(:payloads AS text[]), CAST(:dedupe_keys AS text[]), "
    "CAST(:run_afters AS timestamptz[])) WITH ORDINALITY AS t(event_type, payload, dedupe_key, run_after, n) "
    "ORDER BY t.n ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, event_type"
)
_BY_KEY = select(*_EVENT_COLUMNS).where(Event.dedupe_key == bindparam("dedupe_key", type_=Text))


def _uniform(row: dict[str, Any]) -> dict[str, Any]:
    return {"dedupe_key": None, "run_after": None, **row}


# (id, lease_token) pairs as two arrays: one statement shape serves a batch of any size.
_PAIRS = (
    func.unnest(bindparam("ids", type_=ARRAY(BigInteger)), bindparam("tokens", type_=ARRAY(BigInteger)))
    .table_valued("id", "token")
    .render_derived()
)
# ``id = ANY(ids)`` is redundant with the pair test but gives the planner a primary-key lookup to start
# from; without it PostgreSQL may scan every 'processing' row and test each against the pairs.
_OWNED = (
    (Event.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    & tuple_(Event.id, Event.lease_token).in_(select(_PAIRS.c.id, _PAIRS.c.token))
    & (Event.status == "processing")
)
_HEARTBEAT = (
    update(Event)
    .where(_OWNED)
    .values(visibility_timeout=_now() + _interval_seconds("lease_seconds"))
    .returning(Event.id, Event.visibility_timeout)
)
_RELEASE = (
    update(Event)
    .where(_OWNED)
    .values(status="pending", run_after=_now(), visibility_timeout=None, lease_token=None, claimed_by=None)
    .returning(Event.id)
)
_COMPLETE = (
    update(Event)
    .where(_OWNED)
    .values(status="completed", processed_at=_now(), visibility_timeout=None)
    .returning(Event.id)
)

# The three statements a busy pool runs per cycle skip SQLAlchemy's execute path (database/driver_sql.py).
_CLAIM_FAST = DriverStatement(_CLAIM)
_COMPLETE_FAST = DriverStatement(_COMPLETE)
_HEARTBEAT_FAST = DriverStatement(_HEARTBEAT)


def _pairs(events: Sequence[EventSnapshot]) -> dict[str, list[int | None]]:
    return {"ids": [e.id for e in events], "tokens": [e.lease_token for e in events]}


def _log_entry(**fields: Any) -> Any:
    return bindparam(None, [fields], type_=JSONB)


def describe_error(error: BaseException | str) -> str:
    """A one-line, secret-free description of a failure, fit to store and show."""
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    else:
        text = str(error)
    text = redact(text)
    if len(text) > ERROR_MESSAGE_MAX_CHARS:
        text = text[: ERROR_MESSAGE_MAX_CHARS - 20] + " …[truncated]"
    return text


class EventProcessor:
    """Queue operations over one SQLAlchemy ``Session``, on behalf of one worker.

    Args:
        session: the session to work in (one per thread; never shared).
        worker_id: recorded in ``claimed_by``; make it unique per worker (host, pid, thread).
        visibility_timeout: lease length in seconds.
        retry_base_delay: seconds before the first retry; doubles each retry.
        max_retry_count: retries after the first attempt before an event is ``failed``.
        config: a :class:`~agent.config.QueueSettings` (or a ``Config``) supplying all three at once;
            explicit keyword arguments win.
    """

    def __init__(
        self,
        session: Session,
        worker_id: str = "worker",
        *,
        visibility_timeout: float | None = None,
        retry_base_delay: float | None = None,
        max_retry_count: int | None = None,
        config: Any = None,
    ) -> None:
        settings = QueueSettings.from_config(config)
        self.session = session
        self.worker_id = worker_id
        self.visibility_timeout = float(
            visibility_timeout if visibility_timeout is not None else settings.visibility_timeout
        )
        self.retry_base_delay = float(retry_base_delay if retry_base_delay is not None else settings.retry_base_delay)
        self.max_retry_count = int(max_retry_count if max_retry_count is not None else settings.max_retry_count)

    # ----------------------------------------------------------------------------- producing
    def enqueue_event(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        key: str | None = None,
        run_after: datetime | None = None,
    ) -> EventSnapshot:
        """Add an event, or return the existing one when ``key`` was seen before (nothing is inserted,
        and the returned snapshot has ``duplicate=True``).

        Joins the caller's transaction; workers in this process are woken when it commits. When a pool in
        this process works on the same database, has a free slot and nothing else due, the event is
        inserted already claimed by that pool and handed to a worker when the transaction commits (the
        returned snapshot then says ``processing``); see :mod:`agent.wakeup`.

        Raises:
            ValueError: ``event_type`` is empty or ``payload`` is not JSON-serialisable.
        """
        row = _uniform(self._validated_row(event_type, payload, key, run_after))
        reservation = self._reserve_local_slot() if run_after is None else None
        if reservation is None:
            result = self._run(_INSERT_ONE, **row).mappings().first()
        else:
            try:
                result = (
                    self._run(
                        _INSERT_CLAIMED,
                        **row,
                        worker_id=reservation.worker_id,
                        lease_seconds=reservation.lease_seconds,
                    )
                    .mappings()
                    .first()
                )
            except BaseException:
                reservation.cancel()
                raise
            if result is None:
                reservation.cancel()
        if result is None:  # duplicate key: report the event that already exists
            existing = self._run(_BY_KEY, dedupe_key=key).mappings().one()
            return EventSnapshot.from_row(existing, duplicate=True)
        snapshot = EventSnapshot.from_row(result)
        if reservation is None:
            self._wake_after_commit()
        else:
            self._hand_over_after_commit(reservation, snapshot)
        notify_enqueued(event_type, 1)
        return snapshot

    def enqueue_events(self, events: Iterable[Mapping[str, Any] | tuple[Any, ...]]) -> list[int]:
        """Add many events in one statement; returns the ids inserted (duplicate keys are skipped).

        Each item is a mapping with ``event_type``, ``payload`` and optionally ``key``/``run_after``,
        or a tuple ``(event_type, payload[, key[, run_after]])``.
        """
        rows = []
        for item in events:
            if isinstance(item, Mapping):
                fields = dict(item)
            else:
                fields = dict(zip(("event_type", "payload", "key", "run_after"), item, strict=False))
            rows.append(
                self._validated_row(fields["event_type"], fields["payload"], fields.get("key"), fields.get("run_after"))
            )
        if not rows:
            return []
        arrays = {
            "event_types": [r["event_type"] for r in rows],
            "payloads": [json.dumps(r["payload"]) for r in rows],
            "dedupe_keys": [r.get("dedupe_key") for r in rows],
            "run_afters": [r.get("run_after") for r in rows],
        }
        inserted = self._run(_INSERT_ARRAYS, **arrays).all()
        ids = [row[0] for row in inserted]
        if ids:
            self._wake_after_commit()
            for event_type, count in Counter(row[1] for row in inserted).items():
                notify_enqueued(event_type, count)
        return ids

    # ----------------------------------------------------------------------------- consuming
    def claim_event(self) -> EventSnapshot | None:
        """Claim the next due event (FIFO by due time) and commit at once; ``None`` if nothing is due."""
        claimed = self.claim_events(1)
        return claimed[0] if claimed else None

    def claim_events(self, limit: int) -> list[EventSnapshot]:
        """Claim up to ``limit`` due events in one statement, each with its own lease and token."""
        names, rows = _CLAIM_FAST.fetchall(
            self.session.connection(), limit=limit, worker_id=self.worker_id, lease_seconds=self.visibility_timeout
        )
        self.session.commit()
        snapshots = [EventSnapshot.from_row(dict(zip(names, row, strict=True))) for row in rows]
        snapshots.sort(key=lambda e: (e.run_after, e.id))
        return snapshots

    def heartbeat(self, event: EventSnapshot) -> datetime:
        """Extend the lease of a running event; returns the new expiry.

        Raises:
            LeaseLostError: the lease expired or belongs to someone else now.
        """
        alive = self.heartbeat_many([event])
        if event.id not in alive:
            raise LeaseLostError(f"lease on event {event.id} was lost; stop working on it")
        return alive[event.id]

    def heartbeat_many(self, events: Sequence[EventSnapshot]) -> dict[int, datetime]:
        """Extend several leases in one statement; returns ``{id: new expiry}`` for those still held."""
        if not events:
            return {}
        _, rows = _HEARTBEAT_FAST.fetchall(
            self.session.connection(), lease_seconds=self.visibility_timeout, **_pairs(events)
        )
        self.session.commit()
        return {row[0]: row[1] for row in rows}

    def complete_event(self, event: EventSnapshot) -> None:
        """Mark a claimed event ``completed`` and commit.

        Raises:
            LeaseLostError: the lease was lost; the event was not changed.
        """
        if event.id not in self.complete_events([event]):
            raise LeaseLostError(f"lease on event {event.id} was lost before completion; nothing changed")

    def complete_events(self, events: Sequence[EventSnapshot]) -> set[int]:
        """Complete several claimed events in one statement; returns the ids whose lease still held."""
        if not events:
            return set()
        _, rows = _COMPLETE_FAST.fetchall(self.session.connection(), **_pairs(events))
        done = {row[0] for row in rows}
        self.session.commit()
        return done

    def fail_event(self, event: EventSnapshot, error: BaseException | str, *, permanent: bool | None = None) -> str:
        """Record a failed attempt and commit; returns the new status (``pending`` or ``failed``).

        The event is retried after ``retry_base_delay · 2^(n-1)`` seconds (with ±10 % jitter) until
        ``max_retry_count`` retries are used; then, or at once when the error is permanent (a
        :class:`PermanentError`, or ``permanent=True``), it ends ``failed`` with the error.

        Raises:
            LeaseLostError: the lease was lost; the event was not changed.
        """
        if permanent is None:
            permanent = isinstance(error, PermanentError)
        message = describe_error(error)
        retry_number = event.retry_count + 1
        give_up = permanent or retry_number > self.max_retry_count
        values: dict[str, Any] = {
            "error_message": message,
            "visibility_timeout": None,
            "lease_token": None,
        }
        outcome = "failed" if give_up else "retry"
        entry = {
            "attempt": event.attempt,
            "at": datetime.now(UTC).isoformat(),
            "worker": self.worker_id,
            "error": message,
            "outcome": outcome,
            "permanent": bool(permanent),
        }
        if give_up:
            values.update(status="failed", processed_at=_now())
        else:
            delay = retry_delay_seconds(retry_number, self.retry_base_delay)
            entry["retry_in_seconds"] = round(delay, 3)
            values.update(
                status="pending",
                retry_count=retry_number,
                run_after=_now() + _seconds(delay),
            )
        values["attempt_log"] = Event.attempt_log.op("||")(_log_entry(**entry))
        stmt = update(Event).where(_OWNED).values(**values).returning(Event.status)
        row = self._run(stmt, **_pairs([event])).first()
        self.session.commit()
        if row is None:
            raise LeaseLostError(f"lease on event {event.id} was lost before the failure was recorded")
        return str(row[0])

    def release_event(self, event: EventSnapshot) -> bool:
        """Give a claimed event back to the queue unchanged (graceful shutdown); no attempt is counted.

        Returns whether the lease was still held.
        """
        row = self._run(_RELEASE, **_pairs([event])).first()
        self.session.commit()
        return row is not None

    def reclaim_expired(self) -> int:
        """Return events whose lease expired to the queue, or fail them when their retries are used up.

        An expired lease counts as a failed attempt (the worker died or hung), so a job that kills
        its worker every time still ends ``failed``. Commits; returns how many events were reclaimed.
        """
        expired = (
            select(Event.id)
            .where(Event.status == "processing", Event.visibility_timeout < _now())
            .limit(RECLAIM_BATCH)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        exhausted = Event.retry_count >= self.max_retry_count
        message = func.concat("lease expired after ", Event.attempts, " attempt(s); last worker ", Event.claimed_by)
        entry = func.jsonb_build_array(
            func.jsonb_build_object(
                "attempt",
                Event.retry_count + 1,
                "worker",
                Event.claimed_by,
                "at",
                _now(),
                "error",
                "lease expired",
                "outcome",
                case((exhausted, "failed"), else_="retry"),
            )
        )
        stmt = (
            update(Event)
            .where(Event.id.in_(expired))
            .values(
                status=case((exhausted, "failed"), else_="pending"),
                retry_count=case((exhausted, Event.retry_count), else_=Event.retry_count + 1),
                processed_at=case((exhausted, _now()), else_=None),
                run_after=_now(),
                error_message=message,
                visibility_timeout=None,
                lease_token=None,
                attempt_log=Event.attempt_log.op("||")(entry),
            )
            .returning(Event.id)
            .execution_options(synchronize_session=False)
        )
        count = len(self.session.execute(stmt).all())
        self.session.commit()
        if count:
            wakeup.wake_local()
        return count

    # ----------------------------------------------------------------------------- administering
    def get_queue_stats(self) -> dict[str, int]:
        """Event counts by status: ``{'pending', 'processing', 'completed', 'failed'}``."""
        rows = self.session.execute(select(Event.status, func.count()).group_by(Event.status)).all()
        stats = dict.fromkeys(EVENT_STATUSES, 0)
        stats.update({status: count for status, count in rows})
        return stats

    def get_queue_depth(self) -> int:
        """How many events wait to be processed (pending, due now or later)."""
        return int(self.session.execute(select(func.count()).where(Event.status == "pending")).scalar_one())

    def oldest_pending_age(self) -> float | None:
        """Seconds the longest-waiting due event has been waiting past its due time, or ``None``."""
        oldest = self.session.execute(
            select(func.min(Event.run_after)).where(Event.status == "pending", Event.run_after <= _now())
        ).scalar_one()
        if oldest is None:
            return None
        age = self.session.execute(select(func.extract("epoch", _now() - literal(oldest)))).scalar_one()
        return max(0.0, float(age))

    def next_due_in(self) -> float | None:
        """Seconds until the earliest pending event is due (0 if one is due now), or ``None``."""
        delta = self.session.execute(
            select(func.extract("epoch", func.min(Event.run_after) - _now())).where(Event.status == "pending")
        ).scalar_one()
        return None if delta is None else max(0.0, float(delta))

    def retry_failed(self, ids: Iterable[int] | None = None) -> int:
        """Requeue failed events (the given ids, or all of them) with a fresh retry budget.

        Joins the caller's transaction. Returns how many events were requeued.
        """
        stmt = (
            update(Event)
            .where(Event.status == "failed")
            .values(status="pending", retry_count=0, run_after=_now(), processed_at=None)
            .returning(Event.id)
            .execution_options(synchronize_session=False)
        )
        if ids is not None:
            id_list = list(ids)
            if not id_list:
                return 0
            stmt = stmt.where(Event.id.in_(id_list))
        count = len(self.session.execute(stmt).all())
        if count:
            self._wake_after_commit()
        return count

    def purge_completed(self, older_than_days: float) -> int:
        """Delete completed events processed more than ``older_than_days`` ago; returns the count.

        Failed events are kept (they are evidence); dedupe keys of purged events are forgotten, so
        keep this window longer than any redelivery window (Slack retries for up to 24 hours).
        """
        stmt = (
            delete(Event)
            .where(
                Event.status == "completed",
                Event.processed_at < _now() - _seconds(older_than_days * 86400.0),
            )
            .returning(Event.id)
        )
        return len(self._run(stmt).all())

    # ----------------------------------------------------------------------------- helpers
    def _run(self, statement: Any, **params: Any) -> Any:
        # Core execution on the session's connection: these statements return rows, not objects,
        # and the ORM's bulk-update bookkeeping per call would cost more than the query.
        return self.session.connection().execute(statement, params)

    @staticmethod
    def _validated_row(
        event_type: str, payload: Mapping[str, Any], key: str | None, run_after: datetime | None
    ) -> dict[str, Any]:
        if not isinstance(event_type, str) or not event_type.strip():
            raise ValueError("event_type must be a non-empty string, e.g. 'slack.message'")
        if not isinstance(payload, Mapping):
            raise ValueError(f"payload must be a JSON object (a mapping), got {type(payload).__name__}")
        try:
            encoded = json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payload is not JSON-serialisable: {exc}") from exc
        if "\\u0000" in encoded:
            raise ValueError("payload contains a NUL character, which PostgreSQL cannot store in JSONB")
        row: dict[str, Any] = {"event_type": event_type, "payload": dict(payload)}
        if key is not None:
            row["dedupe_key"] = str(key)
        if run_after is not None:
            row["run_after"] = run_after
        return row

    def _reserve_local_slot(self) -> wakeup.Reservation | None:
        # Not inside a savepoint: its rollback would undo the row while the outer commit still hands it
        # over. Such enqueues take the ordinary path (a wake-up after commit).
        if self.session.in_nested_transaction():
            return None
        return wakeup.reserve(self.session.get_bind().engine.url)

    def _hand_over_after_commit(self, reservation: wakeup.Reservation, event: EventSnapshot) -> None:
        self.session.info.setdefault("athenaeum_handovers", []).append((reservation, event))
        self._install_commit_hooks()

    def _wake_after_commit(self) -> None:
        # Wake local workers only once the rows are visible, i.e. after the caller's commit; a
        # rollback cancels the wake-up.
        self.session.info["athenaeum_wake_pending"] = True
        self._install_commit_hooks()

    def _install_commit_hooks(self) -> None:
        info = self.session.info
        if not info.get("athenaeum_commit_hooks"):  # once per session
            info["athenaeum_commit_hooks"] = True
            sa_event.listen(self.session, "after_commit", _after_commit)
            sa_event.listen(self.session, "after_transaction_end", _after_transaction_end)


def _after_commit(session: Session) -> None:
    # SQLAlchemy fires after_commit when a savepoint is released too; only the outermost commit makes the
    # rows visible to other connections.
    if session.in_nested_transaction():
        return
    if session.info.pop("athenaeum_wake_pending", False):
        wakeup.wake_local()
    for reservation, event in session.info.pop("athenaeum_handovers", ()):
        reservation.hand_over(event)


def _after_transaction_end(session: Session, transaction: Any) -> None:
    # On a commit, _after_commit has already taken everything; what is left when the outermost
    # transaction ends was rolled back (a savepoint's rollback leaves the outer enqueues alone).
    if transaction.parent is None:
        session.info.pop("athenaeum_wake_pending", None)
        for reservation, _event in session.info.pop("athenaeum_handovers", ()):
            reservation.cancel()
