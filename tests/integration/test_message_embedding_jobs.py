"""Messages get their embeddings from a worker: ingestion schedules one job a minute, `run` routes it."""

from __future__ import annotations

from sqlalchemy import text

import athenaeum
from agent import EventProcessor
from agent.commands.context import AppContext
from agent.config import Config
from database import DatabaseConnection
from slack.client import BotIdentity
from slack.ingest import EMBED_EVENT_TYPE, Ingester
from tests.fakes import slack_events as ev
from tests.fakes.slack import FakeSlack

BOT = BotIdentity(team_id="T0FAKE", user_id="UBOT", bot_id="BBOT")
fake = FakeSlack()  # builds payloads only


def test_stored_messages_schedule_one_embedding_job_per_minute(db: DatabaseConnection) -> None:
    ingester = Ingester(db, lambda s: EventProcessor(s, worker_id="test"), BOT, ())
    for i in range(3):
        ingester.ingest(fake.event_callback(ev.message("C1", f"1700000000.00010{i}", f"hello {i}"), event_id=f"E{i}"))
    with db.session() as s:
        jobs = s.execute(
            text("SELECT dedupe_key, run_after > now() AS later FROM events WHERE event_type = :t"),
            {"t": EMBED_EVENT_TYPE},
        ).all()
    assert len(jobs) == 1  # a burst in one minute shares one job (two if the minute turned meanwhile)
    assert jobs[0].dedupe_key.startswith("embed:") and jobs[0].later


def test_run_routes_embedding_jobs_to_the_slack_mcp_worker(db: DatabaseConnection, database_url: str) -> None:
    ingester = Ingester(db, lambda s: EventProcessor(s, worker_id="test"), BOT, ())
    ingester.ingest(fake.event_callback(ev.message("C1", "1700000000.000100", "leases expire"), event_id="E1"))
    with db.session() as s:
        s.execute(text("UPDATE events SET run_after = now() WHERE event_type = :t"), {"t": EMBED_EVENT_TYPE})
        s.execute(text("UPDATE events SET status = 'completed' WHERE event_type <> :t"), {"t": EMBED_EVENT_TYPE})
    proc = EventProcessor(db.new_session(), "w")
    job = proc.claim_event()
    assert job is not None and job.event_type == EMBED_EVENT_TYPE
    ctx = AppContext(Config(environ={"DATABASE_URL": database_url}, env_file=None))
    handler = athenaeum.run_commands._HANDLER_FACTORIES[EMBED_EVENT_TYPE](ctx)
    handler(job)
    proc.complete_event(job)
    proc.session.close()
    with db.session() as s:
        row = s.execute(
            text("SELECT model, embedding_384 IS NOT NULL AS has_vector FROM slack_message_embeddings")
        ).one()
    assert row.has_vector and "MiniLM" in row.model
