"""In-process wake-ups: an enqueue committed in this process wakes this process's pools at once.

Cross-process wake-ups go through LISTEN/NOTIFY (``database.notify``); this is the sub-millisecond path
for producers that share a process with the workers (the Socket Mode thread, ``chat``, tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_callbacks: set[Callable[[], None]] = set()
_lock = threading.Lock()


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
