"""Optional tracing: OpenTelemetry spans per event (and inside it, per LLM or tool call) when configured.

Nothing is required: without ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``LOGFIRE_TOKEN`` (or without the
packages) :func:`span` is a no-op context manager. With ``LOGFIRE_TOKEN`` and the ``logfire`` package,
Logfire is configured; with ``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``opentelemetry-sdk`` +
``opentelemetry-exporter-otlp-proto-http``, spans are batched to that OTLP/HTTP endpoint. Neither
package is in requirements.txt: install them where you want traces (docs/OPERATIONS.md).

Usage: ``process_func = traced(process_func)`` gives every event a span ``athenaeum.event`` with its
id, type and attempt; code inside the job opens child spans with ``with span("llm.call", model=...)``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from agent.snapshot import EventSnapshot

_log = structlog.get_logger("athenaeum.tracing")
SERVICE_NAME = "athenaeum"

_tracer: Any = None  # an OpenTelemetry Tracer once configured; None means spans are no-ops


def configure_tracing(
    otlp_endpoint: str | None = None,
    logfire_token: str | None = None,
    *,
    span_exporter: Any = None,
    service_name: str = SERVICE_NAME,
) -> str:
    """Set up tracing from plain settings; returns the mode: ``off``, ``logfire``, ``otlp``, ``exporter`` or
    ``unavailable`` (asked for, but the packages are missing: a warning says what to install).

    Args:
        otlp_endpoint: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (an OTLP/HTTP traces URL).
        logfire_token: ``LOGFIRE_TOKEN`` (wins over the OTLP endpoint).
        span_exporter: an OpenTelemetry ``SpanExporter`` to use directly (tests, custom set-ups).
        service_name: the ``service.name`` resource attribute.
    """
    global _tracer
    if not (otlp_endpoint or logfire_token or span_exporter):
        _tracer = None
        return "off"
    try:
        if logfire_token and span_exporter is None:
            import logfire

            logfire.configure(token=logfire_token, service_name=service_name, console=False)
            from opentelemetry import trace

            _tracer = trace.get_tracer("athenaeum")
            mode = "logfire"
        else:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

            provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
            if span_exporter is not None:
                provider.add_span_processor(SimpleSpanProcessor(span_exporter))
                mode = "exporter"
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
                mode = "otlp"
            _tracer = provider.get_tracer("athenaeum")
    except ImportError as exc:
        _tracer = None
        _log.warning(
            "tracing requested but its packages are missing; running without traces",
            missing=exc.name,
            fix="pip install logfire (LOGFIRE_TOKEN) or opentelemetry-sdk opentelemetry-exporter-otlp-proto-http",
        )
        return "unavailable"
    _log.info("tracing enabled", mode=mode)
    return mode


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span named ``name`` under the current one (no-op when tracing is off). Exceptions are recorded."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=_attrs(attributes)) as current:
        yield current


def traced(process_func: Callable[[EventSnapshot], Any]) -> Callable[[EventSnapshot], Any]:
    """Wrap a ``process_func`` so each event runs inside an ``athenaeum.event`` span."""

    @functools.wraps(process_func)
    def run(event: EventSnapshot) -> Any:
        with span(
            "athenaeum.event",
            **{"event.id": event.id, "event.type": event.event_type, "event.attempt": event.attempt},
        ):
            return process_func(event)

    return run


def _attrs(attributes: dict[str, Any]) -> dict[str, Any]:
    # OpenTelemetry accepts str, bool, int, float (and lists of them); anything else becomes text.
    return {k: v if isinstance(v, str | bool | int | float) else str(v) for k, v in attributes.items() if v is not None}
