"""Optional hooks that let observability code watch the queue without the queue depending on it.

``PoolObserver`` is what a :class:`~agent.worker_pool.WorkerPool` calls as events move through it
(``WorkerPool(..., observer=...)``); every method is a no-op here, so an observer overrides only
what it needs. Signals (:func:`emit`/:func:`subscribe`) carry what other code in this process
reports: inserts made by any ``EventProcessor``, LLM usage and errors, MCP tool calls. Hooks are
called on worker threads: they must be quick, thread-safe and never raise (an exception is logged and
swallowed, so metrics can never break the queue).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from agent.snapshot import EventSnapshot

_log = structlog.get_logger("athenaeum.observers")


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


#: The signals code in this process may emit, and the keyword arguments each carries.
SIGNALS = {
    "enqueued": ("event_type", "count"),
    "llm_usage": ("model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"),
    "llm_error": ("error_class",),
    "tool_call": ("server", "tool", "ok"),
}
SignalListener = Callable[..., None]

_listeners: dict[str, list[SignalListener]] = {name: [] for name in SIGNALS}
_listeners_lock = threading.Lock()


def subscribe(signal: str, listener: SignalListener) -> None:
    """Call ``listener(**fields)`` whenever ``signal`` is emitted in this process.

    Raises:
        ValueError: ``signal`` is not one of :data:`SIGNALS`.
    """
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; known: {', '.join(SIGNALS)}")
    with _listeners_lock:
        _listeners[signal].append(listener)


def unsubscribe(signal: str, listener: SignalListener) -> None:
    """Stop calling ``listener`` for ``signal`` (no error if it was not subscribed)."""
    with _listeners_lock:
        if listener in _listeners.get(signal, []):
            _listeners[signal].remove(listener)


def emit(signal: str, **fields: Any) -> None:
    """Tell ``signal``'s listeners (metrics, mostly) what happened; listener errors are logged, never raised.

    The assistant calls ``emit("llm_usage", model=..., input_tokens=..., output_tokens=...)``,
    ``emit("llm_error", error_class=...)`` and ``emit("tool_call", server=..., tool=..., ok=...)``; the
    queue emits ``enqueued``. Cheap when nobody listens.
    """
    if not _listeners.get(signal):  # the common case on hot paths (enqueue): nobody listens
        return
    with _listeners_lock:
        listeners = list(_listeners.get(signal, ()))
    for listener in listeners:
        try:
            listener(**fields)
        except Exception as exc:
            _log.warning("signal listener failed", signal=signal, error=f"{type(exc).__name__}: {exc}")


def notify_enqueued(event_type: str, count: int = 1) -> None:
    """Emit ``enqueued``: ``count`` events of ``event_type`` were inserted.

    Called at insert time, inside the caller's transaction: a rolled-back enqueue is still counted.
    """
    emit("enqueued", event_type=event_type, count=count)
