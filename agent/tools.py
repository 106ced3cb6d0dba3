"""The tool hub: MCP clients for the configured servers, behind the one sync-to-async bridge.

The app is sync, the MCP SDK is async. One anyio blocking portal (one background thread with one event
loop) owns every MCP session; worker threads call :meth:`ToolHub.call` and block on the portal. Each
server runs as one long-lived task that enters its ``mcp.Client`` and waits for shutdown, so a session
is opened and closed in the same task (anyio cancel scopes demand it).

A server that will not start or list its tools is left out with a warning. A tool that fails returns
an error result the model can read; it never raises into the agent. Exceptions::

    AthenaeumError
    └── ToolError        the hub itself cannot work (not started, portal gone)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
import structlog

from agent import observers
from agent.audience import Audience, filter_tool_result
from database.errors import AthenaeumError

_log = structlog.get_logger("athenaeum.tools")

RESULT_MAX_CHARS = 20_000


class ToolError(AthenaeumError):
    """The tool hub cannot work (it was not started, or its loop is gone)."""


@dataclass(frozen=True)
class ServerSpec:
    """One MCP server as the hub needs it (``agent.mcp_config`` parses ``mcp_config.json`` into these)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    allowed_tools: tuple[str, ...] | None = None
    tool_prefix: str = ""
    internal_only: bool = False


@dataclass(frozen=True)
class ToolResult:
    """What a tool returned, as text for the model; ``is_error`` marks a failure the model should see."""

    text: str
    is_error: bool = False


@dataclass
class _Server:
    spec: ServerSpec
    client: Any
    tools: dict[str, dict[str, Any]]  # exposed name -> {"name": real name, "definition": Anthropic tool}
    stop: anyio.Event


class ToolHub:
    """MCP clients for several servers, usable from any thread.

    Args:
        servers: the servers to start.
        start_timeout: seconds a server gets to start and list its tools.
        call_timeout: seconds one tool call may take.
        result_max_chars: longer results are cut (and say so).
    """

    def __init__(
        self,
        servers: Sequence[ServerSpec],
        *,
        start_timeout: float = 30.0,
        call_timeout: float = 60.0,
        result_max_chars: int = RESULT_MAX_CHARS,
    ) -> None:
        self.specs = list(servers)
        self.start_timeout = start_timeout
        self.call_timeout = call_timeout
        self.result_max_chars = result_max_chars
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._servers: dict[str, _Server] = {}
        self._futures: list[Any] = []
        self.failed: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ToolHub:
        """Start the event loop thread and every server; servers that fail are left out with a warning."""
        if self._portal is not None:
            return self
        self._portal_cm = anyio.from_thread.start_blocking_portal(name="athenaeum-mcp")
        self._portal = self._portal_cm.__enter__()
        portal = self._portal

        def start_one(spec: ServerSpec) -> tuple[ServerSpec, Any, Any, BaseException | None]:
            try:
                future, server = portal.start_task(self._run_server, spec, name=f"mcp-{spec.name}")
                return spec, future, server, None
            except BaseException as exc:  # any failure to start: leave the server out, keep the assistant up
                return spec, None, None, exc

        # Servers start side by side (each takes seconds to spawn and import); results keep the config's order.
        with ThreadPoolExecutor(max_workers=max(1, len(self.specs)), thread_name_prefix="mcp-start") as starter:
            started = list(starter.map(start_one, self.specs))
        for spec, future, server, error in started:
            if error is not None:
                reason = _describe(error)
                self.failed[spec.name] = reason
                _log.warning("MCP server left out: it did not start", server=spec.name, reason=reason)
                continue
            self._futures.append(future)
            self._servers[spec.name] = server
            _log.info("MCP server ready", server=spec.name, tools=len(server.tools))
        return self

    def close(self) -> None:
        """Stop every server and the loop thread."""
        if self._portal is None:
            return
        for server in self._servers.values():
            self._portal.call(server.stop.set)
        for future in self._futures:
            try:
                future.result(timeout=10)
            except BaseException as exc:
                _log.warning("MCP server did not stop cleanly", reason=_describe(exc))
        assert self._portal_cm is not None
        self._portal_cm.__exit__(None, None, None)
        self._portal = None
        self._servers.clear()

    def __enter__(self) -> ToolHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ use
    def server_names(self) -> list[str]:
        return list(self._servers)

    def tool_definitions(self, audience: Audience | None = None) -> list[dict[str, Any]]:
        """Anthropic tool definitions offered for ``audience`` (``internal_only`` servers not in shared channels)."""
        defs: list[dict[str, Any]] = []
        for server in self._servers.values():
            if server.spec.internal_only and audience is not None and audience.is_shared:
                continue
            defs.extend(entry["definition"] for entry in server.tools.values())
        return defs

    def call(self, name: str, arguments: dict[str, Any], audience: Audience | None = None) -> ToolResult:
        """Call a tool by its exposed name; every failure becomes an error result."""
        if self._portal is None:
            raise ToolError("the tool hub is not started")
        found = self._find(name, audience)
        if found is None:
            return ToolResult(f"Unknown tool {name!r}. Use one of the tools you were given.", is_error=True)
        server, real_name = found
        meta = audience.as_meta() if audience is not None and not audience.is_local else None
        try:
            result = self._portal.call(self._call_tool, server, real_name, arguments, meta)
        except BaseException as exc:
            _log.warning("tool call failed", tool=name, reason=_describe(exc))
            observers.emit("tool_call", server=server.spec.name, tool=real_name, ok=False)
            return ToolResult(
                f"The tool {name!r} failed: {_describe(exc)}. Try other arguments or another tool.", is_error=True
            )
        observers.emit("tool_call", server=server.spec.name, tool=real_name, ok=not result.is_error)
        text = _result_text(result)
        if audience is not None and not result.is_error:
            text = filter_tool_result(text, audience)
        if len(text) > self.result_max_chars:
            text = text[: self.result_max_chars] + f"\n[result cut at {self.result_max_chars} characters]"
        return ToolResult(text, is_error=bool(result.is_error))

    # ------------------------------------------------------------------ on the loop
    def _find(self, name: str, audience: Audience | None) -> tuple[_Server, str] | None:
        for server in self._servers.values():
            if server.spec.internal_only and audience is not None and audience.is_shared:
                continue
            entry = server.tools.get(name)
            if entry is not None:
                return server, entry["name"]
        return None

    async def _call_tool(self, server: _Server, name: str, arguments: dict[str, Any], meta: Any) -> Any:
        with anyio.fail_after(self.call_timeout):
            return await server.client.call_tool(name, arguments, meta=meta)

    async def _run_server(self, spec: ServerSpec, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        from mcp import Client, StdioServerParameters

        target: Any
        if spec.url:
            target = spec.url
        elif spec.command:
            target = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=spec.env or None, cwd=spec.cwd
            )
        else:
            raise ToolError(f"MCP server {spec.name!r} has neither a command nor a url")
        # The session is entered and left in this one task; the handshake's requests time out on their own.
        async with Client(target, cache=None, read_timeout_seconds=self.start_timeout) as client:
            with anyio.fail_after(self.start_timeout):
                listing = await client.list_tools()
            tools = _exposed_tools(spec, listing.tools)
            server = _Server(spec=spec, client=client, tools=tools, stop=anyio.Event())
            task_status.started(server)
            await server.stop.wait()


def _exposed_tools(spec: ServerSpec, tools: Sequence[Any]) -> dict[str, dict[str, Any]]:
    exposed: dict[str, dict[str, Any]] = {}
    for tool in tools:
        if spec.allowed_tools is not None and tool.name not in spec.allowed_tools:
            continue
        name = f"{spec.tool_prefix}{tool.name}"
        schema = dict(tool.input_schema or {"type": "object", "properties": {}})
        exposed[name] = {
            "name": tool.name,
            "definition": {"name": name, "description": tool.description or "", "input_schema": schema},
        }
    return exposed


def _result_text(result: Any) -> str:
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and hasattr(block.resource, "text"):
            parts.append(block.resource.text)
        else:
            parts.append(f"[{kind} content omitted]")
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts) or "(no output)"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
