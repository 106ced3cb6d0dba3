"""What a ``process_func`` receives: an immutable, thread-safe snapshot of a claimed event."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses changes. Still a ``dict``, so ``json.dumps`` and ``**`` work on it."""

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("event payloads are read-only; copy with thaw(event.payload) to change one")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _readonly

    def __hash__(self) -> int:  # type: ignore[override]  # dict declares __hash__ = None
        return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))

    def __reduce__(self) -> Any:
        return (FrozenDict, (dict(self),))


def freeze(value: Any) -> Any:
    """Deep-freeze JSON data: dicts become :class:`FrozenDict`, lists become tuples."""
    if isinstance(value, Mapping):
        return FrozenDict({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A mutable deep copy of frozen JSON data."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class EventSnapshot:
    """A claimed (or enqueued) event as it was read; never an ORM instance, so safe in any thread.

    ``lease_token`` is the fencing token of the claim: completing or failing presents it.
    ``lease_lost`` is set by the pool when the lease could not be kept (expired, taken over, or
    released at shutdown); a long job may check it and stop early.
    """

    id: int
    event_type: str
    payload: FrozenDict
    status: str
    retry_count: int
    attempts: int
    created_at: datetime
    run_after: datetime
    dedupe_key: str | None = None
    claimed_by: str | None = None
    lease_token: int | None = None
    visibility_timeout: datetime | None = None
    claimed_at: datetime | None = None
    error_message: str | None = None
    #: Set by ``enqueue_event`` when the key was seen before and this call inserted nothing.
    duplicate: bool = False
    lease_lost: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, and so on."""
        return self.retry_count + 1

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, duplicate: bool = False) -> EventSnapshot:
        """Build a snapshot from a result row of the ``events`` table."""
        return cls(
            duplicate=duplicate,
            id=row["id"],
            event_type=row["event_type"],
            payload=freeze(row["payload"]),
            status=row["status"],
            retry_count=row["retry_count"],
            attempts=row["attempts"],
            created_at=row["created_at"],
            run_after=row["run_after"],
            dedupe_key=row["dedupe_key"],
            claimed_by=row["claimed_by"],
            lease_token=row["lease_token"],
            visibility_timeout=row["visibility_timeout"],
            claimed_at=row["claimed_at"],
            error_message=row["error_message"],
        )
