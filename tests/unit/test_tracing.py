"""Tracing is a no-op unless configured; configured, each event gets a span with child spans inside."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agent import tracing
from agent.snapshot import EventSnapshot, freeze


def _event(event_id: int = 7) -> EventSnapshot:
    now = datetime.now(UTC)
    return EventSnapshot(
        id=event_id,
        event_type="slack.app_mention",
        payload=freeze({}),
        status="processing",
        retry_count=0,
        attempts=1,
        created_at=now,
        run_after=now,
    )


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    assert tracing.configure_tracing(span_exporter=exp) == "exporter"
    try:
        yield exp
    finally:
        tracing.configure_tracing()


def test_unconfigured_tracing_is_off_and_spans_are_no_ops() -> None:
    assert tracing.configure_tracing(None, None) == "off"
    with tracing.span("anything", x=1) as current:
        assert current is None
    assert tracing.traced(lambda e: e.id * 2)(_event()) == 14


def test_each_event_gets_a_span_with_llm_and_tool_spans_inside(exporter: InMemorySpanExporter) -> None:
    def job(event: EventSnapshot) -> None:
        with tracing.span("llm.call", model="claude-sonnet-4-5", input_tokens=10):
            event_seen = event.id
            with tracing.span("tool.call", server="docs", tool="search_docs"):
                assert event_seen == 7

    tracing.traced(job)(_event())
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"athenaeum.event", "llm.call", "tool.call"}
    root = spans["athenaeum.event"]
    assert root.attributes["event.id"] == 7 and root.attributes["event.type"] == "slack.app_mention"
    assert spans["llm.call"].parent.span_id == root.context.span_id
    assert spans["tool.call"].parent.span_id == spans["llm.call"].context.span_id
    assert spans["llm.call"].attributes["model"] == "claude-sonnet-4-5"


def test_a_failing_event_marks_its_span_as_an_error(exporter: InMemorySpanExporter) -> None:
    def job(event: EventSnapshot) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        tracing.traced(job)(_event())
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR and span.events[0].name == "exception"


def test_requested_but_missing_packages_degrade_to_no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_logfire(name: str, *args: object, **kwargs: object) -> object:
        if name == "logfire":
            raise ImportError("No module named 'logfire'", name="logfire")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_logfire)
    assert tracing.configure_tracing(logfire_token="lf-token-value") == "unavailable"
    with tracing.span("x") as current:
        assert current is None
