"""Socket Mode against the fake Slack: acks and duplicates show in /metrics, and /readyz follows the connection."""

from __future__ import annotations

import http.client
import json

from prometheus_client.parser import text_string_to_metric_families

from agent.commands.run import start_slack
from agent.health_server import HealthServer
from agent.metrics import Metrics
from agent.readiness import Readiness
from database import DatabaseConnection
from tests.e2e.test_slack_run_wiring import context
from tests.fakes import slack_events as ev
from tests.fakes.slack import FakeSlack


def _get(server: HealthServer, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _sample(server: HealthServer, name: str) -> float:
    body = _get(server, "/metrics")[1].decode()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise KeyError(name)


def test_socket_mode_acks_duplicates_and_connection_are_observable(db: DatabaseConnection) -> None:
    metrics = Metrics(db=db)
    with FakeSlack() as fake:
        fake.add_channel("C1", "general")
        ctx = context(db, SLACK_BOT_TOKEN=fake.bot_token, SLACK_APP_TOKEN=fake.app_token, SLACK_API_URL=fake.api_url)
        stop = start_slack(ctx, metrics=metrics)
        assert stop is not None and metrics.slack_source is not None
        readiness = Readiness()
        readiness.add_check("slack", lambda: metrics.slack_source.is_connected())
        server = HealthServer(0, readiness, metrics=metrics, host="127.0.0.1")
        server.start()
        try:
            assert _get(server, "/readyz")[0] == 200
            assert _sample(server, "athenaeum_slack_connected") == 1
            callback = fake.event_callback(ev.message("C1", "1700000400.000001", "hi"))
            first = fake.send_envelope(callback)
            again = fake.send_envelope(callback)  # the same event redelivered
            assert fake.wait_for_acks([first, again], 15)
            assert fake.wait_for(lambda: _sample(server, "athenaeum_slack_acks_total") == 2, 15)
            assert _sample(server, "athenaeum_slack_dedupe_hits_total") == 1
        finally:
            fake.drop_connections()
            stop()
        status, body = _get(server, "/readyz")
        assert status == 503 and json.loads(body)["checks"]["slack"]["ok"] is False
        assert _sample(server, "athenaeum_slack_connected") == 0
        server.stop()
