"""Driving MCP servers from tests through the official client (in-memory or a stdio subprocess)."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp.types import CallToolResult

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent


def result_text(result: CallToolResult) -> str:
    """The text of a tool result's content blocks."""
    return "".join(getattr(block, "text", "") for block in result.content)


def result_json(result: CallToolResult) -> Any:
    """A successful result's structured content (asserts it is not an error)."""
    assert not result.is_error, result_text(result)
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result_text(result))


def with_client(server: Any, body: Callable[[Client], Awaitable[Any]], timeout: float = 60) -> Any:
    """Run ``body(client)`` against ``server`` (an ``MCPServer`` in-process, or ``StdioServerParameters``)."""

    async def main() -> Any:
        with anyio.fail_after(timeout):
            async with Client(server) as client:
                return await body(client)

    return anyio.run(main)


def call(server: Any, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None) -> CallToolResult:
    """Call one tool and return its result."""
    return with_client(server, lambda client: client.call_tool(tool, arguments, meta=meta))  # type: ignore[arg-type]


def stdio_params(server: str, env: dict[str, str]) -> StdioServerParameters:
    """How to start ``python athenaeum.py mcp serve SERVER`` as a subprocess with ``env``."""
    return StdioServerParameters(
        command=sys.executable, args=[str(ROOT / "athenaeum.py"), "mcp", "serve", server], env=env, cwd=str(ROOT)
    )
