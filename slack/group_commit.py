"""Group commit for live ingestion: items that arrive together are handed over as one batch.

A few threads take work from one queue. Each takes whatever is waiting (up to ``max_batch`` items) and
passes the batch to ``handle_batch``, which writes it in one transaction and settles each item (for Socket
Mode: ack it) after that commit. While one batch commits, the next one accumulates, so the cost of a
transaction (pool checkout, ``BEGIN``, ``COMMIT`` and its WAL flush) is paid once per
batch instead of once per item exactly when items arrive faster than one transaction per item allows. A
lone item is a batch of one and is not delayed: nothing waits to fill a batch. :meth:`GroupCommitter.batch_sizes`
tells how the batches came out (exported as ``athenaeum_slack_ingest_batch_size`` by ``agent.metrics``).

``handle_batch`` must not raise; if it does, the error is logged, the thread keeps running, and the items
of that batch are simply not settled (Slack redelivers unacked envelopes).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import structlog

_log = structlog.get_logger("athenaeum.slack.group_commit")

T = TypeVar("T")

DEFAULT_THREADS = 2
DEFAULT_MAX_BATCH = 100
_STOP: Any = object()


class GroupCommitter(Generic[T]):
    """Threads that hand queued items to ``handle_batch`` in batches of what arrived together.

    Args:
        handle_batch: writes and settles a batch, in arrival order; must not raise.
        threads: batches written at once (more than one keeps a slow transaction from holding up the rest).
        max_batch: the most items in one batch (bounds a transaction's size).
        name: thread name prefix.
    """

    def __init__(
        self,
        handle_batch: Callable[[list[T]], None],
        *,
        threads: int = DEFAULT_THREADS,
        max_batch: int = DEFAULT_MAX_BATCH,
        name: str = "slack-ingest",
    ) -> None:
        if threads < 1 or max_batch < 1:
            raise ValueError("threads and max_batch must be at least 1")
        self._handle_batch = handle_batch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stopping = False
        # Counted under a lock: several threads finish batches at once, and ``+=`` is not atomic.
        self._count_lock = threading.Lock()
        self._sizes: Counter[int] = Counter()
        self.batches = 0  # batches handled (for metrics and tests)
        self.largest_batch = 0
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, item: T) -> None:
        """Queue ``item``; an idle thread takes it at once. Ignored after :meth:`stop`."""
        if not self._stopping:
            self._queue.put(item)

    def batch_sizes(self) -> dict[int, int]:
        """How many batches of each size were handled so far (size -> batches), for metrics.

        Exact counts rather than histogram buckets: there are at most ``max_batch`` sizes, and the metrics
        layer chooses the buckets.
        """
        with self._count_lock:
            return dict(self._sizes)

    def pending(self) -> int:
        """Items waiting for a thread (approximate while threads are taking them)."""
        return self._queue.qsize()

    def stop(self, timeout_seconds: float) -> bool:
        """Let each thread finish its current batch and exit; items still queued are dropped (never settled).

        Returns whether every thread exited within ``timeout_seconds``.
        """
        self._stopping = True
        for _ in self._threads:
            self._queue.put(_STOP)
        deadline = time.monotonic() + timeout_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP or self._stopping:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    self._queue.put(_STOP)  # for this thread's next turn, after the batch in hand
                    break
                batch.append(more)
            with self._count_lock:
                self._sizes[len(batch)] += 1
                self.batches += 1
                self.largest_batch = max(self.largest_batch, len(batch))
            try:
                self._handle_batch(batch)
            except Exception:
                _log.exception("ingest batch failed; its envelopes stay unacked", size=len(batch))
