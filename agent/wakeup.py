"""In-process wake-ups and hand-overs: work enqueued in this process reaches this process's pools at once.

Cross-process wake-ups go through LISTEN/NOTIFY (``database.notify``). Within one process there are two
faster paths, for producers that share a process with the workers (the Socket Mode thread, ``chat``):

- **wake-up**: an enqueue that commits wakes the pools' dispatchers, which then claim as usual.
- **hand-over**: when a pool on the same database has a free slot and nothing else is due, the enqueue
  reserves that slot and inserts the event already claimed by it (with its own lease and fencing token);
  once the producer's transaction commits, the event goes straight to a worker, with no claim round trip.
  A rollback gives the slot back. If the process dies in between, the lease expires and the reaper
  returns the event, as for any claim.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agent.snapshot import EventSnapshot

_callbacks: set[Callable[[], None]] = set()
_takers: dict[Callable[[], Reservation | None], str] = {}
_lock = threading.Lock()


class Reservation(Protocol):
    """A free worker slot held for one event until the producer's transaction ends."""

    worker_id: str
    lease_seconds: float

    def hand_over(self, event: EventSnapshot) -> None:
        """The producer committed: run ``event`` (inserted already claimed under this reservation)."""

    def cancel(self) -> None:
        """The producer rolled back or inserted nothing: free the slot."""


def register(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever an enqueue commits in this process."""
    with _lock:
        _callbacks.add(callback)


def unregister(callback: Callable[[], None]) -> None:
    """Stop calling ``callback``."""
    with _lock:
        _callbacks.discard(callback)


def wake_local() -> None:
    """Wake every registered pool (cheap: each callback sets an event)."""
    with _lock:
        callbacks = list(_callbacks)
    for callback in callbacks:
        callback()


def register_taker(reserve: Callable[[], Reservation | None], database_key: str) -> None:
    """Offer hand-overs: ``reserve()`` returns a reservation when a slot is free, else ``None``.

    Args:
        reserve: called on the producer's thread; must be quick and never block on the database.
        database_key: identifies the database the pool works on; only producers writing to the same
            database get its reservations.
    """
    with _lock:
        _takers[reserve] = database_key


def unregister_taker(reserve: Callable[[], Reservation | None]) -> None:
    """Stop offering hand-overs."""
    with _lock:
        _takers.pop(reserve, None)


def reserve(database_url: object) -> Reservation | None:
    """A free slot of a pool in this process working on the database at ``database_url``, or ``None``."""
    if not _takers:  # the common producer with no pool in its process: no URL rendering, no lock
        return None
    wanted = database_key(database_url)
    with _lock:
        takers = [taker for taker, key in _takers.items() if key == wanted]
    for taker in takers:
        reservation = taker()
        if reservation is not None:
            return reservation
    return None


def database_key(url: object) -> str:
    """The key pools and producers compare: the full database URL (never logged or shown)."""
    render = getattr(url, "render_as_string", None)
    return render(hide_password=False) if render is not None else str(url)
