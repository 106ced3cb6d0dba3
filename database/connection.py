"""The PostgreSQL seam: engine and pool, the session scope, and the process-wide default connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from database.errors import DatabaseError, DatabaseUnavailableError
from database.liveness import PING_AFTER_SECONDS, install_conditional_ping
from database.models import Base

CONNECT_TIMEOUT_SECONDS = 5
POOL_RECYCLE_SECONDS = 1800


def normalize_url(database_url: str | URL) -> URL:
    """Return ``database_url`` as a SQLAlchemy URL that uses psycopg2.

    ``postgres://`` and bare ``postgresql://`` (SQLAlchemy 2.1 maps the latter to psycopg 3, which we
    do not ship) both become ``postgresql+psycopg2://``.

    Raises:
        DatabaseError: the URL is not a PostgreSQL URL.
    """
    try:
        url = make_url(database_url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with the URL inside: keep it out
        raise DatabaseError(
            "DATABASE_URL is not a valid URL; expected postgresql://user:password@host:5432/dbname"
        ) from exc
    if url.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        return url.set(drivername="postgresql+psycopg2")
    raise DatabaseError(
        f"DATABASE_URL uses {url.drivername!r}; Athenaeum needs PostgreSQL "
        "(postgresql://user:password@host:5432/dbname)"
    )


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached (as opposed to a bad statement)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError)


class DatabaseConnection:
    """An engine with a bounded pool, transparent reconnects, and a session scope.

    A server restart or a killed backend costs one reconnect, not an error seen by the caller: a pooled
    connection is checked before use when it has been idle ``ping_after`` seconds, when its previous use
    raised, or when the server has closed it (see :mod:`database.liveness`); a connection used cleanly just
    before is handed out without the extra ``SELECT 1`` round trip.

    Args:
        database_url: a PostgreSQL URL (``postgresql://…``; the psycopg2 driver is used).
        pool_size: connections kept open.
        max_overflow: extra connections allowed under load.
        echo: log every SQL statement (debugging only).
        application_name: shown in ``pg_stat_activity``.
        ping_after: seconds of idleness after which a pooled connection is pinged before use (``0``: ping
            on every reuse, like ``pool_pre_ping=True``).
    """

    def __init__(
        self,
        database_url: str | URL,
        pool_size: int = 10,
        max_overflow: int = 20,
        echo: bool = False,
        *,
        application_name: str = "athenaeum",
        ping_after: float = PING_AFTER_SECONDS,
    ) -> None:
        self.url = normalize_url(database_url)
        self.engine: Engine = create_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            echo=echo,
            pool_recycle=POOL_RECYCLE_SECONDS,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": application_name,
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
            },
        )
        # Instead of pool_pre_ping=True: the same reconnect promise without a round trip per session.
        self._ping_stats = install_conditional_ping(self.engine, ping_after)
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        """The URL with its password masked, fit for logs and status output."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends, rolls back if it raises.

        Raises:
            DatabaseUnavailableError: the server could not be reached (the cause is chained).
        """
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            if is_disconnect(exc):
                raise DatabaseUnavailableError(f"database unreachable: {type(exc).__name__}") from exc
            raise
        finally:
            session.close()

    def new_session(self) -> Session:
        """A session the caller manages (for components that commit on their own schedule)."""
        return self._sessions()

    def health_check(self) -> bool:
        """Whether a ``SELECT 1`` succeeds now."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def get_pool_status(self) -> dict[str, Any]:
        """Pool gauges: configured size, connections checked in/out, overflow in use."""
        pool: Any = self.engine.pool
        return {
            "size": pool.size(),
            "checked_in": pool.checkedin(),
            "checked_out": pool.checkedout(),
            "overflow": pool.overflow(),
        }

    def get_ping_stats(self) -> dict[str, int]:
        """Liveness pings sent before reuse since start: ``ok`` answered, ``dead`` found a dead connection."""
        return self._ping_stats.snapshot()

    def create_tables(self) -> None:
        """Create every table the models describe (quick starts; migrations remain the source of truth)."""
        Base.metadata.create_all(self.engine)

    def raw_dbapi_connection(self) -> Any:
        """A new psycopg2 connection outside the pool, with the engine's URL and connect arguments."""
        cargs, cparams = self.engine.dialect.create_connect_args(self.url)
        cparams.update({"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "athenaeum-listener"})
        return self.engine.dialect.loaded_dbapi.connect(*cargs, **cparams)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


_default: DatabaseConnection | None = None
_default_lock = threading.Lock()


def init_db(
    database_url: str | URL | None = None,
    *,
    data_dir: str | Path = ".athenaeum",
    pool_size: int = 10,
    max_overflow: int = 20,
    echo: bool = False,
    ping_after: float = PING_AFTER_SECONDS,
) -> DatabaseConnection:
    """Create the process-wide default connection used by :func:`get_session`.

    With ``database_url=None`` an embedded PostgreSQL (with pgvector) is started, or reused, under
    ``data_dir`` (see :mod:`database.embedded`).
    """
    global _default
    if database_url is None:
        from database.embedded import EmbeddedPostgres

        database_url = EmbeddedPostgres(data_dir).start()
    conn = DatabaseConnection(
        database_url, pool_size=pool_size, max_overflow=max_overflow, echo=echo, ping_after=ping_after
    )
    with _default_lock:
        if _default is not None:
            _default.dispose()
        _default = conn
    return conn


def get_default_connection() -> DatabaseConnection:
    """The connection made by :func:`init_db`.

    Raises:
        DatabaseError: ``init_db`` has not been called.
    """
    if _default is None:
        raise DatabaseError("no database configured: call database.init_db(database_url=...) first")
    return _default


@contextmanager
def get_session() -> Iterator[Session]:
    """A unit of work on the default connection (see :meth:`DatabaseConnection.session`)."""
    with get_default_connection().session() as session:
        yield session


def create_tables() -> None:
    """Create every table on the default connection (quick starts; prefer ``alembic upgrade head``)."""
    get_default_connection().create_tables()
