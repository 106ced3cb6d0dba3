"""The Slack MCP server on real PostgreSQL through the official MCP client: tools, audiences (row 26),
hostile input (row 24), hybrid search over message embeddings, the backfill, and stdio."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from embeddings import build_provider
from slack_mcp.audience import AUDIENCE_META_KEY, Audience
from slack_mcp.embedding_jobs import embed_missing_messages, make_processor
from slack_mcp.server import build_server
from sqlalchemy import text

from database import DatabaseConnection
from tests.mcp_client import ROOT, call, result_json, result_text, stdio_params, with_client

CHANNELS = [
    # id, name, private, im, ext_shared, archived
    ("C0GENERAL", "general", False, False, False, False),
    ("C0RANDOM", "random", False, False, False, False),
    ("C0SHARED", "partners", False, False, True, False),
    ("G0SECRET", "secret-launch", True, False, False, False),
    ("D0ALICE", None, False, True, False, False),
    ("C0OLD", "old-stuff", False, False, False, True),
]
USERS = [
    ("U0ALICE", "alice", "Alice Smith", "Engineer"),
    ("U0BOB", "bob", "Bob Jones", "Designer"),
    ("U0UNDER", "a_b", "Under Score", "Tester"),
    ("U0AXB", "axb", "Under Score", "Tester"),
]
BASE = 1_700_000_000


def _ts(n: int) -> str:
    return f"{BASE + n * 60}.{n:06d}"


MESSAGES = [
    # channel, n, user, text, thread root n or None
    ("C0GENERAL", 1, "U0ALICE", "The deploy pipeline failed because the database migration timed out", None),
    ("C0GENERAL", 2, "U0BOB", "I restarted the migration with a longer statement timeout", 1),
    ("C0GENERAL", 3, "U0ALICE", "Thanks, the release went out fine after that", 1),
    ("C0GENERAL", 4, "U0BOB", "Lunch options near the office: tacos or ramen?", None),
    ("C0RANDOM", 5, "U0BOB", "Look at this picture of a very fluffy cat", None),
    ("C0SHARED", 6, "U0ALICE", "Partner contract renewal is scheduled for March", None),
    ("G0SECRET", 7, "U0ALICE", "Project Zeppelin launch date is confidential: do not share", None),
    ("D0ALICE", 8, "U0BOB", "Zeppelin salary numbers attached, keep this between us", None),
    ("C0GENERAL", 9, "U0UNDER", "100% of tests pass_now with _underscores_", None),
]


@pytest.fixture
def slack_db(db: DatabaseConnection) -> DatabaseConnection:
    with db.session() as s:
        for cid, name, private, im, shared, archived in CHANNELS:
            s.execute(
                text(
                    "INSERT INTO slack_channels (id, name, topic, is_private, is_im, is_ext_shared, is_archived, "
                    "member_count) VALUES (:id, :n, :t, :p, :im, :sh, :ar, 5)"
                ),
                {"id": cid, "n": name, "t": f"topic of {name}", "p": private, "im": im, "sh": shared, "ar": archived},
            )
        for uid, handle, real, title in USERS:
            s.execute(
                text("INSERT INTO slack_users (id, name, real_name, display_name, title) VALUES (:id, :h, :r, :h, :t)"),
                {"id": uid, "h": handle, "r": real, "t": title},
            )
        for cid, n, uid, body, root in MESSAGES:
            ts = _ts(n)
            replies = sum(1 for m in MESSAGES if m[4] == n)
            s.execute(
                text(
                    "INSERT INTO slack_messages (channel_id, ts, created_at, user_id, text, thread_ts, reply_count) "
                    "VALUES (:c, :ts, :at, :u, :t, :th, :rc)"
                ),
                {
                    "c": cid,
                    "ts": ts,
                    "at": datetime.fromtimestamp(float(ts), UTC),
                    "u": uid,
                    "t": body,
                    "th": _ts(root) if root else (ts if replies else None),
                    "rc": replies,
                },
            )
    embed_missing_messages(db, build_provider("local"))
    return db


@pytest.fixture
def server(slack_db: DatabaseConnection):  # type: ignore[no-untyped-def]
    return build_server(slack_db, build_provider("local"), workspace_url="https://acme.slack.com")


def _meta(channel: str) -> dict[str, str]:
    return {AUDIENCE_META_KEY: channel}


def test_tools_and_schemas(server) -> None:  # type: ignore[no-untyped-def]
    tools = {t.name: t for t in with_client(server, lambda c: c.list_tools()).tools}
    assert set(tools) == {
        "list_channels",
        "find_users",
        "get_channel_history",
        "get_thread",
        "get_message_context",
        "search_messages",
    }
    search = tools["search_messages"].input_schema
    assert set(search["properties"]) == {"query", "channel", "user", "since", "until", "limit", "semantic_weight"}
    assert "ctx" not in str(tools) and "minLength" not in str(tools) and '"format"' not in str(tools)


def test_history_threads_context_and_permalinks(server) -> None:  # type: ignore[no-untyped-def]
    history = result_json(call(server, "get_channel_history", {"channel": "#general", "limit": 2}))
    (channel,) = history["channels"]
    assert channel["id"] == "C0GENERAL" and [t["thread_ts"] for t in channel["threads"]] == [_ts(9), _ts(4)]
    assert history["truncated"] and history["next_cursor"]
    older = result_json(call(server, "get_channel_history", {"channel": "C0GENERAL", "cursor": history["next_cursor"]}))
    thread = older["channels"][0]["threads"][0]
    assert [m["text"][:10] for m in thread["messages"]] == ["The deploy", "I restarte", "Thanks, th"]
    assert older["users"]["U0ALICE"]["handle"] == "alice"
    reply_link = thread["messages"][1]["permalink"]
    assert (
        reply_link
        == f"https://acme.slack.com/archives/C0GENERAL/p{_ts(2).replace('.', '')}?thread_ts={_ts(1)}&cid=C0GENERAL"
    )
    whole = result_json(call(server, "get_thread", {"channel": reply_link}))
    assert len(whole["channels"][0]["threads"][0]["messages"]) == 3
    around = result_json(
        call(server, "get_message_context", {"channel": "#general", "ts": _ts(4), "before": 1, "after": 1})
    )
    assert [m["ts"] for t in around["channels"][0]["threads"] for m in t["messages"]] == [_ts(1), _ts(4), _ts(9)]
    assert around["channels"][0]["threads"][0]["messages"][0]["time"] == "2023-11-14T22:14:20Z"


def test_hybrid_search_with_filters_and_thread_context(server) -> None:  # type: ignore[no-untyped-def]
    hits = result_json(call(server, "search_messages", {"query": "why did shipping the new version break?"}))
    assert hits["results"][0]["ts"] in (_ts(1), _ts(2), _ts(3))
    first = next(r for r in hits["results"] if r["ts"] == _ts(2))
    assert first["thread_context"][0]["ts"] == _ts(1) and first["channel"]["name"] == "general"
    kitten = result_json(call(server, "search_messages", {"query": "kitten photo", "semantic_weight": 1}))
    assert kitten["results"][0]["ts"] == _ts(5)
    by_alice = result_json(
        call(server, "search_messages", {"query": "migration", "user": "@alice", "semantic_weight": 0})
    )
    assert {r["user"] for r in by_alice["results"]} == {"U0ALICE"}
    dated = result_json(call(server, "search_messages", {"query": "migration", "since": "2030-01-01"}))
    assert dated["results"] == []


def test_private_content_never_reaches_a_public_audience(server) -> None:  # type: ignore[no-untyped-def]
    """Row 26: a public question whose hits include private-channel and DM content."""
    public = result_json(call(server, "search_messages", {"query": "Zeppelin launch salary"}))
    assert public["results"] and {r["channel"]["id"] for r in public["results"]}.isdisjoint({"G0SECRET", "D0ALICE"})
    assert "Zeppelin" not in str(public)
    in_general = result_json(call(server, "search_messages", {"query": "Zeppelin"}, meta=_meta("C0GENERAL")))
    assert "Zeppelin" not in str(in_general["results"])
    in_secret = result_json(call(server, "search_messages", {"query": "Zeppelin launch"}, meta=_meta("G0SECRET")))
    ids = {r["channel"]["id"] for r in in_secret["results"]}
    assert "G0SECRET" in ids and "D0ALICE" not in ids
    in_dm = result_json(call(server, "search_messages", {"query": "Zeppelin salary"}, meta=_meta("D0ALICE")))
    assert "D0ALICE" in {r["channel"]["id"] for r in in_dm["results"]}
    shared = result_json(
        call(server, "search_messages", {"query": "deploy migration contract"}, meta=_meta("C0SHARED"))
    )
    assert {r["channel"]["id"] for r in shared["results"]} == {"C0SHARED"}
    denied = call(server, "get_channel_history", {"channel": "G0SECRET"})
    assert denied.is_error and "may read" in result_text(denied) and "Zeppelin" not in result_text(denied)
    names = {c["id"] for c in result_json(call(server, "list_channels", {}))["channels"]}
    assert names == {"C0GENERAL", "C0RANDOM", "C0SHARED"}
    unknown = result_json(call(server, "search_messages", {"query": "Zeppelin"}, meta=_meta("C0NOSUCH")))
    assert "Zeppelin" not in str(unknown["results"])


def test_list_channels_and_users_with_cursor_and_literal_matching(server) -> None:  # type: ignore[no-untyped-def]
    page = result_json(call(server, "list_channels", {"limit": 2, "include_archived": True}))
    assert [c["name"] for c in page["channels"]] == ["general", "old-stuff"] and page["next_cursor"]
    rest = result_json(
        call(server, "list_channels", {"limit": 2, "include_archived": True, "cursor": page["next_cursor"]})
    )
    assert [c["name"] for c in rest["channels"]] == ["partners", "random"] and "next_cursor" not in rest
    underscore = result_json(call(server, "find_users", {"keyword": "a_b"}))["users"]
    assert [u["id"] for u in underscore] == ["U0UNDER"]  # "_" is literal, so "axb" does not match
    percent = result_json(call(server, "find_users", {"keyword": "%"}))["users"]
    assert percent == []
    ambiguous = call(server, "search_messages", {"query": "x", "user": "Under Score"})
    assert ambiguous.is_error and "ambiguous" in result_text(ambiguous)
    assert "U0UNDER" in result_text(ambiguous) and "U0AXB" in result_text(ambiguous)


def test_hostile_inputs(server, slack_db: DatabaseConnection) -> None:  # type: ignore[no-untyped-def]
    """Row 24: injection, wildcards, NUL and 10 kB inputs are literal or rejected, and the tables survive."""
    for query in ("'; DROP TABLE slack_messages; --", "%", "_", "100% _underscores_"):
        assert not call(server, "search_messages", {"query": query}).is_error
    literal = result_json(call(server, "search_messages", {"query": "100% _underscores_", "semantic_weight": 0}))
    assert literal["results"][0]["ts"] == _ts(9)
    for tool, args in (
        ("search_messages", {"query": "a\x00b"}),
        ("find_users", {"keyword": "\x00"}),
        ("get_channel_history", {"channel": "#gen\x00eral"}),
    ):
        result = call(server, tool, args)
        assert result.is_error and "NUL" in result_text(result)
    huge = call(server, "search_messages", {"query": "z" * 10_240})
    assert huge.is_error and "limit is 1000" in result_text(huge)
    bad = call(server, "get_thread", {"channel": "#general", "ts_or_permalink": "yesterday"})
    assert bad.is_error and "permalink" in result_text(bad)
    with slack_db.session() as s:
        assert s.execute(text("SELECT count(*) FROM slack_messages")).scalar() == len(MESSAGES)


def test_backfill_is_idempotent_and_reembeds_edits(slack_db: DatabaseConnection) -> None:
    provider = build_provider("local")
    assert embed_missing_messages(slack_db, provider) == 0
    with slack_db.session() as s:
        s.execute(text("UPDATE slack_messages SET text = 'edited text' WHERE ts = :ts"), {"ts": _ts(4)})
        s.execute(text("DELETE FROM slack_message_embeddings WHERE ts = :ts"), {"ts": _ts(5)})
    process = make_processor(slack_db, provider)  # what the worker pool runs for EMBED_EVENT_TYPE events
    process(object())
    with slack_db.session() as s:
        hashes = dict(s.execute(text("SELECT ts, text_hash FROM slack_message_embeddings")).all())
    assert len(hashes) == len(MESSAGES)
    assert embed_missing_messages(slack_db, provider) == 0


def test_an_unrestricted_operator_server_sees_everything(slack_db: DatabaseConnection) -> None:
    server = build_server(slack_db, build_provider("local"), default_audience=Audience(unrestricted=True))
    hits = result_json(call(server, "search_messages", {"query": "Zeppelin"}))
    assert {"G0SECRET", "D0ALICE"} <= {r["channel"]["id"] for r in hits["results"]}
    narrowed = result_json(call(server, "search_messages", {"query": "Zeppelin"}, meta=_meta("C0GENERAL")))
    assert "Zeppelin" not in str(narrowed["results"])


@pytest.mark.slow
def test_served_over_stdio_as_a_subprocess(database_url: str, slack_db: DatabaseConnection) -> None:
    async def body(client):  # type: ignore[no-untyped-def]
        return await client.list_tools(), await client.call_tool("search_messages", {"query": "Zeppelin launch"})

    with slack_db.session() as s:
        s.execute(text("DELETE FROM slack_message_embeddings"))
    backfill = subprocess.run(
        [sys.executable, str(ROOT / "athenaeum.py"), "mcp", "embed-messages"],
        capture_output=True,
        text=True,
        env={"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert backfill.returncode == 0 and f"embedded {len(MESSAGES)} message(s)" in backfill.stdout, backfill.stderr
    tools, result = with_client(stdio_params("slack", {"DATABASE_URL": database_url}), body)
    assert len(tools.tools) == 6
    assert "Zeppelin" not in str(result_json(result)["results"])
