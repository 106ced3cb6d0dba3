"""LISTEN/NOTIFY: a dedicated connection that turns notifications into wake-up calls.

The listener owns one psycopg2 connection outside the pool (a pooled connection would be recycled
and would block a slot). It reconnects with backoff when the connection dies, and calls
``on_notify`` after every reconnect too, because notifications sent while it was away are lost.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from typing import Any

from database.models import EVENTS_NOTIFY_CHANNEL

_log = logging.getLogger(__name__)

RECONNECT_MAX_DELAY_SECONDS = 5.0
SELECT_TIMEOUT_SECONDS = 1.0


class NotificationListener:
    """Listens on ``channel`` in a daemon thread and calls ``on_notify()`` for each batch received.

    Args:
        connect: returns a new DB-API (psycopg2) connection; called again after every failure.
        on_notify: called from the listener thread; must be quick (e.g. set an Event).
        channel: the NOTIFY channel.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        on_notify: Callable[[], None],
        channel: str = EVENTS_NOTIFY_CHANNEL,
    ) -> None:
        self._connect = connect
        self._on_notify = on_notify
        self._channel = channel
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.reconnects = 0
        self.notifications = 0

    def start(self) -> None:
        """Start listening in a background thread."""
        self._thread = threading.Thread(target=self._run, name="athenaeum-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and close the connection."""
        self._stop.set()
        self._close()
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        """Whether the listener thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        delay = 0.1
        first = True
        while not self._stop.is_set():
            try:
                conn = self._connect()
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(f'LISTEN "{self._channel}"')
                with self._lock:
                    self._conn = conn
                self.connected.set()
                if not first:
                    self.reconnects += 1
                    self._on_notify()  # anything sent while we were away is lost: look now
                first = False
                delay = 0.1
                self._listen(conn)
            except Exception as exc:  # any failure: drop the connection and reconnect
                self.connected.clear()
                if self._stop.is_set():
                    break
                _log.warning(
                    "notification listener lost its connection (%s); reconnecting in %.1fs",
                    type(exc).__name__,
                    delay,
                )
                self._close()
                self._stop.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)
        self.connected.clear()
        self._close()

    def _listen(self, conn: Any) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([conn], [], [], SELECT_TIMEOUT_SECONDS)
            if not readable:
                # A quiet socket may also be a dead one: a trivial round trip proves it is alive.
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                continue
            conn.poll()
            if conn.notifies:
                self.notifications += len(conn.notifies)
                conn.notifies.clear()
                self._on_notify()

    def _close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
