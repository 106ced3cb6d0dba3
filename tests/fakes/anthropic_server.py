"""A local fake of the Anthropic Messages API (``POST /v1/messages``), JSON and SSE streaming.

It speaks the real wire format so the real ``anthropic`` SDK is what gets tested: the SSE sequence
``message_start, content_block_start, ping, content_block_delta..., content_block_stop, message_delta,
message_stop`` (tool calls stream their input as ``input_json_delta`` pieces), ``error`` events, and
HTTP errors with the API's JSON error body and ``retry-after`` headers.

Tests script it with :meth:`FakeAnthropic.script`: each request takes the next step; with no step left,
``default`` answers (by default a short text). Every request body is recorded in ``requests``.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ids = itertools.count(1)

ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


@dataclass
class Step:
    """One scripted response.

    kinds: ``text`` (answer ``text``), ``tool_use`` (call ``tools``: list of (name, input), after an
    optional ``text``), ``http_error`` (``status``/``error_type``/``error_code``/``headers``),
    ``stream_error`` (stream ``text`` first, then an SSE ``error`` of ``error_type``).
    """

    kind: str = "text"
    text: str = ""
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int | None = None
    error_type: str = "api_error"
    error_code: str | None = None
    message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    chunk_size: int = 8


def text(answer: str, chunk_size: int = 8) -> Step:
    return Step("text", text=answer, chunk_size=chunk_size)


def tool_use(*tools: tuple[str, dict[str, Any]], text: str = "") -> Step:
    return Step("tool_use", text=text, tools=list(tools))


def http_error(
    error_type: str,
    *,
    status: int | None = None,
    error_code: str | None = None,
    message: str = "scripted error",
    headers: dict[str, str] | None = None,
) -> Step:
    return Step(
        "http_error",
        status=status or ERROR_STATUS[error_type],
        error_type=error_type,
        error_code=error_code,
        message=message,
        headers=headers or {},
    )


def stall(partial: str) -> Step:
    """Stream ``partial``, then hang (until ``FakeAnthropic.release`` is set): a worker can be killed mid-answer."""
    return Step("stall", text=partial)


def stream_error(partial: str, error_type: str = "overloaded_error") -> Step:
    return Step("stream_error", text=partial, error_type=error_type, message="Overloaded")


class FakeAnthropic:
    """The fake server; use as a context manager. ``base_url`` goes to the SDK / ``ANTHROPIC_BASE_URL``."""

    def __init__(self, default: Callable[[dict[str, Any]], Step] | None = None) -> None:
        self.default = default or (lambda body: text("This is the fake answer."))
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._steps: deque[Step] = deque()
        self._lock = threading.Lock()
        self._seen_systems: set[str] = set()
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-anthropic", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._steps.extend(steps)

    @property
    def pending_steps(self) -> int:
        with self._lock:
            return len(self._steps)

    def __enter__(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ serving
    def _next(self, body: dict[str, Any]) -> Step:
        with self._lock:
            self.requests.append(body)
            if self._steps:
                return self._steps.popleft()
        return self.default(body)

    def _usage(self, body: dict[str, Any]) -> dict[str, int]:
        system = json.dumps(body.get("system", "")) + json.dumps(body.get("tools", []))
        static = len(system) // 4
        total = len(json.dumps(body.get("messages", []))) // 4 + 1
        with self._lock:
            cached = system in self._seen_systems
            self._seen_systems.add(system)
        return {
            "input_tokens": total,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0 if cached else static,
            "cache_read_input_tokens": static if cached else 0,
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Small SSE writes must leave at once (as from the real API), not wait for Nagle + delayed ACK.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/messages":
                    self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
                    return
                with fake._lock:
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                step = fake._next(body)
                if step.kind == "http_error":
                    error: dict[str, Any] = {"type": step.error_type, "message": step.message}
                    if step.error_code:
                        error["details"] = {"error_code": step.error_code}
                    self._json(step.status or 500, {"type": "error", "error": error}, step.headers)
                    return
                usage = fake._usage(body)
                if body.get("stream"):
                    self._stream(body, step, usage)
                else:
                    self._json(200, _message(body, step, usage))

            def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", f"req_fake_{next(_ids)}")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], step: Step, usage: dict[str, int]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                try:
                    for name, data in _sse_events(body, step, usage):
                        self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                        self.wfile.flush()
                        if step.kind == "stall" and name == "content_block_delta":
                            fake.release.wait(30)
                            return
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a killed worker)
                self.close_connection = True

        return Handler


def _blocks(step: Step) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if step.text:
        blocks.append({"type": "text", "text": step.text})
    for name, tool_input in step.tools:
        blocks.append({"type": "tool_use", "id": f"toolu_fake_{next(_ids)}", "name": name, "input": tool_input})
    return blocks


def _message(body: dict[str, Any], step: Step, usage: dict[str, int]) -> dict[str, Any]:
    blocks = _blocks(step)
    return {
        "id": f"msg_fake_{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-fake"),
        "content": blocks,
        "stop_reason": "tool_use" if step.tools else "end_turn",
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": max(1, len(json.dumps(blocks)) // 4)},
    }


def _chunks(value: str, size: int) -> Iterator[str]:
    for start in range(0, len(value), max(1, size)):
        yield value[start : start + size]


def _sse_events(body: dict[str, Any], step: Step, usage: dict[str, int]) -> Iterator[tuple[str, dict[str, Any]]]:
    message = _message(body, step, usage)
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            )
            for piece in _chunks(block["text"], step.chunk_size if step.kind != "stall" else len(block["text"])):
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}},
                )
            if step.kind == "stream_error":
                yield "error", {"type": "error", "error": {"type": step.error_type, "message": step.message}}
                return
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
                },
            )
            for piece in _chunks(json.dumps(block["input"]), 5):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}
