"""The queue commands of the CLI, run in-process against a real database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

import athenaeum
from agent import EventProcessor
from database import DatabaseConnection

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("LOG_FORMAT", "json")

    def run(*argv: str) -> tuple[int, str, str]:
        code = athenaeum.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _seed(db: DatabaseConnection) -> tuple[int, int]:
    with db.session() as s:
        p = EventProcessor(s)
        ok = p.enqueue_event("slack.message", {"n": 1})
        bad = p.enqueue_event("slack.message", {"n": 2})
    p = EventProcessor(db.new_session(), "cli-test")
    first = p.claim_event()
    p.complete_event(first)  # type: ignore[arg-type]
    p.fail_event(p.claim_event(), "payload missing 'channel' xoxb-0000000000-canary", permanent=True)  # type: ignore[arg-type]
    p.session.close()
    return ok.id, bad.id


def test_status_reports_health_and_counts(cli, db: DatabaseConnection) -> None:
    _seed(db)
    code, out, _ = cli("status", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["database"]["healthy"] is True
    assert report["queue"]["completed"] == 1 and report["queue"]["failed"] == 1
    assert report["workers_seen_last_hour"] == 1
    code, out, _ = cli("status")
    assert "completed 1" in out and "failed 1" in out


def test_events_list_show_retry_and_purge(cli, db: DatabaseConnection) -> None:
    ok_id, bad_id = _seed(db)
    code, out, _ = cli("events", "list", "--status", "failed", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == [bad_id]
    assert "canary" not in out and "***" in rows[0]["error_message"]
    code, out, _ = cli("events", "show", str(bad_id))
    shown = json.loads(out)
    assert shown["payload"] == {"n": 2} and shown["attempt_log"][0]["outcome"] == "failed"
    assert cli("events", "show", "999999")[0] == 1
    code, out, _ = cli("events", "retry", str(bad_id))
    assert code == 0 and "requeued 1" in out
    assert cli("events", "retry", "--all-failed")[1].startswith("requeued 0")
    with db.session() as s:
        s.execute(text("UPDATE events SET processed_at = now() - interval '3 days' WHERE id = :i"), {"i": ok_id})
    code, out, _ = cli("events", "purge", "--older-than", "2")
    assert code == 0 and "purged 1" in out
    with db.session() as s:
        assert dict(s.execute(text("SELECT id, status FROM events")).all()) == {bad_id: "pending"}


def test_doctor_and_db_commands(cli) -> None:
    code, out, _ = cli("doctor")
    assert code == 0, out
    assert "[ok] database reachable" in out and "[note] Slack not configured" in out
    code, out, _ = cli("db", "upgrade")
    from database.migrations import head_revisions

    assert code == 0 and f"-> {sorted(head_revisions())[-1]}" in out
    code, out, _ = cli("db", "start")
    assert code == 0 and out.strip().startswith("postgresql://")


def test_bad_configuration_is_one_clear_error(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_POOL_SIZE", "many")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    code, _, err = cli("status")
    assert code == 2
    assert "WORKER_POOL_SIZE='many'" in err and "LOG_LEVEL='loud'" in err


def test_run_refuses_an_unmigrated_database(empty_database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "athenaeum.py", "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": empty_database_url, "HOME": "/tmp"},
    )
    assert result.returncode == 2
    assert "python athenaeum.py db upgrade" in result.stderr


def test_run_serves_until_sigterm_and_exits_zero(database_url: str, db: DatabaseConnection) -> None:
    import signal

    proc = subprocess.Popen(
        [sys.executable, "athenaeum.py", "run", "--workers", "2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": database_url,
            "HOME": "/tmp",
            "LOG_FORMAT": "json",
            "HEALTH_PORT": "0",
        },
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "worker pool started" in line:
                break
        with db.session() as s:
            EventProcessor(s).enqueue_event("smoke", {"hello": "world"})
        from tests.support.waiting import status_counts, wait_for

        wait_for(lambda: status_counts(db).get("completed") == 1, what="the service processed the event")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
