"""The docs MCP server: ``search_docs``, ``list_sources``, ``get_page`` over the documentation index.

Thin by design: each tool validates its arguments (tool_rules), calls ``docs_mcp.search`` in a read-only
session with a statement timeout, and returns a result within a hard character budget.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from embeddings import EmbeddingProvider
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field
from tool_rules import (
    DEFAULT_BUDGET_CHARS,
    clamp_float,
    clamp_int,
    clean_text,
    cut,
    decode_cursor,
    encode_cursor,
    tool_session,
)

from database import DatabaseConnection
from docs_mcp import search

SNIPPET_CHARS = 700
PAGE_BUDGET_CHARS = 20_000
MAX_URL_CHARS = 2000
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

INSTRUCTIONS = (
    "Search ingested documentation. Use search_docs with a natural-language question, then get_page on a "
    "result's url for the whole page. Cite the url of what you use."
)


def build_server(db: DatabaseConnection, provider: EmbeddingProvider, *, name: str = "athenaeum-docs") -> MCPServer:
    """The docs server bound to a database and an embedding provider."""
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(annotations=READ_ONLY)
    def search_docs(
        query: Annotated[str, Field(description="What to look for: a question or keywords (at most 1000 characters).")],
        source: Annotated[
            str | None, Field(description="Only this documentation source (see list_sources); null = all.")
        ] = None,
        limit: Annotated[int | None, Field(description="Results wanted, 1-25; null = 8.")] = None,
        semantic_weight: Annotated[
            float | None,
            Field(description="0 = keyword (full-text) ranking only, 1 = meaning (vector) only; null = 0.6 (hybrid)."),
        ] = None,
    ) -> dict[str, Any]:
        """Search the documentation; each result is the best-matching passage of one page, with its URL and heading."""
        q = clean_text(query, "query", required=True)
        src = clean_text(source, "source", max_chars=200)
        n = clamp_int(limit, "limit", 8, 1, 25)
        weight = clamp_float(semantic_weight, "semantic_weight", search.DEFAULT_SEMANTIC_WEIGHT, 0.0, 1.0)
        with tool_session(db) as session:
            hits = search.search_docs(session, provider, q or "", source=src, limit=n, semantic_weight=weight)
        results: list[dict[str, Any]] = []
        used, truncated = 0, False
        for hit in hits:
            snippet, _ = cut(hit.text, SNIPPET_CHARS)
            item = {
                "title": hit.title,
                "url": hit.url,
                "heading": hit.heading,
                "source": hit.source,
                "score": hit.score,
                "text": snippet,
            }
            size = len(json.dumps(item))
            if used + size > DEFAULT_BUDGET_CHARS:
                truncated = True
                break
            used += size
            results.append(item)
        out: dict[str, Any] = {"results": results, "truncated": truncated}
        if not results:
            out["note"] = "no matches: try other words, a larger semantic_weight, or check list_sources"
        elif truncated:
            out["note"] = "output budget reached: ask for fewer results or call get_page for a full page"
        return out

    @server.tool(annotations=READ_ONLY)
    def list_sources() -> dict[str, Any]:
        """List the documentation sources with their page counts and when they were last ingested."""
        with tool_session(db) as session:
            sources = search.list_sources(session)
        items = [
            {
                "name": s.name,
                "location": s.location,
                "pages": s.pages,
                "chunks": s.chunks,
                "embedding_model": s.embedding_model,
                "updated_at": s.updated_at.isoformat(),
            }
            for s in sources[:200]
        ]
        return {"sources": items, "truncated": len(sources) > 200}

    @server.tool(annotations=READ_ONLY)
    def get_page(
        url: Annotated[str, Field(description="The page URL exactly as a search_docs result gave it.")],
        cursor: Annotated[
            str | None, Field(description="The cursor of the previous part to read on; null = start.")
        ] = None,
    ) -> dict[str, Any]:
        """Read a whole documentation page as text, in parts of about 20,000 characters."""
        page_url = clean_text(url, "url", max_chars=MAX_URL_CHARS, required=True) or ""
        state = decode_cursor(cursor) or {}
        offset = state.get("offset", 0)
        if not isinstance(offset, int) or offset < 0 or state.get("url", page_url) != page_url:
            offset = -1
        with tool_session(db) as session:
            page = search.get_page(session, page_url)
        if offset < 0 or (offset and offset >= len(page.text)):
            from tool_rules import ToolInputError

            raise ToolInputError("cursor does not belong to this page: pass null to start from the beginning")
        part = page.text[offset : offset + PAGE_BUDGET_CHARS]
        end = offset + len(part)
        out: dict[str, Any] = {
            "url": page.url,
            "title": page.title,
            "source": page.source,
            "updated_at": page.updated_at.isoformat(),
            "text": part,
            "offset": offset,
            "total_chars": len(page.text),
            "truncated": end < len(page.text),
        }
        if end < len(page.text):
            out["next_cursor"] = encode_cursor({"url": page.url, "offset": end})
        return out

    return server
