"""Building the assistant from the configuration: Claude, the tool hub, prompts and reply sinks.

``run``, ``chat`` and ``ask`` all go through :func:`build_assistant`, so they answer the same way. Local
(terminal) questions are answered into a sink registered by the process that asked; any other process
that picks one up stores the answer in ``chat_messages`` only, where the asking terminal reads it.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import structlog

from agent.agent import AgentSettings, Assistant
from agent.config import Config
from agent.errors import ConfigError
from agent.llm import ClaudeClient, LLMSettings
from agent.prompts import PromptRenderer
from agent.questions import Question
from agent.replies import ReplySink
from agent.slack_sink import SlackReplySink, SlackWriter
from agent.tools import ServerSpec, ToolHub
from database import DatabaseConnection

_log = structlog.get_logger("athenaeum.setup")
ROOT = Path(__file__).resolve().parent.parent


class NullSink:
    """A sink that shows nothing (the answer is still stored for local conversations)."""

    def open(self) -> bool:
        return False

    def status(self, text: str) -> None: ...
    def update(self, text: str) -> None: ...
    def finish(self, text: str) -> None: ...
    def note_retry(self, text: str) -> None: ...
    def fail(self, text: str) -> None: ...


class LocalSinks:
    """Terminal sinks registered per local conversation by the process that owns the terminal."""

    def __init__(self) -> None:
        self._sinks: dict[str, ReplySink] = {}
        self._lock = threading.Lock()

    def register(self, conversation_id: str, sink: ReplySink) -> None:
        with self._lock:
            self._sinks[conversation_id] = sink

    def get(self, conversation_id: str | None) -> ReplySink:
        with self._lock:
            return self._sinks.get(conversation_id or "", NullSink())


def llm_from_config(config: Config) -> ClaudeClient | None:
    """The Claude seam, or ``None`` when no API key is configured (answers become search results)."""
    if not config.anthropic_api_key:
        return None
    return ClaudeClient(
        LLMSettings(
            api_key=config.anthropic_api_key,
            base_url=config.anthropic_base_url,
            model=config.anthropic_model,
            max_tokens=config.anthropic_max_tokens,
            temperature=config.anthropic_temperature,
            max_retries=config.anthropic_max_retries,
            timeout=config.anthropic_timeout,
        )
    )


def server_specs(config: Config, database_url: str | None = None) -> list[ServerSpec]:
    """The enabled MCP servers of ``MCP_CONFIG`` as the tool hub starts them.

    Built-in servers run as ``python athenaeum.py mcp serve NAME`` with our variables (and the database URL
    this process uses, so an embedded database is shared rather than started twice).
    """
    try:
        from agent.mcp_config import load_mcp_config  # the MCP issue's loader: ${ENV}, validation, built-ins
    except ImportError:
        return _simple_specs(Path(config.mcp_config))
    loaded = load_mcp_config(config.mcp_config, config.variables())
    specs: list[ServerSpec] = []
    for server in loaded.enabled:
        common: dict[str, Any] = {
            "name": server.name,
            "allowed_tools": server.allowed_tools,
            "tool_prefix": server.tool_prefix,
            "internal_only": server.internal_only,
        }
        if server.kind == "http":
            specs.append(ServerSpec(url=server.url, headers=dict(server.headers), **common))
            continue
        command, args = server.stdio_command(sys.executable, str(ROOT / "athenaeum.py"))
        env = dict(server.env)
        if server.kind == "builtin":
            env = {**config.variables(), **env, "PYTHONUNBUFFERED": "1"}
            if database_url:
                env["DATABASE_URL"] = database_url
        specs.append(ServerSpec(command=command, args=tuple(args), env=env, cwd=server.cwd or str(ROOT), **common))
    return specs


def _simple_specs(path: Path) -> list[ServerSpec]:
    if not path.is_file():
        _log.info("no MCP configuration; the assistant has no tools", path=str(path))
        return []
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"MCP_CONFIG={str(path)!r} is not valid JSON: {exc}") from exc
    servers = data.get("mcpServers") or data.get("servers") or {}
    specs = []
    for name, entry in servers.items():
        if entry.get("disabled"):
            continue
        specs.append(
            ServerSpec(
                name=name,
                command=entry.get("command"),
                args=tuple(entry.get("args") or ()),
                env=entry.get("env") or {},
                url=entry.get("url"),
                headers=entry.get("headers") or {},
                allowed_tools=tuple(entry["allowed_tools"]) if entry.get("allowed_tools") else None,
                tool_prefix=entry.get("tool_prefix") or "",
                internal_only=bool(entry.get("internal_only")),
            )
        )
    return specs


def build_assistant(
    config: Config,
    db: DatabaseConnection,
    *,
    local_sinks: LocalSinks | None = None,
    slack_writer: SlackWriter | None = None,
    tools: ToolHub | None = None,
    llm: ClaudeClient | None = None,
    bot_user_id: str | None = None,
) -> Assistant:
    """An :class:`Assistant` wired from ``config``. Pass ``tools``/``llm`` to reuse (or fake) them."""
    local = local_sinks or LocalSinks()

    def sinks(question: Question) -> ReplySink:
        if question.source == "local":
            return local.get(question.conversation_id)
        if slack_writer is None:
            _log.warning("a Slack question arrived but Slack is not configured; the answer is not posted")
            return NullSink()
        return SlackReplySink.for_question(
            slack_writer, db, question, mode=config.reply_streaming, update_interval=config.reply_update_interval
        )

    settings = AgentSettings(
        max_turns=config.agent_max_turns,
        context_token_budget=config.context_token_budget,
        context_max_messages=config.context_max_messages,
        timezone=config.assistant_timezone,
        max_retry_count=config.max_retry_count,
        deadline_seconds=config.event_visibility_timeout,
        bot_user_id=bot_user_id,
        allowed_channels=config.allowed_channels,
    )
    return Assistant(
        db,
        sinks,
        llm=llm if llm is not None else llm_from_config(config),
        tools=tools,
        prompts=PromptRenderer(config.prompts_dir),
        settings=settings,
    )


def slack_writer_from_config(config: Config) -> tuple[SlackWriter | None, str | None]:
    """The Slack write seam and our bot user id (from ``auth.test``), or ``(None, None)`` without a token."""
    if not config.slack_bot_token:
        return None, None
    writer = SlackWriter(config.slack_bot_token, config.slack_api_url)
    identity: dict[str, Any] = writer.call("auth.test")
    return writer, identity.get("user_id")
