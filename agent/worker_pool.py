"""WorkerPool: a bounded ThreadPoolExecutor fed by one dispatcher, with wake-ups, heartbeats and a reaper.

Threads and what each owns:

- **dispatcher**: claims up to the number of free slots in one statement and hands each event to the
  executor, so never more than ``size`` events are in flight. It sleeps until woken (a local enqueue,
  a NOTIFY from another process), until the next retry falls due, or for ``poll_interval`` at most.
- **executor workers** (``size``): run ``process_func(snapshot)``; a failure is recorded at once
  (retry with backoff, or ``failed``).
- **completer**: writes completions in batches (whatever has accumulated, one statement), each still
  fenced by its own lease token. Under light load a batch is one event and adds no delay.
- **maintenance**: heartbeats the leases of running jobs and reclaims expired leases.
- **listener**: LISTEN on a dedicated connection (``database.notify``).

Every thread has its own session on an autocommit engine: each queue statement is one round trip,
and no session or ORM instance crosses threads (events travel as frozen snapshots).
"""

from __future__ import annotations

import itertools
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy.orm import Session

from agent import wakeup
from agent.config import QueueSettings
from agent.errors import LeaseLostError, PermanentError
from agent.event_processor import EventProcessor, describe_error
from agent.logging import event_log_context
from agent.observers import PoolObserver, call_observer, pickup_latency_seconds
from agent.snapshot import EventSnapshot
from database import DatabaseConnection, NotificationListener

_log = structlog.get_logger("athenaeum.pool")

DB_RETRY_MAX_DELAY_SECONDS = 5.0
COMPLETION_BATCH_MAX = 256
CLAIM_GATHER_SECONDS = 0.002
STATEMENT_TIMEOUT_SECONDS = 30.0
_pool_numbers = itertools.count(1)

ProcessFunc = Callable[[EventSnapshot], Any]


class WorkerPool:
    """A bounded pool of worker threads that claims events from PostgreSQL and runs ``process_func``.

    Args:
        size: worker threads, and the most events in flight at once.
        db_connection: the database to work against.
        process_func: called with an :class:`EventSnapshot`; returning means success, raising means
            failure (raise :class:`PermanentError` to skip retries).
        visibility_timeout: lease length in seconds (default 300).
        retry_base_delay: seconds before the first retry, doubling each time (default 10).
        max_retry_count: retries after the first attempt (default 3).
        heartbeat_interval: seconds between lease extensions (default: a third of the lease).
        reaper_interval: seconds between sweeps for expired leases (default 30).
        poll_interval: safety-net poll in seconds (default 1.0).
        stop_grace_period: seconds in-flight jobs get to finish on stop (default 30).
        config: a ``Config`` or ``QueueSettings`` giving all timing settings at once; explicit
            keyword arguments win over it.
        name: identifies this pool in ``claimed_by`` (default ``host:pid:pool-N``).
        listen: use LISTEN/NOTIFY for cross-process wake-ups (default True).
        observer: an optional :class:`~agent.observers.PoolObserver` told of claims, completions,
            retries, failures and reclaims (metrics use it); its errors never reach the queue.
    """

    def __init__(
        self,
        size: int,
        db_connection: DatabaseConnection,
        process_func: ProcessFunc,
        *,
        visibility_timeout: float | None = None,
        retry_base_delay: float | None = None,
        max_retry_count: int | None = None,
        heartbeat_interval: float | None = None,
        reaper_interval: float | None = None,
        poll_interval: float | None = None,
        stop_grace_period: float | None = None,
        config: Any = None,
        name: str | None = None,
        listen: bool = True,
        observer: PoolObserver | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size!r}")
        base = QueueSettings.from_config(config)
        self.size = size
        self.db = db_connection
        self.process_func = process_func
        self.visibility_timeout = float(_pick(visibility_timeout, base.visibility_timeout))
        self.retry_base_delay = float(_pick(retry_base_delay, base.retry_base_delay))
        self.max_retry_count = int(_pick(max_retry_count, base.max_retry_count))
        hb = _pick(heartbeat_interval, base.heartbeat_interval)
        self.heartbeat_interval = float(hb if hb is not None else self.visibility_timeout / 3)
        self.reaper_interval = float(_pick(reaper_interval, base.reaper_interval))
        self.poll_interval = float(_pick(poll_interval, base.poll_interval))
        self.stop_grace_period = float(_pick(stop_grace_period, base.stop_grace_period))
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:pool-{next(_pool_numbers)}"
        self.listen = listen
        self.observer = observer
        self._gather_target = max(1, size // 2)
        self._backlog = False  # the last claim filled every free slot: more may be due

        self._autocommit_engine = db_connection.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._local = threading.local()
        self._owned_sessions: list[Session] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._shutdown = threading.Event()  # tells the completer and maintenance threads to end
        self._slots = threading.Condition()
        self._in_flight = 0
        self._running: dict[int, EventSnapshot] = {}
        # Finished jobs whose completion the completer has not written yet: still heartbeated (a stalled
        # completer must not let their leases lapse and the jobs run again), never released at stop.
        self._completing: dict[int, EventSnapshot] = {}
        self._running_lock = threading.Lock()
        self._futures: set[Future[None]] = set()
        self._completions: queue.Queue[EventSnapshot | None] = queue.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self._threads: list[threading.Thread] = []
        self._listener: NotificationListener | None = None
        self._started_at: float | None = None
        self._stats_lock = threading.Lock()
        self._stats = {
            "total_events_processed": 0,
            "total_events_failed": 0,
            "total_events_retried": 0,
            "total_events_claimed": 0,
            "lost_leases": 0,
            "reclaimed": 0,
            "released": 0,
            "db_errors": 0,
        }

    # ----------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the workers, the dispatcher, heartbeats, the reaper and the listener."""
        if self._started_at is not None:
            raise RuntimeError("WorkerPool.start() called twice; create a new pool instead")
        self._started_at = time.monotonic()
        self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="athenaeum-worker")
        wakeup.register(self.wake)
        wakeup.register_taker(self._reserve_local, wakeup.database_key(self.db.engine.url))
        if self.listen:
            self._listener = NotificationListener(self.db.raw_dbapi_connection, self.wake)
            self._listener.start()
        for target, label in (
            (self._dispatch_loop, "dispatcher"),
            (self._completion_loop, "completer"),
            (self._maintenance_loop, "maintenance"),
        ):
            thread = threading.Thread(target=target, name=f"athenaeum-{label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        _log.info("worker pool started", pool=self.name, size=self.size, lease_seconds=self.visibility_timeout)

    def wake(self) -> None:
        """Make the dispatcher look for due events now (called on local enqueue and on NOTIFY)."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming, let in-flight jobs finish within the grace period, release the rest.

        Args:
            timeout: the grace period in seconds (default ``stop_grace_period``).
        """
        if self._started_at is None or self._stopped.is_set():
            return
        grace = self.stop_grace_period if timeout is None else float(timeout)
        _log.info("worker pool stopping", pool=self.name, in_flight=self._in_flight, grace_seconds=grace)
        self._stopping.set()
        self._wake.set()
        with self._slots:
            self._slots.notify_all()
        wakeup.unregister(self.wake)
        wakeup.unregister_taker(self._reserve_local)
        self._threads[0].join()  # the dispatcher: after this, nothing new is claimed
        if self._listener is not None:
            self._listener.stop()
        deadline = time.monotonic() + grace
        with self._slots:
            while self._in_flight > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._slots.wait(remaining)
        with self._running_lock:
            unfinished = list(self._running.values())
        for event in unfinished:
            event.lease_lost.set()  # its job may still finish, but must not write any more
        released = self._release(unfinished)
        self._completions.put(None)  # flush what is queued, then end
        self._shutdown.set()
        for thread in self._threads[1:]:
            thread.join(timeout=10)
        assert self._executor is not None
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._stopped.set()
        self._close_sessions()
        _log.info("worker pool stopped", released_now=released, **self.get_stats())

    def run_forever(self) -> None:
        """Start if needed and block until SIGINT/SIGTERM (or :meth:`stop`), then stop gracefully."""
        if self._started_at is None:
            self.start()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, self._on_signal)
        while not self._stopping.is_set():
            self._stopping.wait(0.5)
        self.stop()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        _log.info("signal received; draining", signal=signal.Signals(signum).name)
        self._stopping.set()

    # ----------------------------------------------------------------------------- introspection
    def get_stats(self) -> dict[str, Any]:
        """Counters and gauges: ``workers_running``, ``total_events_processed``, failures, in flight, uptime…"""
        with self._stats_lock:
            stats: dict[str, Any] = dict(self._stats)
        running = self._started_at is not None and not self._stopped.is_set()
        stats.update(
            pool=self.name,
            size=self.size,
            workers_running=self.size if running else 0,
            in_flight=self._in_flight,
            uptime_seconds=round(time.monotonic() - self._started_at, 3) if self._started_at else 0.0,
            listener_connected=bool(self._listener and self._listener.connected.is_set()),
            running=running,
        )
        return stats

    def health_check(self) -> bool:
        """Whether the pool runs (all its threads alive) and the database answers."""
        if self._started_at is None or self._stopping.is_set():
            return False
        if not all(t.is_alive() for t in self._threads):
            return False
        return self.db.health_check()

    # ----------------------------------------------------------------------------- threads
    def _processor(self) -> EventProcessor:
        # One session per thread, bound to one autocommit connection held for the thread's life:
        # each queue statement is then a single round trip, with no pool checkout and no pre-ping
        # in between. A database error drops the pair (see _db_error) and the next call reconnects.
        proc = getattr(self._local, "processor", None)
        if proc is None:
            connection = self._autocommit_engine.connect()
            # A hung statement must not hang the dispatcher (and with it stop()) forever.
            connection.exec_driver_sql(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_SECONDS * 1000)}")
            session = Session(bind=connection, expire_on_commit=False)
            proc = EventProcessor(
                session,
                worker_id=f"{self.name}:{threading.current_thread().name}",
                visibility_timeout=self.visibility_timeout,
                retry_base_delay=self.retry_base_delay,
                max_retry_count=self.max_retry_count,
            )
            self._local.processor = proc
            with self._stats_lock:
                self._owned_sessions.append(session)
        return proc

    @contextmanager
    def _short_processor(self) -> Iterator[EventProcessor]:
        # Worker threads record failures on a pooled connection they give back at once, so a pool
        # of N workers holds only its three service threads' connections between jobs.
        session = Session(bind=self._autocommit_engine, expire_on_commit=False)
        try:
            yield EventProcessor(
                session,
                worker_id=f"{self.name}:{threading.current_thread().name}",
                visibility_timeout=self.visibility_timeout,
                retry_base_delay=self.retry_base_delay,
                max_retry_count=self.max_retry_count,
            )
        finally:
            _close_session_only(session)

    def _db_error(self, where: str, exc: BaseException, delay: float, *, owned: bool = True) -> float:
        with self._stats_lock:
            self._stats["db_errors"] += 1
        _log.warning("database error; backing off", where=where, error=describe_error(exc), retry_in=delay)
        if not owned:
            return min(delay * 2, DB_RETRY_MAX_DELAY_SECONDS)
        proc = getattr(self._local, "processor", None)
        self._local.processor = None
        if proc is not None:
            with self._stats_lock:
                if proc.session in self._owned_sessions:
                    self._owned_sessions.remove(proc.session)
            _close_session(proc.session)
        return min(delay * 2, DB_RETRY_MAX_DELAY_SECONDS)

    def _dispatch_loop(self) -> None:
        delay = 0.05
        while not self._stopping.is_set():
            with self._slots:
                while self._in_flight >= self.size and not self._stopping.is_set():
                    self._slots.wait()
                if self._backlog:
                    # More is due than we have workers: give other jobs a moment to finish so one
                    # claim statement serves several workers. Idle pools never wait here.
                    deadline = time.monotonic() + CLAIM_GATHER_SECONDS
                    while self.size - self._in_flight < self._gather_target and not self._stopping.is_set():
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._slots.wait(remaining)
                free = self.size - self._in_flight
            if self._stopping.is_set():
                break
            self._wake.clear()  # before the query: a wake-up during it makes us look again
            try:
                events = self._processor().claim_events(free)
            except Exception as exc:  # database blinked: back off, never die
                next_delay = self._db_error("claim", exc, delay)
                self._stopping.wait(delay)
                delay = next_delay
                continue
            delay = 0.05
            self._backlog = len(events) == free
            if events:
                self._submit(events)
                continue
            self._idle_wait()

    def _idle_wait(self) -> None:
        timeout = self.poll_interval
        try:
            due_in = self._processor().next_due_in()
        except Exception:
            due_in = None
        if due_in is not None:
            # Due now but not claimable: another claimer holds it for a moment; look again shortly.
            timeout = min(timeout, max(due_in, 0.005))
        self._wake.wait(timeout)

    def _reserve_local(self) -> _LocalReservation | None:
        # Hand-overs (agent/wakeup.py) take a slot only when the dispatcher's last look found no more due
        # than it could claim, so a local enqueue does not overtake a backlog the pool knows of.
        if self._stopping.is_set() or self._backlog:
            return None
        with self._slots:
            if self._in_flight >= self.size:
                return None
            self._in_flight += 1
        return _LocalReservation(self)

    def _adopt(self, event: EventSnapshot) -> None:
        """Run an event handed over by a local producer on a slot reserved for it."""
        if self._stopping.is_set():
            self._unreserve()
            self._release([event])
            return
        self._submit([event], reserved=True)

    def _unreserve(self) -> None:
        with self._slots:
            self._in_flight -= 1
            self._slots.notify_all()

    def _submit(self, events: list[EventSnapshot], *, reserved: bool = False) -> None:
        assert self._executor is not None
        if not reserved:
            with self._slots:
                self._in_flight += len(events)
        with self._running_lock:
            for event in events:
                self._running[event.id] = event
        with self._stats_lock:
            self._stats["total_events_claimed"] += len(events)
        for event in events:
            call_observer(self.observer, "on_claim", event, pickup_latency_seconds(event))
        for event in events:
            try:
                future = self._executor.submit(self._run_one, event)
            except RuntimeError:  # executor shut down under us: give the event back
                self._finish_slot(event)
                self._release([event])
                continue
            self._futures.add(future)
            future.add_done_callback(self._futures.discard)

    def _finish_slot(self, event: EventSnapshot) -> None:
        with self._running_lock:
            self._running.pop(event.id, None)
        with self._slots:
            self._in_flight -= 1
            self._slots.notify_all()

    def _run_one(self, event: EventSnapshot) -> None:
        structlog.contextvars.bind_contextvars(**event_log_context(event, worker=self.name))
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            self.process_func(event)
        except BaseException as exc:  # the job boundary: every failure is recorded, none escapes
            error = exc
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        try:
            if event.lease_lost.is_set():
                _log.warning("job finished after its lease was lost; result discarded", duration_ms=duration_ms)
                call_observer(self.observer, "on_lease_lost", event)
            elif error is None:
                with self._running_lock:
                    self._completing[event.id] = event
                self._completions.put(event)
                call_observer(self.observer, "on_complete", event, duration_ms / 1000)
                _log.info("event processed", outcome="completed", duration_ms=duration_ms)
            else:
                self._record_failure(event, error, duration_ms)
        finally:
            # The slot is freed only once the outcome is queued or written, so stop() never
            # shuts down under a failure that is still being recorded.
            self._finish_slot(event)
            structlog.contextvars.clear_contextvars()

    def _record_failure(self, event: EventSnapshot, error: BaseException, duration_ms: float) -> None:
        delay = 0.05
        deadline = time.monotonic() + self.visibility_timeout
        while True:
            try:
                with self._short_processor() as proc:
                    status = proc.fail_event(event, error)
                break
            except LeaseLostError:
                self._count("lost_leases")
                _log.warning("lease lost before the failure was recorded", duration_ms=duration_ms)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    # The lease has run out: the reaper will count this attempt.
                    _log.error("could not record failure; leaving it to the reaper", error=describe_error(exc))
                    return
                next_delay = self._db_error("fail", exc, delay, owned=False)
                time.sleep(delay)
                delay = next_delay
        permanent = isinstance(error, PermanentError)
        if status == "failed":
            self._count("total_events_failed")
            call_observer(self.observer, "on_fail", event, error, duration_ms / 1000, permanent)
            _log.error(
                "event failed",
                outcome="failed",
                permanent=permanent,
                duration_ms=duration_ms,
                error=describe_error(error),
            )
        else:
            self._count("total_events_retried")
            call_observer(self.observer, "on_retry", event, error, duration_ms / 1000)
            _log.warning("event will be retried", outcome="retry", duration_ms=duration_ms, error=describe_error(error))

    def _completion_loop(self) -> None:
        closing = False
        while True:
            try:
                first = self._completions.get(timeout=0.5)
            except queue.Empty:
                if self._shutdown.is_set() and self._completions.empty():
                    return
                continue
            batch: list[EventSnapshot] = []
            if first is None:
                closing = True
            else:
                batch.append(first)
            while len(batch) < COMPLETION_BATCH_MAX:
                try:
                    item = self._completions.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                else:
                    batch.append(item)
            if batch:
                self._flush_completions(batch)
            if closing and self._completions.empty():
                return

    def _flush_completions(self, batch: list[EventSnapshot]) -> None:
        delay = 0.05
        deadline = time.monotonic() + self.visibility_timeout
        while True:
            try:
                done = self._processor().complete_events(batch)
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    _log.error("could not record completions; their leases have expired", count=len(batch))
                    with self._running_lock:
                        for event in batch:
                            self._completing.pop(event.id, None)
                    return
                next_delay = self._db_error("complete", exc, delay)
                time.sleep(delay)
                delay = next_delay
        with self._running_lock:
            for event in batch:
                self._completing.pop(event.id, None)
        lost = [e for e in batch if e.id not in done]
        with self._stats_lock:
            self._stats["total_events_processed"] += len(done)
            self._stats["lost_leases"] += len(lost)
        for event in lost:
            _log.warning(
                "completion refused: lease lost (another worker owns or finished this event)",
                event_id=event.id,
                event_type=event.event_type,
            )

    def _maintenance_loop(self) -> None:
        next_heartbeat = time.monotonic() + self.heartbeat_interval
        next_reap = time.monotonic()
        while not self._shutdown.is_set():
            now = time.monotonic()
            if now >= next_heartbeat:
                self._heartbeat()
                next_heartbeat = now + self.heartbeat_interval
            if now >= next_reap:
                if not self._stopping.is_set():
                    self._reap()
                next_reap = now + self.reaper_interval
            self._shutdown.wait(max(0.001, min(next_heartbeat, next_reap) - time.monotonic()))

    def _heartbeat(self) -> None:
        with self._running_lock:
            running = [e for e in (*self._running.values(), *self._completing.values()) if not e.lease_lost.is_set()]
        if not running:
            return
        try:
            alive = self._processor().heartbeat_many(running)
        except Exception as exc:
            self._db_error("heartbeat", exc, 0.0)
            return
        for event in running:
            if event.id not in alive:
                event.lease_lost.set()
                self._count("lost_leases")
                _log.warning("heartbeat found the lease lost", event_id=event.id, event_type=event.event_type)

    def _reap(self) -> None:
        try:
            count = self._processor().reclaim_expired()
        except Exception as exc:
            self._db_error("reap", exc, 0.0)
            return
        if count:
            with self._stats_lock:
                self._stats["reclaimed"] += count
            call_observer(self.observer, "on_reclaim", count)
            _log.warning("reclaimed events whose lease expired", count=count)

    def _release(self, events: list[EventSnapshot]) -> int:
        released = 0
        for event in events:
            try:
                with self._short_processor() as proc:
                    if proc.release_event(event):
                        released += 1
            except Exception as exc:  # its lease will expire and the reaper returns it
                _log.warning("could not release lease", event_id=event.id, error=describe_error(exc))
        with self._stats_lock:
            self._stats["released"] += released
        return released

    def _close_sessions(self) -> None:
        with self._stats_lock:
            sessions, self._owned_sessions = self._owned_sessions, []
        for session in sessions:
            _close_session(session)

    def _count(self, name: str) -> None:
        with self._stats_lock:
            self._stats[name] += 1


class _LocalReservation:
    """One reserved slot of a pool, for an event a local producer inserts already claimed."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self._settled = threading.Lock()
        self._done = False
        self.worker_id = f"{pool.name}:handover"
        self.lease_seconds = pool.visibility_timeout

    def _settle(self) -> bool:
        with self._settled:
            first, self._done = not self._done, True
            return first

    def hand_over(self, event: EventSnapshot) -> None:
        if self._settle():
            self._pool._adopt(event)

    def cancel(self) -> None:
        if self._settle():
            self._pool._unreserve()


def _close_session_only(session: Session) -> None:
    try:
        session.close()
    except Exception:
        pass


def _close_session(session: Session) -> None:
    """Close a thread's session and the connection it is bound to, whatever state they are in."""
    bind = session.bind
    try:
        session.close()
    except Exception:  # a connection the database already dropped: nothing to give back
        pass
    try:
        bind.close()  # type: ignore[union-attr]
    except Exception:
        pass


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value
