"""The Claude seam against the local fake Messages API, through the real anthropic SDK."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from agent.errors import PermanentError
from agent.llm import (
    ClaudeClient,
    LLMPermanentError,
    LLMRetryableError,
    LLMSettings,
    LLMSpendLimitError,
    Usage,
)
from tests.fakes.anthropic_server import FakeAnthropic, http_error, stream_error, text, tool_use


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def client(fake: FakeAnthropic, waits: list[float], **overrides: object) -> ClaudeClient:
    settings = LLMSettings(
        api_key="sk-ant-test-key-123456",
        model="claude-sonnet-5-5",
        base_url=fake.base_url,
        retry_base_seconds=0.01,
        **overrides,
    )  # type: ignore[arg-type]
    return ClaudeClient(settings, sleep=waits.append)


def ask(c: ClaudeClient, **kwargs: object):  # type: ignore[no-untyped-def]
    return c.stream_turn(system="You are a test.", messages=[{"role": "user", "content": "hi"}], **kwargs)  # type: ignore[arg-type]


def test_streams_text_deltas_and_returns_the_whole_answer(fake: FakeAnthropic) -> None:
    fake.script(text("Hello there, this answer arrives in several pieces."))
    pieces: list[str] = []
    result = ask(client(fake, []), on_text=pieces.append)
    assert len(pieces) > 1
    assert "".join(pieces) == result.text == "Hello there, this answer arrives in several pieces."
    assert result.stop_reason == "end_turn" and result.tool_uses == []
    assert fake.requests[0]["stream"] is True


def test_tool_use_input_is_assembled_from_json_deltas(fake: FakeAnthropic) -> None:
    fake.script(tool_use(("search_docs", {"query": "lease timeout", "limit": 3}), text="Let me look."))
    tools = [{"name": "search_docs", "description": "d", "input_schema": {"type": "object"}}]
    result = ask(client(fake, []), tools=tools)
    assert result.stop_reason == "tool_use"
    assert [(t.name, t.input) for t in result.tool_uses] == [("search_docs", {"query": "lease timeout", "limit": 3})]
    assert result.content[0] == {"type": "text", "text": "Let me look."}
    assert result.content[1]["type"] == "tool_use" and "cache_control" not in result.content[1]


def test_system_prompt_and_last_tool_carry_cache_control_and_cache_reads_are_counted(fake: FakeAnthropic) -> None:
    c = client(fake, [])
    tools = [{"name": f"t{i}", "description": "d", "input_schema": {"type": "object"}} for i in range(3)]
    first = ask(c, tools=tools)
    second = ask(c, tools=tools)
    body = fake.requests[0]
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in t for t in body["tools"][:-1])
    assert first.usage.cache_creation_tokens > 0 and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens > 0


def test_temperature_is_sent_only_when_configured(fake: FakeAnthropic) -> None:
    ask(client(fake, []))
    ask(client(fake, [], temperature=0.2))
    assert "temperature" not in fake.requests[0]
    assert fake.requests[1]["temperature"] == 0.2


def test_row22_overloaded_twice_then_success(fake: FakeAnthropic) -> None:
    fake.script(http_error("overloaded_error"), http_error("overloaded_error"), text("finally"))
    waits: list[float] = []
    result = ask(client(fake, waits))
    assert result.text == "finally"
    assert len(fake.requests) == 3 and len(waits) == 2
    assert waits[1] > waits[0]  # exponential backoff


def test_row22_overloaded_forever_raises_retryable_after_the_budget(fake: FakeAnthropic) -> None:
    fake.default = lambda body: http_error("overloaded_error")
    with pytest.raises(LLMRetryableError) as info:
        ask(client(fake, [], max_retries=2))
    assert info.value.status == 529
    assert not isinstance(info.value, PermanentError)
    assert len(fake.requests) == 3


def test_rate_limit_honours_retry_after(fake: FakeAnthropic) -> None:
    fake.script(http_error("rate_limit_error", headers={"retry-after": "7"}), text("ok"))
    waits: list[float] = []
    assert ask(client(fake, waits)).text == "ok"
    assert waits == [7.0]


def test_no_retry_is_started_past_the_deadline(fake: FakeAnthropic) -> None:
    import time

    fake.script(http_error("rate_limit_error", headers={"retry-after": "600"}), text("never"))
    waits: list[float] = []
    with pytest.raises(LLMRetryableError) as info:
        ask(client(fake, waits), deadline=time.monotonic() + 30)
    assert info.value.retry_after == 600.0
    assert waits == [] and len(fake.requests) == 1


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (
            http_error("invalid_request_error", message="prompt is too long: 250000 tokens > 200000 maximum"),
            LLMPermanentError,
        ),
        (http_error("authentication_error"), LLMPermanentError),
        (http_error("permission_error"), LLMPermanentError),
        (http_error("rate_limit_error", error_code="enforced_spend_limit_reached"), LLMSpendLimitError),
        (http_error("billing_error"), LLMSpendLimitError),
    ],
)
def test_row12_permanent_errors_fail_at_once(fake: FakeAnthropic, step: object, expected: type) -> None:
    fake.script(step)  # type: ignore[arg-type]
    waits: list[float] = []
    with pytest.raises(expected) as info:
        ask(client(fake, waits))
    assert isinstance(info.value, PermanentError)
    assert len(fake.requests) == 1 and waits == []
    assert "sk-ant-test" not in str(info.value)


def test_row23_stream_error_after_partial_output_restarts_the_turn(fake: FakeAnthropic) -> None:
    fake.script(stream_error("The answer starts like this and th"), text("The answer starts like this and ends well."))
    received: list[str] = []
    restarts: list[int] = []

    def restart() -> None:
        restarts.append(len(received))
        received.clear()

    result = ask(client(fake, []), on_text=received.append, on_restart=restart)
    assert restarts and restarts[0] > 0
    assert "".join(received) == result.text == "The answer starts like this and ends well."


def test_connection_refused_is_retryable() -> None:
    settings = LLMSettings(
        api_key="sk-ant-x-123456", model="m", base_url="http://127.0.0.1:9", max_retries=1, retry_base_seconds=0.0
    )
    waits: list[float] = []
    with pytest.raises(LLMRetryableError):
        ClaudeClient(settings, sleep=waits.append).stream_turn(system="s", messages=[{"role": "user", "content": "x"}])
    assert len(waits) == 1


def test_tests_can_never_reach_the_real_api() -> None:
    settings = LLMSettings(api_key="sk-ant-x-123456", model="m", base_url=None)
    with pytest.raises(RuntimeError, match="real Anthropic API"):
        ClaudeClient(settings)


def test_cost_estimate_uses_the_price_table() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_creation_tokens=0, cache_read_tokens=1_000_000)
    assert usage.cost_usd("claude-sonnet-5-5") == Decimal("3.200000")
    assert usage.cost_usd("unknown-model") == Decimal(0)


def test_usage_and_errors_are_signalled_to_the_metrics(fake: FakeAnthropic) -> None:
    from agent import observers

    seen: list[tuple[str, dict[str, object]]] = []

    def on_usage(**fields: object) -> None:
        seen.append(("llm_usage", fields))

    def on_error(**fields: object) -> None:
        seen.append(("llm_error", fields))

    observers.subscribe("llm_usage", on_usage)
    observers.subscribe("llm_error", on_error)
    try:
        fake.script(text("fine"), http_error("invalid_request_error", message="prompt is too long"))
        ask(client(fake, []))
        with pytest.raises(LLMPermanentError):
            ask(client(fake, []))
    finally:
        observers.unsubscribe("llm_usage", on_usage)
        observers.unsubscribe("llm_error", on_error)
    assert seen[0][0] == "llm_usage" and seen[0][1]["model"] == "claude-sonnet-5-5"
    assert int(seen[0][1]["output_tokens"]) > 0  # type: ignore[call-overload]
    assert seen[1] == ("llm_error", {"error_class": "LLMPermanentError"})
