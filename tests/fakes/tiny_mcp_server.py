"""A tiny MCP server (stdio) for tool hub tests: search results with public and private hits, an error tool.

Run: ``python tests/fakes/tiny_mcp_server.py``. ``TINY_MCP_FAIL=1`` makes it exit before serving.
"""

from __future__ import annotations

import json
import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("tiny")


@server.tool()
def search_messages(query: str, limit: int | None = None) -> str:
    """Search Slack messages (fake): one public and one private hit."""
    hits = [
        {
            "channel_id": "CPUBLIC",
            "channel_type": "channel",
            "text": f"public note about {query}",
            "permalink": "https://example.slack.com/archives/CPUBLIC/p1",
        },
        {
            "channel_id": "CSECRET",
            "channel_type": "group",
            "text": f"PRIVATE-SECRET plan about {query}",
            "permalink": "https://example.slack.com/archives/CSECRET/p2",
        },
    ]
    return json.dumps({"hits": hits[: limit or 10]})


@server.tool()
def search_docs(query: str) -> str:
    """Search documentation (fake)."""
    return json.dumps(
        {
            "results": [
                {
                    "title": "Leases",
                    "url": "https://docs.example/leases",
                    "snippet": f"A lease expires after the visibility timeout ({query}).",
                }
            ]
        }
    )


@server.tool()
def whoami(ctx: Context) -> str:
    """The audience the caller sent in the request's _meta."""
    raw = ctx.request_context.meta
    meta = raw.model_dump() if hasattr(raw, "model_dump") else raw
    return json.dumps({"channel": (meta or {}).get("athenaeum/audience_channel")})


@server.tool()
def explode(reason: str) -> str:
    """Always fails."""
    raise ToolError(f"exploded: {reason}")


if __name__ == "__main__":
    if os.environ.get("TINY_MCP_FAIL") == "1":
        sys.exit(3)
    server.run("stdio")
