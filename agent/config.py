"""Config: the only reader of the environment and ``.env``.

Every setting is declared once in ``SETTINGS`` (variable, type, default, whether it is secret, what it
is for); ``.env.sample`` documents the same list and a test keeps the two equal. ``Config()`` reads the
environment once; ``validate()`` reports every bad value in one error; ``log_configuration()`` and
``as_dict()`` mask secrets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from dotenv import dotenv_values

from agent.errors import ConfigError
from agent.redaction import MASK, redact, register_secret

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("auto", "json", "console")
EMBEDDING_PROVIDERS = ("local", "openai")


@dataclass(frozen=True)
class Setting:
    """One environment variable: how to parse it and what it means."""

    env: str
    attr: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    secret: bool = False
    hint: str = ""


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be greater than 0")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _embedding_tokens(value: str) -> int:
    number = int(value)
    if not 8 <= number <= 512:
        raise ValueError("must be a number of word pieces between 8 and 512 (the model reads at most 512)")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError("must be a TCP port between 0 and 65535 (0 disables the server)")
    return number


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip().upper() if upper else value.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value


def _database_url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg2://")):
        raise ValueError("must be a PostgreSQL URL such as postgresql://user:password@host:5432/dbname")
    return value


def _prefixed(prefix: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip()
        if not value.startswith(prefix):
            raise ValueError(f"must start with {prefix!r}")
        return value

    return parse


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _text(value: str) -> str:
    return value.strip()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        "database_url",
        _database_url,
        None,
        "PostgreSQL URL; unset starts the embedded PostgreSQL (with pgvector) under ATHENAEUM_DATA_DIR",
        secret=True,
    ),
    Setting(
        "ATHENAEUM_DATA_DIR",
        "data_dir",
        _text,
        ".athenaeum",
        "where the embedded PostgreSQL and other local state live",
    ),
    Setting("DATABASE_POOL_SIZE", "database_pool_size", _positive_int, 10, "connections kept open per process"),
    Setting(
        "DATABASE_MAX_OVERFLOW", "database_max_overflow", _non_negative_int, 20, "extra connections allowed under load"
    ),
    Setting(
        "DATABASE_PING_AFTER",
        "database_ping_after",
        _non_negative_float,
        1.0,
        "seconds a pooled connection may sit idle and still be reused without a SELECT 1 first "
        "(0 pings before every reuse; a connection closed by the server is always caught)",
    ),
    Setting(
        "WORKER_POOL_SIZE",
        "worker_pool_size",
        _positive_int,
        5,
        "worker threads per process (events in flight at most)",
    ),
    Setting(
        "EVENT_VISIBILITY_TIMEOUT",
        "event_visibility_timeout",
        _positive_float,
        300.0,
        "lease in seconds; a claimed event not heartbeated for this long is reclaimed",
    ),
    Setting(
        "MAX_RETRY_COUNT",
        "max_retry_count",
        _non_negative_int,
        3,
        "retries after the first attempt (N retries = N+1 attempts)",
    ),
    Setting(
        "RETRY_BASE_DELAY",
        "retry_base_delay",
        _non_negative_float,
        10.0,
        "seconds before the first retry; doubles each retry (10, 20, 40 s)",
    ),
    Setting(
        "HEARTBEAT_INTERVAL",
        "heartbeat_interval",
        _positive_float,
        None,
        "seconds between lease extensions of running jobs (default: a third of the lease)",
    ),
    Setting(
        "REAPER_INTERVAL",
        "reaper_interval",
        _positive_float,
        30.0,
        "seconds between sweeps that return expired leases to the queue",
    ),
    Setting(
        "POLL_INTERVAL",
        "poll_interval",
        _positive_float,
        1.0,
        "safety-net poll in seconds (wake-ups are immediate; this covers lost notifications)",
    ),
    Setting(
        "STOP_GRACE_PERIOD",
        "stop_grace_period",
        _non_negative_float,
        30.0,
        "seconds in-flight jobs get to finish on SIGTERM before their leases are released",
    ),
    Setting(
        "SLACK_BOT_TOKEN",
        "slack_bot_token",
        _prefixed("xoxb-"),
        None,
        "bot token (xoxb-...) for the Slack Web API",
        secret=True,
    ),
    Setting(
        "SLACK_APP_TOKEN",
        "slack_app_token",
        _prefixed("xapp-"),
        None,
        "app-level token (xapp-..., scope connections:write) for Socket Mode",
        secret=True,
    ),
    Setting(
        "SLACK_SIGNING_SECRET",
        "slack_signing_secret",
        _text,
        None,
        "signing secret for the optional HTTP Events API mode",
        secret=True,
    ),
    Setting(
        "SLACK_API_URL",
        "slack_api_url",
        _url,
        "https://slack.com/api/",
        "Slack Web API base URL (GovSlack, proxies and test servers change it)",
    ),
    Setting(
        "SLACK_INGEST_THREADS",
        "slack_ingest_threads",
        _positive_int,
        8,
        "Socket Mode writer threads; envelopes that arrive together are committed in one transaction each",
    ),
    Setting(
        "ALLOWED_CHANNELS",
        "allowed_channels",
        _csv,
        (),
        "comma-separated channel ids the assistant answers in; empty means everywhere it is invited",
    ),
    Setting(
        "ANTHROPIC_API_KEY",
        "anthropic_api_key",
        _text,
        None,
        "Claude API key; unset, answers are search results only",
        secret=True,
    ),
    Setting(
        "ANTHROPIC_BASE_URL",
        "anthropic_base_url",
        _url,
        None,
        "Anthropic API base URL (proxies, gateways and test servers)",
    ),
    Setting(
        "ANTHROPIC_MODEL",
        "anthropic_model",
        _text,
        "claude-sonnet-5-5",
        "the Claude model that answers (claude-sonnet-4-5 reaches end of life on 2026-11-30)",
    ),
    Setting(
        "ANTHROPIC_MAX_TOKENS",
        "anthropic_max_tokens",
        _positive_int,
        4096,
        "the longest answer Claude may write per turn, in tokens",
    ),
    Setting(
        "ANTHROPIC_TEMPERATURE",
        "anthropic_temperature",
        _non_negative_float,
        None,
        "sampling temperature; unset sends none (Sonnet 5 and later reject non-default values)",
    ),
    Setting(
        "ANTHROPIC_MAX_RETRIES",
        "anthropic_max_retries",
        _non_negative_int,
        2,
        "retries of one Claude call (429/529/5xx/connection) before the event is retried by the queue",
    ),
    Setting(
        "ANTHROPIC_TIMEOUT",
        "anthropic_timeout",
        _positive_float,
        120.0,
        "seconds one Claude call may take (the whole streamed answer)",
    ),
    Setting(
        "AGENT_MAX_TURNS",
        "agent_max_turns",
        _positive_int,
        8,
        "Claude calls per question at most; at the limit it answers with what it has and says so",
    ),
    Setting(
        "CONTEXT_TOKEN_BUDGET",
        "context_token_budget",
        _positive_int,
        6000,
        "tokens of thread history given to Claude (the newest messages that fit)",
    ),
    Setting(
        "CONTEXT_MAX_MESSAGES", "context_max_messages", _positive_int, 50, "thread messages given to Claude at most"
    ),
    Setting(
        "ASSISTANT_TIMEZONE",
        "assistant_timezone",
        _text,
        "UTC",
        "IANA time zone used for the local time in prompts (e.g. Europe/Berlin)",
    ),
    Setting(
        "REPLY_STREAMING",
        "reply_streaming",
        _choice(("native", "update", "off")),
        "native",
        "native (chat.startStream), update (post, then throttled chat.update) or off (post the final answer)",
    ),
    Setting(
        "REPLY_UPDATE_INTERVAL",
        "reply_update_interval",
        _non_negative_float,
        1.0,
        "seconds between streamed updates of a reply in Slack",
    ),
    Setting("GITHUB_TOKEN", "github_token", _text, None, "GitHub token for the GitHub MCP server", secret=True),
    Setting(
        "GITHUB_API_URL",
        "github_api_url",
        _url,
        "https://api.github.com",
        "GitHub REST API base URL (GitHub Enterprise: https://HOST/api/v3)",
    ),
    Setting(
        "GITHUB_ORG", "github_org", _text, None, "default GitHub organisation for repository names without an owner"
    ),
    Setting(
        "EMBEDDING_PROVIDER",
        "embedding_provider",
        _choice(EMBEDDING_PROVIDERS),
        "local",
        "local (all-MiniLM-L6-v2, offline) or openai (text-embedding-3-small)",
    ),
    Setting(
        "EMBEDDING_MAX_TOKENS",
        "embedding_max_tokens",
        _embedding_tokens,
        128,
        "word pieces the local model reads per chunk (8-512; fewer is faster, the rest of a chunk is cut off)",
    ),
    Setting(
        "OPENAI_API_KEY",
        "openai_api_key",
        _text,
        None,
        "OpenAI key, used only when EMBEDDING_PROVIDER=openai",
        secret=True,
    ),
    Setting(
        "OPENAI_BASE_URL",
        "openai_base_url",
        _url,
        "https://api.openai.com/v1",
        "OpenAI API base URL for embeddings (proxies, compatible gateways, test servers)",
    ),
    Setting(
        "MCP_CONFIG",
        "mcp_config",
        _text,
        "mcp_config.json",
        "path of the MCP server configuration used by the assistant",
    ),
    Setting("PROMPTS_DIR", "prompts_dir", _text, None, "a directory whose templates override the ones in prompts/"),
    Setting(
        "LOG_LEVEL", "log_level", _choice(LOG_LEVELS, upper=True), "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL"
    ),
    Setting(
        "LOG_FORMAT",
        "log_format",
        _choice(LOG_FORMATS),
        "auto",
        "json, console, or auto (console on a terminal, JSON otherwise)",
    ),
    Setting(
        "HEALTH_PORT", "health_port", _port, 8080, "port of the health/metrics server inside `run` (0 disables it)"
    ),
    Setting(
        "ADMIN_TOKEN",
        "admin_token",
        _text,
        None,
        "token that enables admin actions (retry) in the dashboard",
        secret=True,
    ),
    Setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "otel_exporter_otlp_endpoint",
        _url,
        None,
        "OTLP/HTTP traces endpoint; set it (with opentelemetry-sdk installed) to export a span per event",
    ),
    Setting(
        "LOGFIRE_TOKEN",
        "logfire_token",
        _text,
        None,
        "Logfire write token; set it (with logfire installed) to send traces to Logfire",
        secret=True,
    ),
)


@dataclass(frozen=True)
class QueueSettings:
    """The timing of the queue, passed as a whole to ``WorkerPool``/``EventProcessor``."""

    visibility_timeout: float = 300.0
    retry_base_delay: float = 10.0
    max_retry_count: int = 3
    heartbeat_interval: float | None = None
    reaper_interval: float = 30.0
    poll_interval: float = 1.0
    stop_grace_period: float = 30.0

    @classmethod
    def from_config(cls, config: Any) -> QueueSettings:
        """Accept ``None`` (defaults), a ``QueueSettings``, or anything with ``queue_settings()`` (``Config``)."""
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        settings: QueueSettings = config.queue_settings()
        return settings


class Config:
    """Settings read once from the environment and ``.env`` (the environment wins).

    Args:
        environ: the variables to read; defaults to ``os.environ``.
        env_file: a dotenv file read under the environment; ``None`` skips it.
    """

    database_url: str | None
    data_dir: str
    database_pool_size: int
    database_max_overflow: int
    database_ping_after: float
    worker_pool_size: int
    event_visibility_timeout: float
    max_retry_count: int
    retry_base_delay: float
    heartbeat_interval: float | None
    reaper_interval: float
    poll_interval: float
    stop_grace_period: float
    slack_bot_token: str | None
    slack_app_token: str | None
    slack_signing_secret: str | None
    slack_api_url: str
    slack_ingest_threads: int
    allowed_channels: tuple[str, ...]
    anthropic_api_key: str | None
    anthropic_base_url: str | None
    anthropic_model: str
    anthropic_max_tokens: int
    anthropic_temperature: float | None
    anthropic_max_retries: int
    anthropic_timeout: float
    agent_max_turns: int
    context_token_budget: int
    context_max_messages: int
    assistant_timezone: str
    reply_streaming: str
    reply_update_interval: float
    github_token: str | None
    github_api_url: str
    github_org: str | None
    embedding_provider: str
    embedding_max_tokens: int
    openai_api_key: str | None
    openai_base_url: str
    mcp_config: str
    prompts_dir: str | None
    log_level: str
    log_format: str
    health_port: int
    admin_token: str | None
    otel_exporter_otlp_endpoint: str | None
    logfire_token: str | None

    def __init__(self, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> None:
        values: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        self._values = dict(values)
        self._errors: list[str] = []
        for setting in SETTINGS:
            raw = values.get(setting.env)
            value = setting.default
            if raw is not None and raw.strip() != "":
                try:
                    value = setting.parse(raw)
                except ValueError as exc:
                    shown = MASK if setting.secret else repr(raw)
                    self._errors.append(f"{setting.env}={shown}: {exc}")
            if setting.secret and isinstance(value, str):
                if setting.env == "DATABASE_URL":
                    _register_url_password(value)  # the host and database name are not secret
                else:
                    register_secret(value)
            setattr(self, setting.attr, value)

    def variables(self) -> Mapping[str, str]:
        """Every variable read at start-up (environment over ``.env``), for ``${NAME}`` in ``mcp_config.json``
        and the environment of MCP servers we start. Contains secrets: never log it."""
        return dict(self._values)

    def validate(self) -> None:
        """Raise one :class:`ConfigError` naming every invalid setting and how to fix it.

        Credentials are not demanded here: the queue alone needs none, and commands that need Slack
        or Claude say so themselves.
        """
        errors = list(self._errors)
        if self.heartbeat_interval is not None and self.heartbeat_interval >= self.event_visibility_timeout:
            errors.append(
                f"HEARTBEAT_INTERVAL={self.heartbeat_interval}: must be shorter than "
                f"EVENT_VISIBILITY_TIMEOUT={self.event_visibility_timeout}, or leases expire between heartbeats"
            )
        if errors:
            raise ConfigError(
                "invalid configuration (fix these in the environment or .env):\n  - " + "\n  - ".join(errors)
            )

    def queue_settings(self) -> QueueSettings:
        """The queue timing this configuration describes."""
        return QueueSettings(
            visibility_timeout=self.event_visibility_timeout,
            retry_base_delay=self.retry_base_delay,
            max_retry_count=self.max_retry_count,
            heartbeat_interval=self.heartbeat_interval,
            reaper_interval=self.reaper_interval,
            poll_interval=self.poll_interval,
            stop_grace_period=self.stop_grace_period,
        )

    def missing_for_slack(self) -> list[str]:
        """The Slack variables Socket Mode needs that are unset."""
        return [
            name
            for name, value in (("SLACK_APP_TOKEN", self.slack_app_token), ("SLACK_BOT_TOKEN", self.slack_bot_token))
            if not value
        ]

    def as_dict(self) -> dict[str, Any]:
        """Every setting by variable name, secrets masked (set secrets show as ``***``)."""
        shown: dict[str, Any] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.attr)
            if setting.secret and value:
                value = redact(value) if setting.env == "DATABASE_URL" else MASK
            if isinstance(value, tuple):
                value = ",".join(value)
            shown[setting.env] = value
        return shown

    def log_configuration(self) -> None:
        """Log the effective configuration once, secrets masked."""
        structlog.get_logger("athenaeum.config").info("configuration", **self.as_dict())

    def __repr__(self) -> str:
        return f"Config({self.as_dict()!r})"


def _register_url_password(url: str) -> None:
    from urllib.parse import urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return
    register_secret(password)
