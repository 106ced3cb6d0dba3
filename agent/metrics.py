"""Prometheus metrics: counters fed by the worker pool and the assistant, gauges read at scrape time.

One :class:`Metrics` owns a private ``CollectorRegistry`` (so tests and several pools in one process
never collide) and is the pool's :class:`~agent.observers.PoolObserver`. Queue gauges (depth by status
and type, oldest due age) are read from PostgreSQL when ``/metrics`` is scraped, with cheap queries on
the partial and status indexes, so they describe the whole cluster, not just this process. Counters
describe this process (sum them across pods in PromQL).

Metric names (all prefixed ``athenaeum_``) are listed in docs/OPERATIONS.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from agent import observers
from agent.observers import PoolObserver
from agent.snapshot import EventSnapshot
from database import DatabaseConnection

_log = structlog.get_logger("athenaeum.metrics")

#: Processing time buckets in seconds: sub-second queue work up to multi-minute agent runs.
DURATION_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: Pickup latency buckets: wake-ups are sub-millisecond, the safety-net poll is about a second.
PICKUP_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
#: Envelopes per Socket Mode ingest transaction: 1 when traffic is light, up to the committer's max batch (100).
INGEST_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100)
SCRAPE_STATEMENT_TIMEOUT_MS = 2000
CONTENT_TYPE = CONTENT_TYPE_LATEST

_QUEUE_COUNTS_SQL = text(
    "SELECT status, event_type, count(*) FROM events "
    "WHERE status IN ('pending', 'processing', 'failed') GROUP BY status, event_type"
)
_OLDEST_DUE_SQL = text(
    "SELECT extract(epoch FROM statement_timestamp() - min(run_after)) FROM events "
    "WHERE status = 'pending' AND run_after <= statement_timestamp()"
)


class Metrics(PoolObserver):
    """Every Athenaeum metric, in one registry.

    Args:
        db: the database whose queue and connection pool are reported at scrape time (optional).
        pool: the ``WorkerPool`` whose in-flight and worker gauges are reported (optional; set later
            with :meth:`attach_pool`).
        registry: where to register; a fresh private registry by default.
    """

    def __init__(
        self,
        db: DatabaseConnection | None = None,
        pool: Any = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.enqueued = Counter(
            "athenaeum_events_enqueued", "Events inserted by this process", ["event_type"], registry=r
        )
        self.claimed = Counter("athenaeum_events_claimed", "Events claimed by this process", ["event_type"], registry=r)
        self.completed = Counter(
            "athenaeum_events_completed", "Events whose job returned successfully", ["event_type"], registry=r
        )
        self.failed = Counter(
            "athenaeum_events_failed", "Events that ended failed", ["event_type", "permanent"], registry=r
        )
        self.retried = Counter(
            "athenaeum_events_retried", "Failed attempts rescheduled with backoff", ["event_type"], registry=r
        )
        self.lease_lost = Counter(
            "athenaeum_events_lease_lost", "Jobs whose result was discarded: lease lost", ["event_type"], registry=r
        )
        self.reclaimed = Counter("athenaeum_events_reclaimed", "Expired leases returned to the queue", registry=r)
        self.duration = Histogram(
            "athenaeum_event_processing_seconds",
            "Time process_func ran, by outcome",
            ["event_type", "outcome"],
            buckets=DURATION_BUCKETS_SECONDS,
            registry=r,
        )
        self.pickup = Histogram(
            "athenaeum_event_pickup_latency_seconds",
            "Claim time minus the time the event fell due (database clock)",
            ["event_type"],
            buckets=PICKUP_BUCKETS_SECONDS,
            registry=r,
        )
        self.llm_tokens = Counter("athenaeum_llm_tokens", "LLM tokens used", ["model", "kind"], registry=r)
        self.llm_errors = Counter(
            "athenaeum_llm_errors", "LLM calls that failed, by error class", ["error_class"], registry=r
        )
        self.tool_calls = Counter(
            "athenaeum_tool_calls", "MCP tool calls, by server and outcome", ["server", "outcome"], registry=r
        )
        self._db = db
        self._pool = pool
        self._slack: Any = None
        self._listening = False
        r.register(_ScrapeTimeCollector(self))
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, open fds

    # ----------------------------------------------------------------------------- wiring
    def attach_pool(self, pool: Any) -> None:
        """Report ``pool``'s in-flight and worker gauges (a ``WorkerPool``)."""
        self._pool = pool

    def attach_slack(self, source: Any) -> None:
        """Report a Slack ingestion handler at scrape time.

        ``source`` has ``stats`` (a mapping of counters such as ``acked`` and ``duplicates``) and
        optionally ``is_connected()`` and ``batch_sizes()`` (group-commit transactions by envelopes per
        transaction, see :mod:`slack.group_commit`); the Slack package stays free of any metrics dependency.
        """
        self._slack = source

    @property
    def slack_source(self) -> Any:
        """The Slack ingestion handler given to :meth:`attach_slack`, or ``None``."""
        return self._slack

    def listen(self) -> None:
        """Count what this process reports through :mod:`agent.observers` signals (enqueues, LLM, tools)."""
        if not self._listening:
            for signal, handler in self._signal_handlers():
                observers.subscribe(signal, handler)
            self._listening = True

    def close(self) -> None:
        """Stop listening to signals."""
        if self._listening:
            for signal, handler in self._signal_handlers():
                observers.unsubscribe(signal, handler)
            self._listening = False

    def _signal_handlers(self) -> list[tuple[str, Any]]:
        return [
            ("enqueued", self.record_enqueued),
            ("llm_usage", self.record_llm_usage),
            ("llm_error", self._on_llm_error),
            ("tool_call", self._on_tool_call),
        ]

    def _on_llm_error(self, error_class: str) -> None:
        self.record_llm_error(error_class)

    def _on_tool_call(self, server: str, tool: str | None = None, ok: bool = True) -> None:
        self.record_tool_call(server, ok)

    def render(self) -> bytes:
        """The registry in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    # ----------------------------------------------------------------------------- recording
    def record_enqueued(self, event_type: str, count: int = 1) -> None:
        """Count ``count`` inserted events of ``event_type``."""
        self.enqueued.labels(event_type).inc(count)

    def record_llm_usage(
        self,
        model: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        """Count the tokens of one LLM call."""
        for kind, count in (
            ("input", input_tokens),
            ("output", output_tokens),
            ("cache_read", cache_read_tokens),
            ("cache_write", cache_write_tokens),
        ):
            if count:
                self.llm_tokens.labels(model, kind).inc(count)

    def record_llm_error(self, error: BaseException | str) -> None:
        """Count one failed LLM call by its error class name."""
        self.llm_errors.labels(error if isinstance(error, str) else type(error).__name__).inc()

    def record_tool_call(self, server: str, ok: bool = True) -> None:
        """Count one MCP tool call to ``server``."""
        self.tool_calls.labels(server, "ok" if ok else "error").inc()

    # ----------------------------------------------------------------------------- PoolObserver
    def on_claim(self, event: EventSnapshot, pickup_latency_seconds: float | None) -> None:
        self.claimed.labels(event.event_type).inc()
        if pickup_latency_seconds is not None:
            self.pickup.labels(event.event_type).observe(pickup_latency_seconds)

    def on_complete(self, event: EventSnapshot, duration_seconds: float) -> None:
        self.completed.labels(event.event_type).inc()
        self.duration.labels(event.event_type, "completed").observe(duration_seconds)

    def on_retry(self, event: EventSnapshot, error: BaseException, duration_seconds: float) -> None:
        self.retried.labels(event.event_type).inc()
        self.duration.labels(event.event_type, "retry").observe(duration_seconds)

    def on_fail(self, event: EventSnapshot, error: BaseException, duration_seconds: float, permanent: bool) -> None:
        self.failed.labels(event.event_type, "true" if permanent else "false").inc()
        self.duration.labels(event.event_type, "failed").observe(duration_seconds)

    def on_lease_lost(self, event: EventSnapshot) -> None:
        self.lease_lost.labels(event.event_type).inc()

    def on_reclaim(self, count: int) -> None:
        self.reclaimed.inc(count)

    # ----------------------------------------------------------------------------- scrape time
    def _collect_scrape_time(self) -> Iterator[Any]:
        if self._pool is not None:
            stats = self._pool.get_stats()
            yield _gauge(
                "athenaeum_events_in_flight", "Events being processed by this process", stats.get("in_flight", 0)
            )
            workers = GaugeMetricFamily("athenaeum_workers", "Worker threads of this process", labels=["state"])
            workers.add_metric(["configured"], stats.get("size", 0))
            workers.add_metric(["running"], stats.get("workers_running", 0))
            yield workers
            yield _gauge(
                "athenaeum_listener_connected",
                "1 when LISTEN/NOTIFY wake-ups are connected",
                1 if stats.get("listener_connected") else 0,
            )
            yield _gauge(
                "athenaeum_pool_database_errors", "Database errors the pool backed off from", stats.get("db_errors", 0)
            )
        if self._slack is not None:
            yield from _slack_families(self._slack)
        if self._db is None:
            return
        pool_status = self._db.get_pool_status()
        conns = GaugeMetricFamily("athenaeum_db_pool_connections", "SQLAlchemy connection pool", labels=["state"])
        for state in ("size", "checked_in", "checked_out", "overflow"):
            conns.add_metric([state], pool_status.get(state, 0))
        yield conns
        pings = CounterMetricFamily(
            "athenaeum_db_pings",
            "Liveness pings of pooled connections before reuse (dead: the pool was discarded and reconnected)",
            labels=["outcome"],
        )
        for outcome, count in sorted(self._db.get_ping_stats().items()):
            pings.add_metric([outcome], count)
        yield pings
        try:
            counts, oldest = self._query_queue()
        except Exception as exc:
            _log.warning("metrics: queue query failed", error=type(exc).__name__)
            yield _gauge("athenaeum_database_up", "1 when the scrape-time queue query succeeded", 0)
            return
        yield _gauge("athenaeum_database_up", "1 when the scrape-time queue query succeeded", 1)
        depth = GaugeMetricFamily(
            "athenaeum_queue_events", "Events not yet completed, by status and type", labels=["status", "event_type"]
        )
        for (status, event_type), count in sorted(counts.items()):
            depth.add_metric([status, event_type], count)
        yield depth
        yield _gauge(
            "athenaeum_queue_depth",
            "Pending events (due now or later)",
            sum(c for (s, _), c in counts.items() if s == "pending"),
        )
        yield _gauge(
            "athenaeum_queue_oldest_due_age_seconds",
            "How long the longest-waiting due event has waited (0 when none)",
            oldest or 0.0,
        )

    def _query_queue(self) -> tuple[dict[tuple[str, str], int], float | None]:
        assert self._db is not None
        with self._db.session() as session:
            session.execute(text(f"SET LOCAL statement_timeout = {SCRAPE_STATEMENT_TIMEOUT_MS}"))
            counts = {(s, t): int(c) for s, t, c in session.execute(_QUEUE_COUNTS_SQL).all()}
            oldest = session.execute(_OLDEST_DUE_SQL).scalar_one()
        return counts, None if oldest is None else max(0.0, float(oldest))


def _slack_families(source: Any) -> Iterator[Any]:
    stats = dict(getattr(source, "stats", {}) or {})
    acks = CounterMetricFamily("athenaeum_slack_acks", "Socket Mode envelopes acknowledged")
    acks.add_metric([], stats.get("acked", 0))
    yield acks
    dedupe = CounterMetricFamily("athenaeum_slack_dedupe_hits", "Slack deliveries recognised as duplicates")
    dedupe.add_metric([], stats.get("duplicates", 0))
    yield dedupe
    envelopes = CounterMetricFamily(
        "athenaeum_slack_envelopes", "Socket Mode envelopes by what happened to them", labels=["outcome"]
    )
    for outcome, count in sorted(stats.items()):
        if isinstance(count, int | float):
            envelopes.add_metric([outcome], count)
    yield envelopes
    is_connected = getattr(source, "is_connected", None)
    if callable(is_connected):
        try:
            connected = bool(is_connected())
        except Exception:
            connected = False
        yield _gauge("athenaeum_slack_connected", "1 while the Socket Mode connection is up", 1 if connected else 0)
    batch_sizes = getattr(source, "batch_sizes", None)
    if callable(batch_sizes):
        yield from _ingest_batch_families(batch_sizes())


def _ingest_batch_families(sizes: dict[int, int]) -> Iterator[Any]:
    """Group-commit transactions of Socket Mode ingestion: how many, and how many envelopes each held."""
    batches = sum(sizes.values())
    total = CounterMetricFamily(
        "athenaeum_slack_ingest_batches", "Socket Mode ingest transactions (group commits) written by this process"
    )
    total.add_metric([], batches)
    yield total
    buckets = [(str(float(le)), sum(n for size, n in sizes.items() if size <= le)) for le in INGEST_BATCH_BUCKETS]
    histogram = HistogramMetricFamily(
        "athenaeum_slack_ingest_batch_size",
        "Envelopes written per Socket Mode ingest transaction",
        buckets=[*buckets, ("+Inf", batches)],
        sum_value=sum(size * n for size, n in sizes.items()),
    )
    yield histogram
    yield _gauge(
        "athenaeum_slack_ingest_largest_batch",
        "Most envelopes written in one Socket Mode ingest transaction since start",
        max(sizes, default=0),
    )


class _ScrapeTimeCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        yield from self._metrics._collect_scrape_time()


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
