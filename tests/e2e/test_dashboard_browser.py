"""The admin dashboard in a real headless browser (Debian's chromium through its chromedriver).

Loads the page, checks the numbers against the database, signs in with the admin token, retries a
failed event with the button and sees it pending. Needs ``/usr/bin/chromium`` and
``/usr/bin/chromedriver`` (``.ci/run`` installs them with apt when missing).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from sqlalchemy import text

from agent import EventProcessor, PermanentError
from agent.health_server import HealthServer
from agent.readiness import Readiness
from database import DatabaseConnection
from tests.support.waiting import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ADMIN_TOKEN = "dashboard-admin-token-for-tests"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2000",
)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are required: apt-get install -y chromium chromium-driver")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never try to download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _seed(db: DatabaseConnection) -> tuple[list[int], int]:
    """Three completed, one failed (with a message), two pending events; returns (pending ids, failed id)."""
    with db.session() as s:
        p = EventProcessor(s)
        done = [p.enqueue_event("slack.message", {"i": i}).id for i in range(3)]
        failed = p.enqueue_event("slack.app_mention", {"channel": "C1"}).id
    worker = EventProcessor(db.new_session(), worker_id="host:1:pool-1:athenaeum-worker_0")
    claimed = {e.id: e for e in worker.claim_events(10)}
    assert set(claimed) == {*done, failed}
    worker.complete_events([claimed[i] for i in done])
    worker.fail_event(claimed[failed], PermanentError("the LLM refused the request (400): <b>bad</b>"))
    worker.session.close()
    with db.session() as s:
        p = EventProcessor(s)
        pending = [p.enqueue_event("slack.message", {"later": i}).id for i in range(2)]
    return pending, failed


def _db_counts(db: DatabaseConnection) -> dict[str, int]:
    with db.session() as s:
        return EventProcessor(s).get_queue_stats()


def _text(driver: webdriver.Chrome, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text.strip()


def test_dashboard_shows_database_numbers_and_retries_a_failed_event(
    db: DatabaseConnection, browser: webdriver.Chrome
) -> None:
    pending, failed_id = _seed(db)
    server = HealthServer(0, Readiness(), db=db, admin_token=ADMIN_TOKEN, host="127.0.0.1")
    server.start()
    try:
        browser.get(server.url + "/")
        counts = _db_counts(db)
        assert counts == {"pending": 2, "processing": 0, "completed": 3, "failed": 1}
        for status, count in counts.items():
            assert _text(browser, f"count-{status}") == str(count)
        assert _text(browser, "completed-1h") == "3"
        assert _text(browser, "oldest-due") != "-"  # two events are due now
        assert _text(browser, f"status-{pending[0]}") == "pending"
        # The stored error is shown escaped, as text.
        row = browser.find_element(By.ID, f"failed-{failed_id}")
        assert "the LLM refused the request (400): <b>bad</b>" in row.text
        assert "host:1:pool-1" in browser.find_element(By.ID, "workers").text
        with db.session() as s:
            has_runs_table = s.execute(text("SELECT to_regclass('agent_runs') IS NOT NULL")).scalar_one()
        if has_runs_table:  # the assistant's migration is applied: an empty table is shown
            assert "no runs yet" in browser.find_element(By.ID, "agent-runs").text
        else:
            assert browser.find_element(By.ID, "agent-runs-absent").is_displayed()

        retry = browser.find_element(By.ID, f"retry-{failed_id}")
        assert not retry.is_enabled()  # not signed in yet

        browser.find_element(By.ID, "admin-token").send_keys(ADMIN_TOKEN)
        browser.find_element(By.ID, "sign-in").click()
        wait_for(lambda: browser.find_elements(By.ID, "sign-out"), what="signed in")

        browser.find_element(By.ID, f"retry-{failed_id}").click()
        wait_for(lambda: browser.find_elements(By.ID, "flash"), what="the retry result")
        assert _text(browser, "flash") == f"event {failed_id} requeued"
        assert _text(browser, f"status-{failed_id}") == "pending"
        assert _text(browser, "count-failed") == "0" and _text(browser, "count-pending") == "3"
        with db.session() as s:
            status = s.execute(text("SELECT status FROM events WHERE id = :i"), {"i": failed_id}).scalar_one()
        assert status == "pending"
    finally:
        server.stop()


def test_dashboard_lists_agent_runs_when_the_table_exists(db: DatabaseConnection, browser: webdriver.Chrome) -> None:
    with db.session() as s:
        exists = s.execute(text("SELECT to_regclass('agent_runs') IS NOT NULL")).scalar_one()
        if exists:  # the assistant's migration (issue 4): request_key, mode and status are required there
            s.execute(
                text(
                    "INSERT INTO agent_runs (event_id, request_key, mode, model, status, input_tokens, "
                    "output_tokens, cost_usd) VALUES (7, 'T1:C1:1.0', 'llm', 'claude-sonnet-4-5', 'ok', 1234, 56, "
                    "0.004542)"
                )
            )
        else:  # before it lands: a stand-in with the columns the assistant records
            s.execute(
                text(
                    "CREATE TABLE agent_runs (id bigserial PRIMARY KEY, event_id bigint, model text, "
                    "input_tokens int, output_tokens int, cost_usd numeric(10,6), created_at timestamptz DEFAULT now())"
                )
            )
            s.execute(
                text(
                    "INSERT INTO agent_runs (event_id, model, input_tokens, output_tokens, cost_usd) "
                    "VALUES (7, 'claude-sonnet-4-5', 1234, 56, 0.004542)"
                )
            )
    server = HealthServer(0, Readiness(), db=db, host="127.0.0.1")
    server.start()
    try:
        browser.get(server.url + "/")
        table = browser.find_element(By.ID, "agent-runs").text
        assert "1234" in table and "claude-sonnet-4-5" in table and "0.004542" in table
        assert browser.find_element(By.ID, "admin-disabled").is_displayed()
    finally:
        server.stop()
