"""`python athenaeum.py run` as a real process: probes, metrics and dashboard served, JSON logs, SIGTERM exit."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent import EventProcessor
from database import DatabaseConnection
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
ADMIN_CANARY = "admin-CANARY-token-never-logged"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return 0, b""


def _completed(port: int) -> float:
    status, body = _get(port, "/metrics")
    if status != 200:
        return 0.0
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "athenaeum_events_completed_total" and sample.labels.get("event_type") == "demo.ping":
                return sample.value
    return 0.0


@pytest.mark.slow
def test_run_serves_health_metrics_and_dashboard_logs_json_and_stops_on_sigterm(
    database_url: str, db: DatabaseConnection, tmp_path: Path
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_", "OPENAI_", "GITHUB_"))}
    env.update(
        DATABASE_URL=database_url,
        HEALTH_PORT=str(port),
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        ADMIN_TOKEN=ADMIN_CANARY,
        WORKER_POOL_SIZE="2",
        POLL_INTERVAL="0.2",
        STOP_GRACE_PERIOD="5",
        ATHENAEUM_DATA_DIR=str(tmp_path),
    )
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "athenaeum.py", "run"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            wait_for(lambda: _get(port, "/readyz")[0] == 200, timeout=60, what="the service to be ready")
            ready = json.loads(_get(port, "/readyz")[1])
            assert {"database", "migrations", "worker_pool"} <= set(ready["checks"])
            assert _get(port, "/healthz")[0] == 200
            with db.session() as s:
                event_id = EventProcessor(s).enqueue_event("demo.ping", {"channel": "C0PING"}).id
            wait_for(lambda: _completed(port) == 1, what="the event to complete and be counted")
            # The counter moves when the completion is queued; the dashboard reads the row, which the
            # completer thread commits a moment later.
            wait_for(
                lambda: b'id="count-completed">1<' in _get(port, "/")[1], what="the dashboard to show it completed"
            )
            assert _get(port, "/")[0] == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = [json.loads(line) for line in stderr_path.read_text().splitlines() if line.strip()]
    assert lines, "the service wrote no log lines"
    assert ADMIN_CANARY not in stderr_path.read_text()
    received = [ln for ln in lines if ln.get("event") == "event received"]
    assert len(received) == 1
    assert received[0]["event_id"] == event_id and received[0]["channel"] == "C0PING"
    assert received[0]["attempt"] == 1 and received[0]["worker"]
    assert any(ln.get("event") == "health server listening" and ln.get("port") == port for ln in lines)
