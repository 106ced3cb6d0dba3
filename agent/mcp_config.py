"""``mcp_config.json``: which MCP servers the assistant uses, parsed and validated (pure: no I/O but the file).

Format (``servers``; ``mcpServers`` is accepted too, as Claude Desktop writes it)::

    {
      "servers": {
        "docs":   {"builtin": "docs"},
        "slack":  {"builtin": "slack", "tool_prefix": "slack_"},
        "github": {"builtin": "github", "internal_only": true},
        "linear": {"command": "npx", "args": ["-y", "linear-mcp"], "env": {"LINEAR_KEY": "${LINEAR_KEY}"}},
        "wiki":   {"url": "https://wiki.example.com/mcp", "headers": {"Authorization": "Bearer ${WIKI_TOKEN}"},
                   "allowed_tools": ["search"], "disabled": false}
      }
    }

``${NAME}`` (or ``${NAME:-default}``) in any string is replaced from the environment mapping the caller
passes (this module never reads the process environment); ``$$`` is a literal ``$``. Unknown keys, wrong types and
unset variables are errors that name the server, the key and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent.errors import ConfigError

BUILTIN_SERVERS = ("slack", "docs", "github")
ServerKind = Literal["builtin", "stdio", "http"]

_COMMON_KEYS = {"disabled", "allowed_tools", "tool_prefix", "internal_only", "timeout_seconds", "description"}
_KEYS: dict[ServerKind, set[str]] = {
    "builtin": _COMMON_KEYS | {"builtin", "env"},
    "stdio": _COMMON_KEYS | {"command", "args", "env", "cwd"},
    "http": _COMMON_KEYS | {"url", "headers"},
}
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_TOOL_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,30}$")


class MCPConfigError(ConfigError):
    """``mcp_config.json`` is malformed; the message names the server, the key and the fix."""


@dataclass(frozen=True)
class MCPServerConfig:
    """One MCP server the assistant may use.

    Attributes:
        name: the key in ``servers``.
        kind: ``builtin`` (one of ours, run as ``athenaeum.py mcp serve NAME``), ``stdio`` or ``http``.
        builtin: which built-in server (``slack``, ``docs``, ``github``).
        command, args, env, cwd: how to start a stdio server (``env`` is added to the inherited environment).
        url, headers: where an HTTP (Streamable HTTP) server is.
        disabled: left out entirely.
        allowed_tools: only these tools are offered to the model (``None``: all).
        tool_prefix: prepended to the tool names the model sees (avoids clashes between servers).
        internal_only: never used to answer in shared/external (Slack Connect) channels.
        timeout_seconds: per tool call.
    """

    name: str
    kind: ServerKind
    builtin: str | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    disabled: bool = False
    allowed_tools: tuple[str, ...] | None = None
    tool_prefix: str = ""
    internal_only: bool = False
    timeout_seconds: float = 60.0
    description: str = ""

    def allows(self, tool: str) -> bool:
        """Whether the model may see and call ``tool`` (the server's own name for it)."""
        return self.allowed_tools is None or tool in self.allowed_tools

    def exposed_name(self, tool: str) -> str:
        """The tool's name as the model sees it."""
        return f"{self.tool_prefix}{tool}"

    def stdio_command(self, python: str, entry_point: str) -> tuple[str, tuple[str, ...]]:
        """The command and arguments that start this server over stdio (built-ins run ``entry_point``)."""
        if self.kind == "builtin":
            return python, (entry_point, "mcp", "serve", str(self.builtin))
        if self.kind == "stdio" and self.command:
            return self.command, self.args
        raise MCPConfigError(f"MCP server {self.name!r} is an HTTP server; it has no command")


@dataclass(frozen=True)
class MCPConfig:
    """Every configured server, in file order."""

    servers: tuple[MCPServerConfig, ...]

    @property
    def enabled(self) -> tuple[MCPServerConfig, ...]:
        """The servers not marked ``disabled``."""
        return tuple(s for s in self.servers if not s.disabled)

    def for_audience(self, *, shared_channel: bool) -> tuple[MCPServerConfig, ...]:
        """The enabled servers usable when answering in a channel (shared channels exclude ``internal_only``)."""
        return tuple(s for s in self.enabled if not (shared_channel and s.internal_only))

    def get(self, name: str) -> MCPServerConfig | None:
        """The server called ``name``, if configured."""
        return next((s for s in self.servers if s.name == name), None)


def default_config() -> MCPConfig:
    """What is used without a file: the three built-in servers, GitHub internal only."""
    return MCPConfig(
        (
            MCPServerConfig("slack", "builtin", builtin="slack"),
            MCPServerConfig("docs", "builtin", builtin="docs"),
            MCPServerConfig("github", "builtin", builtin="github", internal_only=True),
        )
    )


def load_mcp_config(path: str | Path, environ: Mapping[str, str], *, missing_ok: bool = True) -> MCPConfig:
    """Read and validate the file at ``path``; a missing file gives :func:`default_config` when ``missing_ok``.

    Raises:
        MCPConfigError: unreadable, not JSON, or invalid (the message says where and what to change).
    """
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return default_config()
        raise MCPConfigError(f"MCP_CONFIG={str(path)!r}: no such file; create it (see mcp_config.example.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MCPConfigError(f"MCP_CONFIG={str(path)!r} cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise MCPConfigError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    return parse_mcp_config(data, environ, origin=str(path))


def parse_mcp_config(data: Any, environ: Mapping[str, str], *, origin: str = "mcp_config.json") -> MCPConfig:
    """Validate an already-decoded configuration document.

    Raises:
        MCPConfigError: anything invalid, naming the server and key.
    """
    if not isinstance(data, dict):
        raise MCPConfigError(f'{origin}: the top level must be an object with a "servers" object')
    unknown = set(data) - {"servers", "mcpServers", "$schema"}
    if unknown:
        raise MCPConfigError(f"{origin}: unknown key {sorted(unknown)[0]!r} at the top level (allowed: servers)")
    if "servers" in data and "mcpServers" in data:
        raise MCPConfigError(f'{origin}: use either "servers" or "mcpServers", not both')
    servers = data.get("servers", data.get("mcpServers"))
    if not isinstance(servers, dict):
        raise MCPConfigError(f'{origin}: "servers" must be an object mapping a name to a server')
    parsed = tuple(_parse_server(name, spec, environ, origin) for name, spec in servers.items())
    prefixes = [s.tool_prefix for s in parsed if s.tool_prefix and not s.disabled]
    if len(prefixes) != len(set(prefixes)):
        raise MCPConfigError(f"{origin}: two enabled servers share a tool_prefix; give each its own")
    return MCPConfig(parsed)


def _parse_server(name: str, spec: Any, environ: Mapping[str, str], origin: str) -> MCPServerConfig:
    where = f"{origin}: server {name!r}"
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name):
        raise MCPConfigError(f"{where}: names may use letters, digits, '_', '-' and '.' (at most 64)")
    if not isinstance(spec, dict):
        raise MCPConfigError(f"{where}: must be an object")
    kinds = [k for k, key in (("builtin", "builtin"), ("stdio", "command"), ("http", "url")) if key in spec]
    if len(kinds) != 1:
        raise MCPConfigError(
            f'{where}: give exactly one of "builtin" (slack, docs, github), "command" (stdio) or "url" (HTTP)'
        )
    kind: ServerKind = kinds[0]  # type: ignore[assignment]
    unknown = sorted(set(spec) - _KEYS[kind])
    if unknown:
        raise MCPConfigError(
            f"{where}: unknown key {unknown[0]!r} for a {kind} server (allowed: {', '.join(sorted(_KEYS[kind]))})"
        )

    def sub(value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise MCPConfigError(f"{where}: {key} must be a string")
        try:
            return _substitute(value, environ, f"{where}: {key}")
        except MCPConfigError:
            if spec.get("disabled") is True:
                return value  # a disabled server's variables need not be set
            raise

    def str_map(key: str) -> dict[str, str]:
        value = spec.get(key, {})
        if not isinstance(value, dict):
            raise MCPConfigError(f"{where}: {key} must be an object of strings")
        return {str(k): sub(v, f"{key}.{k}") for k, v in value.items()}

    def flag(key: str) -> bool:
        value = spec.get(key, False)
        if not isinstance(value, bool):
            raise MCPConfigError(f"{where}: {key} must be true or false")
        return value

    allowed = spec.get("allowed_tools")
    if allowed is not None and (not isinstance(allowed, list) or not all(isinstance(t, str) and t for t in allowed)):
        raise MCPConfigError(f"{where}: allowed_tools must be a list of tool names (or left out for all tools)")
    prefix = spec.get("tool_prefix", "")
    if not isinstance(prefix, str) or (prefix and not _TOOL_PREFIX.match(prefix)):
        raise MCPConfigError(f"{where}: tool_prefix must start with a letter and use letters, digits, '_' or '-'")
    timeout = spec.get("timeout_seconds", 60.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise MCPConfigError(f"{where}: timeout_seconds must be a number of seconds between 0 and 3600")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise MCPConfigError(f"{where}: description must be a string")
    common: dict[str, Any] = {
        "disabled": flag("disabled"),
        "allowed_tools": tuple(allowed) if allowed is not None else None,
        "tool_prefix": prefix,
        "internal_only": flag("internal_only"),
        "timeout_seconds": float(timeout),
        "description": description,
    }
    if kind == "builtin":
        builtin = spec["builtin"]
        if builtin not in BUILTIN_SERVERS:
            raise MCPConfigError(f"{where}: builtin must be one of {', '.join(BUILTIN_SERVERS)} (got {builtin!r})")
        return MCPServerConfig(name, kind, builtin=builtin, env=str_map("env"), **common)
    if kind == "stdio":
        args = spec.get("args", [])
        if not isinstance(args, list):
            raise MCPConfigError(f"{where}: args must be a list of strings")
        command = sub(spec["command"], "command")
        if not command.strip():
            raise MCPConfigError(f"{where}: command is empty")
        cwd = sub(spec["cwd"], "cwd") if "cwd" in spec else None
        return MCPServerConfig(
            name,
            kind,
            command=command,
            args=tuple(sub(a, f"args[{i}]") for i, a in enumerate(args)),
            env=str_map("env"),
            cwd=cwd,
            **common,
        )
    url = sub(spec["url"], "url")
    if not url.startswith(("http://", "https://")):
        raise MCPConfigError(f"{where}: url must start with http:// or https:// (got {url!r})")
    return MCPServerConfig(name, kind, url=url, headers=str_map("headers"), **common)


def _substitute(value: str, environ: Mapping[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ and environ[name] != "":
            return environ[name]
        if default is not None:
            return default
        raise MCPConfigError(f"{where}: ${{{name}}} is not set; set {name} in the environment or .env")

    return _VARIABLE.sub(replace, value)
