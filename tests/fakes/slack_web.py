"""A minimal local fake of the Slack Web API methods replies use, for the real ``slack_sdk.WebClient``.

Methods: ``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.startStream``, ``chat.appendStream``,
``chat.stopStream``, ``conversations.replies`` (``include_all_metadata``), ``reactions.add``,
``assistant.threads.setStatus``. Knobs (``fault(method, kind, ...)``): ``ratelimit`` (HTTP 429 with
``Retry-After``), ``reset_after_store`` (store the message, then drop the connection without answering),
``error`` (``ok: false`` with an error code). Calls are recorded in ``calls``.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    thread_ts: str | None = None
    user: str = BOT_USER_ID
    bot_id: str | None = BOT_ID
    metadata: dict[str, Any] | None = None
    streaming: bool = False
    reactions: list[str] = field(default_factory=list)


class FakeSlackWeb:
    """The fake server; ``api_url`` is what ``WebClient(base_url=...)`` takes."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.reactions: list[tuple[str, str, str]] = []
        self.statuses: list[str] = []
        self._faults: dict[str, deque[tuple[str, dict[str, Any]]]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def api_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/"

    def __enter__(self) -> FakeSlackWeb:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fault(self, method: str, kind: str, **options: Any) -> None:
        with self._lock:
            self._faults[method].append((kind, options))

    def add_user_message(self, channel: str, text: str, user: str = "UHUMAN", thread_ts: str | None = None) -> str:
        with self._lock:
            ts = self._next_ts()
            self.messages.append(Message(channel, ts, text, thread_ts, user=user, bot_id=None))
            return ts

    def bot_messages(self, channel: str | None = None, thread_ts: str | None = None) -> list[Message]:
        with self._lock:
            return [
                m
                for m in self.messages
                if m.bot_id
                and (channel is None or m.channel == channel)
                and (thread_ts is None or m.thread_ts == thread_ts)
            ]

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for name, _ in self.calls if name == method)

    # ------------------------------------------------------------------ serving
    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _find(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    def _dispatch(self, method: str, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str], bool]:
        """Returns (status, body, headers, drop_connection)."""
        with self._lock:
            self.calls.append((method, args))
            fault = self._faults[method].popleft() if self._faults[method] else None
        if fault and fault[0] == "ratelimit":
            headers = {"Retry-After": str(fault[1].get("retry_after", 1))}
            return 429, {"ok": False, "error": "ratelimited"}, headers, False
        if fault and fault[0] == "error":
            return 200, {"ok": False, "error": fault[1].get("code", "internal_error")}, {}, False
        drop = bool(fault and fault[0] == "reset_after_store")
        with self._lock:
            body = self._apply(method, args)
        return 200, body, {}, drop

    def _apply(self, method: str, a: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "team_id": "T1"}
        if method in ("chat.postMessage", "chat.startStream"):
            ts = self._next_ts()
            text = a.get("text") or a.get("markdown_text") or ""
            metadata = a.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            self.messages.append(
                Message(
                    a["channel"],
                    ts,
                    text,
                    a.get("thread_ts"),
                    metadata=metadata,
                    streaming=method == "chat.startStream",
                )
            )
            return {"ok": True, "channel": a["channel"], "ts": ts}
        if method in ("chat.update", "chat.appendStream", "chat.stopStream"):
            msg = self._find(a["channel"], a["ts"])
            if msg is None:
                return {"ok": False, "error": "message_not_found"}
            if method != "chat.update" and not msg.streaming:
                return {"ok": False, "error": "message_not_in_streaming_state"}
            if method == "chat.update":
                msg.text = a.get("text") or a.get("markdown_text") or msg.text
            elif method == "chat.appendStream":
                msg.text += a.get("markdown_text") or ""
            else:
                msg.text += a.get("markdown_text") or ""
                msg.streaming = False
            metadata = a.get("metadata")
            if metadata:
                msg.metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
            return {"ok": True, "channel": a["channel"], "ts": a["ts"]}
        if method == "conversations.replies":
            thread = [m for m in self.messages if m.channel == a["channel"] and a["ts"] in (m.ts, m.thread_ts)]
            include = str(a.get("include_all_metadata", "")).lower() in ("1", "true")
            out = []
            for m in thread:
                item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text, "user": m.user}
                if m.thread_ts:
                    item["thread_ts"] = m.thread_ts
                if m.bot_id:
                    item["bot_id"] = m.bot_id
                if include and m.metadata:
                    item["metadata"] = m.metadata
                out.append(item)
            return {"ok": True, "messages": out, "has_more": False}
        if method == "reactions.add":
            self.reactions.append((a["channel"], a["timestamp"], a["name"]))
            return {"ok": True}
        if method == "assistant.threads.setStatus":
            self.statuses.append(a.get("status", ""))
            return {"ok": True}
        return {"ok": False, "error": "unknown_method"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                path, _, query = self.path.partition("?")
                method = path.split("/api/", 1)[-1]
                raw = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                args: dict[str, Any] = dict(parse_qsl(query))
                if "json" in (self.headers.get("content-type") or ""):
                    args.update(json.loads(raw or "{}"))
                else:
                    args.update(dict(parse_qsl(raw)))
                status, body, headers, drop = fake._dispatch(method, args)
                if drop:  # stored, but the caller never hears back
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
