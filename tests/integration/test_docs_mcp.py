"""The docs MCP server through the official MCP client: schemas, results, budgets, hostile input (row 24)."""

from __future__ import annotations

from pathlib import Path

import pytest
from docs_mcp.server import build_server
from embeddings import build_provider
from mcp.server.mcpserver.exceptions import ToolError
from sqlalchemy import text
from tool_rules import tool_session

from database import DatabaseConnection
from tests.integration.test_docs_index import DOCS, ingest, write_docs
from tests.mcp_client import call, result_json, result_text, stdio_params, with_client


@pytest.fixture
def server(db: DatabaseConnection, tmp_path: Path):  # type: ignore[no-untyped-def]
    docs = dict(DOCS)
    docs["long.md"] = "# Long page\n\n" + "\n\n".join(f"Paragraph {i} " + "lorem ipsum " * 40 for i in range(60))
    write_docs(tmp_path / "d", docs)
    ingest(db, tmp_path / "d")
    return build_server(db, build_provider("local"))


def test_tools_have_provider_friendly_schemas(server) -> None:  # type: ignore[no-untyped-def]
    tools = {t.name: t for t in with_client(server, lambda c: c.list_tools()).tools}
    assert set(tools) == {"search_docs", "list_sources", "get_page"}
    search = tools["search_docs"].input_schema
    assert set(search["properties"]) == {"query", "source", "limit", "semantic_weight"}
    assert search["required"] == ["query"]
    for name in ("source", "limit", "semantic_weight"):
        assert search["properties"][name]["default"] is None
    assert "minLength" not in str(tools) and "'format'" not in str(search)
    assert tools["search_docs"].annotations.read_only_hint is True


def test_search_list_and_read_a_page_in_parts(server) -> None:  # type: ignore[no-untyped-def]
    found = result_json(call(server, "search_docs", {"query": "restore a database from an archive"}))
    top = found["results"][0]
    assert top["url"] == "https://docs.test/backup.html" and top["title"] == "Backups" and top["source"] == "manual"
    sources = result_json(call(server, "list_sources", {}))["sources"]
    assert sources[0]["name"] == "manual" and sources[0]["pages"] == 5
    first = result_json(call(server, "get_page", {"url": "https://docs.test/long.md"}))
    assert first["truncated"] and len(first["text"]) == 20_000
    second = result_json(call(server, "get_page", {"url": "https://docs.test/long.md", "cursor": first["next_cursor"]}))
    assert second["offset"] == 20_000 and not second["truncated"] and "next_cursor" not in second
    assert first["total_chars"] == 20_000 + len(second["text"])
    wrong = call(server, "get_page", {"url": "https://docs.test/backup.html", "cursor": first["next_cursor"]})
    assert wrong.is_error and "cursor" in result_text(wrong)


def test_hostile_inputs_are_literal_or_rejected_and_tables_survive(server, db: DatabaseConnection) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        before = session.execute(text("SELECT count(*) FROM docs_chunks")).scalar()
    for query in ("'; DROP TABLE docs_chunks; --", "%", "_", "\\", "100% _x_ ' OR 1=1"):
        result = call(server, "search_docs", {"query": query})
        assert not result.is_error, result_text(result)
    nul = call(server, "search_docs", {"query": "vacuum\x00"})
    assert nul.is_error and "NUL" in result_text(nul)
    huge = call(server, "search_docs", {"query": "v" * 10_240})
    assert huge.is_error and "limit is 1000" in result_text(huge)
    wildcard = call(server, "get_page", {"url": "%"})
    assert (
        wildcard.is_error and "no stored page" in result_text(wildcard) and "backup.html" not in result_text(wildcard)
    )
    suggest = call(server, "get_page", {"url": "https://docs.test/backup"})
    assert suggest.is_error and "did you mean: https://docs.test/backup.html" in result_text(suggest)
    bad_source = call(server, "search_docs", {"query": "x", "source": "nope"})
    assert bad_source.is_error and "available: manual" in result_text(bad_source)
    bad_weight = call(server, "search_docs", {"query": "x", "semantic_weight": 3})
    assert bad_weight.is_error and "between 0.0 and 1.0" in result_text(bad_weight)
    bad_cursor = call(server, "get_page", {"url": "https://docs.test/long.md", "cursor": "!!!"})
    assert bad_cursor.is_error and "cursor" in result_text(bad_cursor)
    with db.session() as session:
        assert session.execute(text("SELECT count(*) FROM docs_chunks")).scalar() == before


def test_statement_timeout_becomes_an_actionable_error(db: DatabaseConnection) -> None:
    with pytest.raises(ToolError, match="took too long"), tool_session(db, timeout_ms=50) as session:
        session.execute(text("SELECT pg_sleep(2)"))
    with pytest.raises(ToolError), tool_session(db) as session:  # read-only: a write is refused
        session.execute(text("DELETE FROM docs_chunks"))


@pytest.mark.slow
def test_served_over_stdio_as_a_subprocess(database_url: str, db: DatabaseConnection, tmp_path: Path) -> None:
    write_docs(tmp_path / "d", DOCS)
    ingest(db, tmp_path / "d")

    async def body(client):  # type: ignore[no-untyped-def]
        return await client.list_tools(), await client.call_tool("search_docs", {"query": "dead tuples", "limit": 1})

    tools, result = with_client(stdio_params("docs", {"DATABASE_URL": database_url}), body)
    assert {t.name for t in tools.tools} == {"search_docs", "list_sources", "get_page"}
    assert result_json(result)["results"][0]["url"].endswith("vacuum.rst")
