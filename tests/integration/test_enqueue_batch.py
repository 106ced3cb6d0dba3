"""Batched enqueue as one array statement: order, duplicates, defaults, transactions and payload fidelity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from agent import EventProcessor
from database import DatabaseConnection


def test_a_batch_keeps_order_skips_duplicate_keys_and_round_trips_every_field(db: DatabaseConnection) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    payloads = [{"i": i, "text": 'naïve ☃ "quoted" \\ back', "nested": {"list": [1, None, True]}} for i in range(5)]
    with db.session() as s:
        p = EventProcessor(s)
        existing = p.enqueue_event("t", {"old": True}, key="k1").id
        ids = p.enqueue_events(
            [
                ("a", payloads[0]),
                ("b", payloads[1], "k1"),  # already stored: skipped
                ("c", payloads[2], "k2", later),
                {"event_type": "d", "payload": payloads[3], "key": "k2"},  # same key twice in one batch
                {"event_type": "e", "payload": payloads[4]},
            ]
        )
    assert len(ids) == 3 and ids == sorted(ids) and existing not in ids
    with db.session() as s:
        rows = s.execute(text("SELECT * FROM events WHERE id = ANY(:ids) ORDER BY id"), {"ids": ids}).mappings().all()
    assert [r["event_type"] for r in rows] == ["a", "c", "e"]
    assert [r["payload"] for r in rows] == [payloads[0], payloads[2], payloads[4]]
    assert [r["dedupe_key"] for r in rows] == [None, "k2", None]
    assert rows[1]["run_after"] == later
    assert rows[0]["run_after"] <= datetime.now(UTC) and rows[0]["status"] == "pending"
    assert all(r["attempts"] == 0 and r["retry_count"] == 0 and r["attempt_log"] == [] for r in rows)


def test_a_batch_joins_the_callers_transaction(db: DatabaseConnection) -> None:
    session = db.new_session()
    try:
        EventProcessor(session).enqueue_events([("t", {"i": i}) for i in range(10)])
        session.rollback()
    finally:
        session.close()
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM events")).scalar() == 0
