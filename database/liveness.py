"""Conditional pre-ping: check a pooled connection before use only when it may be dead.

SQLAlchemy's ``pool_pre_ping=True`` sends ``SELECT 1`` on every checkout, one extra round trip per
``db.session()``: for one event per transaction, one of four (BEGIN, INSERT and COMMIT are the others).
:func:`install_conditional_ping` keeps the promise of pre-ping (a PostgreSQL restart or a killed backend
costs one reconnect, not an error seen by the caller) and pings only a connection that

- was not checked in without error within the last ``ping_after`` seconds (an idle connection may have been
  dropped by a firewall, a NAT table or a failed-over host without anything arriving on the socket), or
- raised during its previous use (the error may have left it in a state only the server knows about), or
- has bytes or a hang-up waiting on its socket. A server that shuts down (``pg_ctl stop``, a restart) or a
  backend killed with ``pg_terminate_backend`` sends a FATAL message and closes the socket; an idle, healthy
  connection has nothing to read. One ``poll()`` with a zero timeout sees this without a round trip, so a
  connection killed a millisecond after it was last used is still caught before the caller's statement.

A failed ping raises :class:`sqlalchemy.exc.InvalidatePoolError` from the pool's documented ``checkout``
event (pessimistic disconnect handling): the pool discards this connection and every other one opened before
now (a restart kills them all) and retries the checkout with a fresh connection, exactly what the built-in
pre-ping does. What neither approach covers: a backend that dies between the check and the first statement.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

_log = logging.getLogger(__name__)

PING_AFTER_SECONDS = 1.0
"""Default idle time after which a pooled connection is pinged before use."""

_clock = time.monotonic  # module-level so tests can move time forward without sleeping
_CLEAN_AT = "athenaeum_clean_at"  # monotonic time of the last check-in without error
_FRESH = "athenaeum_fresh"  # opened for this checkout: as good as a ping
_RAISED = "athenaeum_raised"  # a statement on the connection raised during the current checkout


class PingStats:
    """What the checks did since the engine was made: pings sent, and how many found a dead connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"ok": 0, "dead": 0}

    def count(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1

    def snapshot(self) -> dict[str, int]:
        """``{"ok": pings answered, "dead": pings that found the connection dead}``."""
        with self._lock:
            return dict(self._counts)


def install_conditional_ping(engine: Engine, ping_after: float = PING_AFTER_SECONDS) -> PingStats:
    """Make ``engine``'s pool ping a connection on checkout only when it may be dead (see the module doc).

    Use it instead of ``pool_pre_ping=True``. Listeners go on the engine, so they survive ``dispose()``.

    Args:
        engine: an engine created without ``pool_pre_ping``.
        ping_after: seconds since the last clean check-in after which a connection is pinged; ``0`` pings
            on every checkout (the behaviour of ``pool_pre_ping=True``).

    Returns:
        the counters of pings sent (for metrics).
    """
    dialect = engine.dialect
    stats = PingStats()

    def connected(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_FRESH] = True

    def checked_in(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        if dbapi_connection is None:  # invalidated: the next checkout opens a new one
            return
        if record.info.pop(_RAISED, False):
            record.info.pop(_CLEAN_AT, None)
        else:
            record.info[_CLEAN_AT] = _clock()

    def raised(context: ExceptionContext) -> None:
        connection = context.connection
        if connection is None or connection.invalidated:
            return
        try:
            connection.connection.info[_RAISED] = True
        except Exception:  # bookkeeping must never replace the caller's error
            pass

    def checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        clean_at = record.info.pop(_CLEAN_AT, None)
        record.info.pop(_RAISED, None)
        if record.info.pop(_FRESH, False):
            return
        if clean_at is not None and _clock() - clean_at < ping_after and not _has_input(dbapi_connection):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                stats.count("dead")
                _log.warning("a pooled database connection was dead (%s); reconnecting", type(exc).__name__)
                # Like the built-in pre-ping: a dead connection usually means a restart, so every connection
                # opened before now is discarded, and the pool retries this checkout with a new one.
                raise InvalidatePoolError(f"ping failed: {type(exc).__name__}") from exc
            raise
        stats.count("ok")

    event.listen(engine, "connect", connected)
    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "handle_error", raised)
    return stats


def _has_input(dbapi_connection: Any) -> bool:
    """Whether the server sent something (a FATAL before closing, EOF) to a connection that should be idle."""
    try:
        if dbapi_connection.closed:
            return True
        fd = dbapi_connection.fileno()
    except Exception:  # a connection we cannot inspect gets pinged
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))
