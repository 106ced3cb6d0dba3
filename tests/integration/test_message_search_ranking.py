"""The full-text arm of message search on real PostgreSQL: candidates from the rarest lexemes (frequencies
from ANALYZE's statistics), IDF-weighted ranking, the wider run when filters leave too few candidates, and the
audience applied at the candidate stage."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from slack_mcp import search as message_search
from slack_mcp.audience import Audience
from slack_mcp.queries import Channel
from sqlalchemy import event, text

from database import DatabaseConnection

BASE = 1_700_000_000
COMMON = 600  # messages about deploys, in #ops
POSTINGS = 200  # the test's candidate budget: "deploy" alone is over it, "zeppelin" far under
# Longer than a deploy message, so plain ts_rank_cd (length-normalised, no IDF) puts it below them.
HANGAR = "zeppelin hangar tour on friday with the whole team and snacks after lunch"


def _insert(session, channel: str, n: int, body: str) -> None:  # type: ignore[no-untyped-def]
    session.execute(
        text("INSERT INTO slack_messages (channel_id, ts, created_at, user_id, text) VALUES (:c, :ts, :at, 'U1', :t)"),
        {"c": channel, "ts": f"{BASE + n}.{n:06d}", "at": datetime.fromtimestamp(BASE + n, UTC), "t": body},
    )


@pytest.fixture
def store(db: DatabaseConnection) -> DatabaseConnection:
    with db.session() as s:
        # The statistics are exactly those a test asks for (ANALYZE), never autovacuum's.
        s.execute(text("ALTER TABLE slack_messages SET (autovacuum_enabled = false)"))
        for cid, name, private in (("C0OPS", "ops", False), ("C0QUIET", "quiet", False), ("G0SECRET", "secret", True)):
            s.execute(
                text("INSERT INTO slack_channels (id, name, is_private) VALUES (:id, :n, :p)"),
                {"id": cid, "n": name, "p": private},
            )
        # The rare messages are the oldest, so recency cannot be what puts them first.
        _insert(s, "C0OPS", 1, "the zeppelin deploy needs a rollback plan")
        _insert(s, "C0OPS", 2, HANGAR)
        _insert(s, "G0SECRET", 3, "zeppelin deploy secret budget")
        _insert(s, "C0QUIET", 4, "a quiet deploy of the docs")
        for n in range(100, 100 + COMMON):
            _insert(s, "C0OPS", n, f"deploy number {n} of the service finished")
    return db


def _analyze(db: DatabaseConnection) -> None:
    with db.session() as s:
        s.execute(text("ANALYZE slack_messages"))


@pytest.fixture
def keyword_statements(db: DatabaseConnection) -> Iterator[list[dict]]:
    """The parameters of every keyword-arm statement sent while the test runs."""
    seen: list[dict] = []

    def listen(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "kw_gen" in statement:
            seen.append(dict(parameters))

    event.listen(db.engine, "before_cursor_execute", listen)
    yield seen
    event.remove(db.engine, "before_cursor_execute", listen)


def _search(db: DatabaseConnection, query: str, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        hits = message_search.search_messages(s, None, Audience(), query, semantic_weight=0, **kwargs)
    return [row["text"] for row, _ in hits]


def test_rare_words_make_the_candidates_and_lead_the_ranking(
    store: DatabaseConnection, keyword_statements: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    _analyze(store)
    monkeypatch.setattr(message_search, "KEYWORD_POSTINGS", POSTINGS)
    texts = _search(store, "zeppelin deploy rollback", limit=10)
    # The message with all three words first, then the other zeppelin message; the private one never.
    assert texts[:2] == ["the zeppelin deploy needs a rollback plan", HANGAR]
    assert "zeppelin deploy secret budget" not in texts
    # The candidates came from the rare lexemes only ("deploy" is over the budget) in one statement, and
    # the 600 deploy-only messages still filled the rest of the pool through the wider run.
    assert [p["postings"] for p in keyword_statements] == [POSTINGS, None]
    assert len(texts) == 10


def test_enough_rare_candidates_need_one_statement(
    store: DatabaseConnection, keyword_statements: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    _analyze(store)
    monkeypatch.setattr(message_search, "KEYWORD_POSTINGS", POSTINGS)
    monkeypatch.setattr(message_search, "POOL_FACTOR", 2)
    monkeypatch.setattr(message_search, "MIN_POOL", 2)
    texts = _search(store, "zeppelin deploy", limit=1)
    assert texts == ["the zeppelin deploy needs a rollback plan"]
    assert [p["postings"] for p in keyword_statements] == [POSTINGS]


def test_a_narrow_filter_widens_to_every_lexeme(
    store: DatabaseConnection, keyword_statements: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """#quiet has no zeppelin: the rare lexeme's candidates are all filtered out, yet its deploy is found."""
    _analyze(store)
    monkeypatch.setattr(message_search, "KEYWORD_POSTINGS", POSTINGS)
    texts = _search(store, "zeppelin deploy", channel=Channel("C0QUIET", "quiet"))
    assert texts == ["a quiet deploy of the docs"]
    assert [p["postings"] for p in keyword_statements] == [POSTINGS, None]


def test_statistics_rank_rare_words_above_common_ones(store: DatabaseConnection) -> None:
    """With the real budget nothing is capped here, but IDF from pg_stats still puts zeppelin first."""
    _analyze(store)
    texts = _search(store, "deploy zeppelin", limit=3)
    assert texts[0] == "the zeppelin deploy needs a rollback plan"
    assert texts[1] == HANGAR


def test_without_statistics_every_lexeme_makes_candidates(
    store: DatabaseConnection, keyword_statements: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table never analyzed: no frequencies, so nothing is capped and the search is exact."""
    with store.session() as s:
        analyzed = s.execute(
            text("SELECT count(*) FROM pg_stats WHERE tablename = 'slack_messages' AND attname = 'search'")
        ).scalar()
    assert analyzed == 0
    monkeypatch.setattr(message_search, "KEYWORD_POSTINGS", 1)
    texts = _search(store, "quiet deploy", limit=5)
    assert texts[0] == "a quiet deploy of the docs" and len(texts) == 5
    assert [p["postings"] for p in keyword_statements] == [1]


def test_the_full_text_index_keeps_a_short_pending_list(db: DatabaseConnection) -> None:
    # Every search scans the GIN pending list linearly; messages arrive all the time, so it must stay short.
    with db.session() as s:
        s.execute(text("CREATE EXTENSION IF NOT EXISTS pgstattuple"))
        s.execute(text("INSERT INTO slack_channels (id, name) VALUES ('C0BULK', 'bulk')"))
        for n in range(2000):
            _insert(s, "C0BULK", 10_000 + n, f"message {n} about deploys rollbacks lexemes and word{n % 97}")
    with db.session() as s:
        pending_kb = s.execute(text("SELECT pending_pages * 8 FROM pgstatginindex('ix_slack_messages_search')"))
        assert pending_kb.scalar_one() <= 64 + 8  # the limit, plus the page being filled
        options = s.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'ix_slack_messages_search'"))
        assert options.scalar_one() == ["gin_pending_list_limit=64"]
