"""Locust load on the HTTP Events API endpoint with signed requests (``make load`` runs it headless).

    LOAD_SIGNING_SECRET=... locust -f tests/performance/locustfile.py --host http://127.0.0.1:3000 \\
        --headless -u 20 -r 5 -t 60s

Each simulated Slack sends ``event_callback`` requests signed as Slack signs them (see ``slack_load.py``,
which builds them) to ``LOAD_EVENTS_PATH`` (default ``/slack/events``), and one in twenty is a redelivery
of the event before it with ``X-Slack-Retry-Num``. A response slower than Slack's 3 s deadline is a failure.
Locust reports requests/s, ack latency percentiles and failures.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from locust import HttpUser, constant_throughput, task
from slack_load import ACK_DEADLINE_SECONDS, event_body, signed_headers

SECRET = os.environ.get("LOAD_SIGNING_SECRET", "load-test-signing-secret")
PATH = os.environ.get("LOAD_EVENTS_PATH", "/slack/events")
_numbers = itertools.count()


class SlackEventsSender(HttpUser):
    """One Slack workspace sending events at about 5 per second."""

    wait_time = constant_throughput(5)

    @task
    def send_event(self) -> None:
        n = next(_numbers)
        retry = 1 if n % 20 == 19 else 0
        body = event_body(n - 1 if retry else n)
        started = time.perf_counter()
        with self.client.post(
            PATH,
            data=body,
            headers=signed_headers(SECRET, body, retry),
            name="event_callback (redelivery)" if retry else "event_callback",
            catch_response=True,
        ) as response:
            if time.perf_counter() - started > ACK_DEADLINE_SECONDS:
                response.failure("ack later than Slack's 3 s deadline")
            elif not 200 <= response.status_code < 300:
                response.failure(f"HTTP {response.status_code}")
            else:
                response.success()
