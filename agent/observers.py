"""Optional hooks that let observability code watch the queue without the queue depending on it.

``PoolObserver`` is what a :class:`~agent.worker_pool.WorkerPool` calls as events move through it
(``WorkerPool(..., observer=...)``); every method is a no-op here, so an observer overrides only
what it needs. Enqueue listeners hear about inserts made by any :class:`~agent.event_processor.
EventProcessor` in this process. Hooks are called on worker threads: they must be quick, thread-safe
and never raise (an exception is logged and swallowed, so metrics can never break the queue).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from agent.snapshot import EventSnapshot

_log = structlog.get_logger("athenaeum.observers")

EnqueueListener = Callable[[str, int], None]


class PoolObserver:
    """Callbacks from a ``WorkerPool``; subclass and override the ones you need."""

    def on_claim(self, event: EventSnapshot, pickup_latency_seconds: float | None) -> None:
        """An event was claimed; ``pickup_latency_seconds`` is claim time minus the time it fell due."""

    def on_complete(self, event: EventSnapshot, duration_seconds: float) -> None:
        """``process_func`` returned; the completion is being written (batched, fenced)."""

    def on_retry(self, event: EventSnapshot, error: BaseException, duration_seconds: float) -> None:
        """``process_func`` raised and the event was rescheduled."""

    def on_fail(self, event: EventSnapshot, error: BaseException, duration_seconds: float, permanent: bool) -> None:
        """``process_func`` raised and the event ended ``failed``."""

    def on_lease_lost(self, event: EventSnapshot) -> None:
        """The pool found it no longer owns the event (its result was discarded)."""

    def on_reclaim(self, count: int) -> None:
        """The reaper returned ``count`` events whose lease had expired."""


def pickup_latency_seconds(event: EventSnapshot) -> float | None:
    """Seconds between when an event fell due (``max(created_at, run_after)``) and its claim.

    All three times come from the database clock, so clock skew between machines does not matter.
    """
    if event.claimed_at is None:
        return None
    due: datetime = max(event.created_at, event.run_after)
    return max(0.0, (event.claimed_at - due).total_seconds())


def call_observer(observer: PoolObserver | None, method: str, *args: Any) -> None:
    """Call ``observer.method(*args)``; never let an observer's failure reach the queue."""
    if observer is None:
        return
    try:
        getattr(observer, method)(*args)
    except Exception as exc:
        _log.warning("pool observer failed", method=method, error=f"{type(exc).__name__}: {exc}")


_enqueue_listeners: list[EnqueueListener] = []
_enqueue_lock = threading.Lock()


def add_enqueue_listener(listener: EnqueueListener) -> None:
    """Call ``listener(event_type, count)`` whenever events are inserted in this process."""
    with _enqueue_lock:
        _enqueue_listeners.append(listener)


def remove_enqueue_listener(listener: EnqueueListener) -> None:
    """Stop calling ``listener`` (no error if it was not registered)."""
    with _enqueue_lock:
        if listener in _enqueue_listeners:
            _enqueue_listeners.remove(listener)


def notify_enqueued(event_type: str, count: int = 1) -> None:
    """Tell the enqueue listeners that ``count`` events of ``event_type`` were inserted.

    Called at insert time, inside the caller's transaction: a rolled-back enqueue is still counted.
    """
    with _enqueue_lock:
        listeners = list(_enqueue_listeners)
    for listener in listeners:
        try:
            listener(event_type, count)
        except Exception as exc:
            _log.warning("enqueue listener failed", error=f"{type(exc).__name__}: {exc}")
