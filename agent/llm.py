"""The Claude seam: the only module that talks to the Anthropic Messages API.

It streams one model turn (``messages.stream``, with tools), turns every SDK exception into ours, owns
the retry policy of a single call, and counts usage. Exceptions::

    AthenaeumError
    └── LLMError                    Claude could not answer this turn
        ├── LLMRetryableError       429 (not spend limits), 529, 5xx, connection; ``retry_after`` when known
        └── LLMPermanentError       400 (bad request, prompt too long), 401/403, 404, 413 (also a PermanentError)
            └── LLMSpendLimitError  the organisation's spend limit or billing stops every call

Why the seam retries and the SDK does not (``max_retries=0``): the SDK would retry spend-limit 429s,
cannot see the event's lease, and never retries a stream that failed half-way (an SSE ``error`` after
partial output). Here every retry honours ``Retry-After``, stops when the next wait would pass the
caller's deadline (the queue then retries the event with its own backoff), and tells the caller, through
``on_restart``, that text it already received is being regenerated, so a reply is completed, not doubled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anthropic
import structlog

from agent import observers
from agent.errors import PermanentError
from database.errors import AthenaeumError

_log = structlog.get_logger("athenaeum.llm")

BACKOFF_MAX_SECONDS = 8.0
CACHE_CONTROL = {"type": "ephemeral"}

# USD per million tokens: input, output, cache write (5 min), cache read. Unknown models cost 0 (and say so in logs).
PRICES_PER_MTOK: dict[str, tuple[str, str, str, str]] = {
    "claude-sonnet-5-5": ("2", "10", "2.50", "0.20"),
    "claude-sonnet-5": ("2", "10", "2.50", "0.20"),
    "claude-opus-5-5": ("4", "20", "5", "0.40"),
    "claude-opus-5": ("5", "25", "6.25", "0.50"),
    "claude-sonnet-4-6": ("3", "15", "3.75", "0.30"),
    "claude-sonnet-4-5": ("3", "15", "3.75", "0.30"),
    "claude-haiku-4-5": ("1", "5", "1.25", "0.10"),
}


class LLMError(AthenaeumError):
    """Claude could not answer this turn."""


class LLMRetryableError(LLMError):
    """A transient failure (rate limit, overload, server error, connection); try again later.

    Args:
        retry_after: seconds the API asked us to wait, when it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class LLMPermanentError(LLMError, PermanentError):
    """A request Claude will never accept as it is (bad request, prompt too long, bad key); do not retry."""


class LLMSpendLimitError(LLMPermanentError):
    """The organisation's spend limit (or billing) stops every call until someone raises it."""


@dataclass(frozen=True)
class LLMSettings:
    """How to reach Claude and how to call it (built from ``Config`` by the composition root)."""

    api_key: str
    model: str
    base_url: str | None = None
    max_tokens: int = 4096
    temperature: float | None = None
    max_retries: int = 2
    timeout: float = 120.0
    retry_base_seconds: float = 0.5


@dataclass
class Usage:
    """Tokens spent on one event (summed over its turns)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    calls: int = 0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_creation_tokens += other.cache_creation_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.calls += other.calls

    def cost_usd(self, model: str | None) -> Decimal:
        """The estimated cost at list prices (0 for a model without a price)."""
        prices = PRICES_PER_MTOK.get(model or "")
        if prices is None:
            return Decimal(0)
        p_in, p_out, p_write, p_read = (Decimal(p) for p in prices)
        total = (
            self.input_tokens * p_in
            + self.output_tokens * p_out
            + self.cache_creation_tokens * p_write
            + self.cache_read_tokens * p_read
        )
        return (total / Decimal(1_000_000)).quantize(Decimal("0.000001"))


@dataclass(frozen=True)
class ToolUse:
    """One tool call Claude asked for."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class TurnResult:
    """What one model turn produced: the assistant message to send back, its text, and its tool calls."""

    content: list[dict[str, Any]]
    text: str
    tool_uses: list[ToolUse]
    stop_reason: str | None
    usage: Usage = field(default_factory=Usage)


TextCallback = Callable[[str], None]


class ClaudeClient:
    """Streams model turns from the Anthropic Messages API.

    Args:
        settings: key, model, limits and retry policy.
        sleep: how to wait between retries (tests record the waits instead of sleeping).
    """

    def __init__(self, settings: LLMSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        # Retries are ours (see the module docstring); the key and URL are passed so the SDK reads no environment.
        self._client = anthropic.Anthropic(
            api_key=settings.api_key,
            base_url=settings.base_url,
            max_retries=0,
            timeout=settings.timeout,
        )

    @property
    def model(self) -> str:
        return self.settings.model

    def close(self) -> None:
        self._client.close()

    def stream_turn(
        self,
        *,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]] = (),
        on_text: TextCallback | None = None,
        on_restart: Callable[[], None] | None = None,
        deadline: float | None = None,
        allow_tools: bool = True,
    ) -> TurnResult:
        """Run one model turn, streaming its text to ``on_text``; retry transient failures.

        Args:
            system: the static system prompt (cached).
            messages: the conversation so far, in Messages API form.
            tools: tool definitions (the last one carries the cache breakpoint).
            on_text: receives each text delta as it arrives.
            on_restart: called before a retry when text of this turn was already passed to ``on_text``;
                the caller drops that text, since the retried turn streams its text again from the start.
            deadline: ``time.monotonic()`` value after which no retry is started.
            allow_tools: ``False`` asks for an answer without further tool calls (the turn limit).

        Raises:
            LLMRetryableError: still failing after the retries, or the next wait would pass ``deadline``.
            LLMPermanentError: the request will never succeed as it is.
        """
        params = self._params(system, messages, tools, allow_tools)
        attempt = 0
        while True:
            streamed = False

            def forward(text: str) -> None:
                nonlocal streamed
                streamed = True
                if on_text is not None:
                    on_text(text)

            try:
                return self._stream_once(params, forward)
            except LLMRetryableError as exc:
                attempt += 1
                wait = self._wait_seconds(exc, attempt)
                out_of_time = deadline is not None and time.monotonic() + wait > deadline
                if attempt > self.settings.max_retries or out_of_time:
                    raise
                _log.warning("claude call failed; retrying", status=exc.status, attempt=attempt, wait_seconds=wait)
                if streamed and on_restart is not None:
                    on_restart()
                self._sleep(wait)

    # ------------------------------------------------------------------ internals
    def _params(
        self,
        system: str,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        allow_tools: bool,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.settings.model,
            "max_tokens": self.settings.max_tokens,
            # The system prompt and the tool list repeat on every turn: cache them.
            "system": [{"type": "text", "text": system, "cache_control": CACHE_CONTROL}],
            "messages": list(messages),
        }
        if tools:
            cached_tools = [dict(t) for t in tools]
            cached_tools[-1] = {**cached_tools[-1], "cache_control": CACHE_CONTROL}
            params["tools"] = cached_tools
            if not allow_tools:
                params["tool_choice"] = {"type": "none"}
        if self.settings.temperature is not None:
            # anthropic 2.x dropped the ``temperature`` argument (Sonnet 5+ reject non-default values); older
            # models still take it, so it goes in the body for those who configure it.
            params["extra_body"] = {"temperature": self.settings.temperature}
        return params

    def _stream_once(self, params: dict[str, Any], on_text: TextCallback) -> TurnResult:
        try:
            with self._client.messages.stream(**params) as stream:
                for event in stream:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        on_text(event.delta.text)
                message = stream.get_final_message()
        except anthropic.APIStatusError as exc:
            raise _signalled(_convert_status_error(exc)) from exc
        except anthropic.APIConnectionError as exc:
            raise _signalled(LLMRetryableError(f"could not reach the Claude API: {type(exc).__name__}")) from exc
        except anthropic.AnthropicError as exc:
            raise _signalled(LLMRetryableError(f"Claude API error: {type(exc).__name__}")) from exc
        usage = Usage(
            input_tokens=message.usage.input_tokens or 0,
            output_tokens=message.usage.output_tokens or 0,
            cache_creation_tokens=message.usage.cache_creation_input_tokens or 0,
            cache_read_tokens=message.usage.cache_read_input_tokens or 0,
            calls=1,
        )
        content = [block.model_dump(mode="json", exclude_none=True) for block in message.content]
        content = [_as_param(block) for block in content]
        text = "".join(block.text for block in message.content if block.type == "text")
        tool_uses = [
            ToolUse(id=block.id, name=block.name, input=dict(block.input or {}))
            for block in message.content
            if block.type == "tool_use"
        ]
        observers.emit(
            "llm_usage",
            model=self.settings.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_creation_tokens,
        )
        return TurnResult(content=content, text=text, tool_uses=tool_uses, stop_reason=message.stop_reason, usage=usage)

    def _wait_seconds(self, exc: LLMRetryableError, attempt: int) -> float:
        if exc.retry_after is not None and exc.retry_after > 0:
            return exc.retry_after
        return min(self.settings.retry_base_seconds * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS)


_PARAM_KEYS = {
    "text": ("type", "text"),
    "tool_use": ("type", "id", "name", "input"),
    "thinking": ("type", "thinking", "signature"),
    "redacted_thinking": ("type", "data"),
}


def _as_param(block: dict[str, Any]) -> dict[str, Any]:
    """A response content block reduced to what the API accepts back in an assistant message."""
    keys = _PARAM_KEYS.get(block.get("type", ""))
    if keys is None:
        return block
    return {k: block[k] for k in keys if k in block}


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    headers = exc.response.headers if exc.response is not None else {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


def _signalled(error: LLMError) -> LLMError:
    """Report an error's class to the metrics (``llm_errors_total``) on its way out of the seam."""
    observers.emit("llm_error", error_class=type(error).__name__)
    return error


def _convert_status_error(exc: anthropic.APIStatusError) -> LLMError:
    """Classify an API error: by ``error.type`` first (an SSE ``error`` arrives on a 200 response)."""
    status = exc.status_code
    error_type = getattr(exc, "type", None)
    error_code = getattr(exc, "error_code", None) or ""
    summary = f"Claude API {status} {error_type or ''} {error_code}".strip()
    message = getattr(exc, "api_message", None)
    detail = f"{summary}: {message}" if message else summary
    if "spend_limit" in error_code or error_type == "billing_error" or status == 402:
        return LLMSpendLimitError(detail)
    if error_type in ("overloaded_error", "api_error", "rate_limit_error", "timeout_error"):
        return LLMRetryableError(detail, retry_after=_retry_after(exc), status=status)
    if status in (408, 409, 429) or status >= 500:
        return LLMRetryableError(detail, retry_after=_retry_after(exc), status=status)
    return LLMPermanentError(detail)
