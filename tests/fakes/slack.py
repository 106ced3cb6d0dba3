"""FakeSlack: a local Slack (Web API over HTTP + Socket Mode over WebSocket) for tests and benchmarks.

It speaks Slack's wire format so the real ``slack_sdk`` is what gets exercised::

    with FakeSlack() as fake:
        client = SlackClient(fake.bot_token, base_url=fake.api_url)
        fake.add_channel("C1", "general")
        fake.add_message("C1", text="hello", user="U1")        # history for imports
        client.post_message("C1", "hi", thread_ts=None)
        fake.messages("C1")                                    # what the bot posted (and everything else)
        env_id = fake.send_envelope(fake.event_callback({"type": "message", ...}))  # Socket Mode
        fake.wait_for_acks([env_id])

Web API methods: ``auth.test``, ``apps.connections.open``, ``conversations.history/replies/list/info``,
``users.list/info``, ``chat.postMessage/update/delete``, ``chat.startStream/appendStream/stopStream``,
``reactions.add``, ``assistant.threads.setStatus``. Every call is recorded in :attr:`calls` (``calls_to(m)``).
Posted messages live in the channel's history with their ``metadata``/``blocks``: :meth:`messages`,
:meth:`bot_messages` (one thread with ``thread_ts=``); ``reactions`` are on the message dicts; statuses set
with ``assistant.threads.setStatus`` are in :attr:`statuses`; :meth:`expire_stream` makes a stream answer
``message_not_in_streaming_state``. ``chat.startStream`` in a thread requires ``recipient_user_id`` and
``recipient_team_id``, as Slack does.

Knobs (each applies to the next ``times`` calls of ``method``; ``"*"`` matches any method):

- :meth:`fail` — answer with an HTTP status (429 with ``Retry-After``, 500...) and a Slack error code.
- :meth:`delay` — answer after ``seconds``.
- :meth:`reset_after_store` — perform the call (store the message), then reset the connection without
  answering: the client cannot know the post succeeded.
- :meth:`error` — answer HTTP 200 ``{"ok": false, "error": code}``.

Socket Mode: :meth:`send_envelope`, :meth:`send_raw`, :meth:`disconnect` (``warning``,
``refresh_requested``...), :meth:`drop_connections`; :attr:`acks` lists acked envelope ids in order;
:meth:`wait_for_acks`, :meth:`wait_for_connections` wait on a condition with a timeout.
"""

from __future__ import annotations

import bisect
import itertools
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.slack_socket import FakeSocketServer, WsConnection

TEAM_ID = "T0FAKE"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
APP_ID = "AFAKE"


@dataclass
class Call:
    """One Web API request as received."""

    method: str
    params: dict[str, Any]
    token: str | None
    at: float


@dataclass
class _Rule:
    method: str
    times: int
    kind: str  # fail | delay | reset | error
    status: int = 200
    error: str = ""
    retry_after: float | None = None
    seconds: float = 0.0


@dataclass
class FakeSlack:
    """A Slack workspace on 127.0.0.1. Use as a context manager (starts and stops both servers)."""

    bot_token: str = "xoxb-fake-bot-token"
    app_token: str = "xapp-fake-app-token"
    team_id: str = TEAM_ID
    bot_user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID
    send_hello: bool = True
    calls: list[Call] = field(default_factory=list)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._history: dict[str, dict[str, dict[str, Any]]] = {}  # channel -> ts -> message
        self._rules: list[_Rule] = []
        self._version = 0  # bumped on every history change; keys the sorted-history cache
        self._cache: dict[str, tuple[int, list[dict[str, Any]], list[float]]] = {}
        self._clock = itertools.count(int(time.time()) * 1_000_000)
        self._http: ThreadingHTTPServer | None = None
        self._ws: FakeSocketServer | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeSlack:
        fake = self

        class Handler(_Handler):
            slack = fake

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._ws = FakeSocketServer(on_connect=self._hello)
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._ws is not None:
            self._ws.stop()

    @property
    def api_url(self) -> str:
        """The ``SLACK_API_URL`` / ``WebClient(base_url=…)`` of this fake."""
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}/api/"

    # ------------------------------------------------------------------ workspace content
    def new_ts(self) -> str:
        """A fresh, strictly increasing message timestamp near now."""
        micros = next(self._clock)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def add_channel(self, channel_id: str, name: str, **fields: Any) -> dict[str, Any]:
        """Add (or replace) a channel; ``fields`` override defaults (``is_private``, ``topic``...)."""
        channel = {
            "id": channel_id,
            "name": name,
            "is_channel": True,
            "is_private": False,
            "is_archived": False,
            "is_ext_shared": False,
            "is_im": False,
            "is_mpim": False,
            "created": 1_600_000_000,
            "topic": {"value": ""},
            "purpose": {"value": ""},
            "num_members": 3,
            "context_team_id": self.team_id,
        }
        channel.update(fields)
        with self._lock:
            self.channels[channel_id] = channel
            self._history.setdefault(channel_id, {})
        return channel

    def add_user(self, user_id: str, name: str, **fields: Any) -> dict[str, Any]:
        """Add (or replace) a user; ``fields`` override defaults (``is_bot``, ``deleted``, ``profile``...)."""
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": name.title(),
            "deleted": False,
            "is_bot": False,
            "tz": "Europe/Paris",
            "profile": {"real_name": name.title(), "display_name": name, "title": ""},
        }
        user.update(fields)
        with self._lock:
            self.users[user_id] = user
        return user

    def add_message(
        self,
        channel: str,
        text: str = "",
        user: str | None = "U1",
        ts: str | None = None,
        thread_ts: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Put a message in a channel's history (a reply when ``thread_ts`` is given)."""
        with self._lock:
            ts = ts or self.new_ts()
            message: dict[str, Any] = {"type": "message", "ts": ts, "text": text, "team": self.team_id}
            if user:
                message["user"] = user
            if thread_ts:
                message["thread_ts"] = thread_ts
            message.update(fields)
            self._history.setdefault(channel, {})[ts] = message
            self._version += 1
            if thread_ts and thread_ts != ts:
                root = self._history[channel].get(thread_ts)
                if root is not None:
                    root["thread_ts"] = thread_ts
                    root["reply_count"] = root.get("reply_count", 0) + 1
                    root["latest_reply"] = max(root.get("latest_reply", ts), ts)
            return message

    def messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Every message in ``channel`` (or in one thread, root included), oldest first (copies)."""
        with self._lock:
            msgs = sorted(self._history.get(channel, {}).values(), key=lambda m: float(m["ts"]))
            if thread_ts is not None:
                msgs = [m for m in msgs if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]
            return [json.loads(json.dumps(m)) for m in msgs]

    def bot_messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Messages the bot posted in ``channel`` (or one thread), oldest first."""
        return [m for m in self.messages(channel, thread_ts) if m.get("bot_id") == self.bot_id]

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls of one Web API method."""
        with self._lock:
            return [c for c in self.calls if c.method == method]

    # ------------------------------------------------------------------ knobs
    def fail(
        self, method: str, status: int = 429, *, times: int = 1, retry_after: float | None = 1, error: str | None = None
    ) -> None:
        """Answer the next ``times`` calls with ``status`` (429 carries ``Retry-After``)."""
        code = error or ("ratelimited" if status == 429 else "internal_error")
        with self._lock:
            self._rules.append(
                _Rule(
                    method, times, "fail", status=status, error=code, retry_after=retry_after if status == 429 else None
                )
            )

    def error(self, method: str, code: str, *, times: int = 1) -> None:
        """Answer the next ``times`` calls with HTTP 200 ``{"ok": false, "error": code}``."""
        with self._lock:
            self._rules.append(_Rule(method, times, "error", error=code))

    def delay(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Answer the next ``times`` calls after ``seconds``."""
        with self._lock:
            self._rules.append(_Rule(method, times, "delay", seconds=seconds))

    def reset_after_store(self, method: str = "chat.postMessage", *, times: int = 1) -> None:
        """Perform the next ``times`` calls, then reset the connection instead of answering."""
        with self._lock:
            self._rules.append(_Rule(method, times, "reset"))

    def _take_rule(self, method: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.times > 0 and rule.method in (method, "*"):
                    rule.times -= 1
                    return rule
        return None

    # ------------------------------------------------------------------ Socket Mode
    @property
    def socket(self) -> FakeSocketServer:
        assert self._ws is not None
        return self._ws

    @property
    def acks(self) -> list[str]:
        """Envelope ids acked by the client, in order (duplicates kept)."""
        with self.socket.cond:
            return list(self.socket.acks)

    def event_callback(
        self, event: dict[str, Any], *, event_id: str | None = None, team_id: str | None = None
    ) -> dict[str, Any]:
        """An Events API ``event_callback`` payload around ``event`` (as Slack sends it)."""
        return {
            "token": "verification-token",
            "team_id": team_id or self.team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team_id or self.team_id, "user_id": self.bot_user_id, "is_bot": True}],
            "is_ext_shared_channel": False,
        }

    def send_envelope(
        self,
        payload: dict[str, Any],
        *,
        envelope_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        envelope_type: str = "events_api",
    ) -> str:
        """Push an envelope on the newest connection; returns its ``envelope_id``."""
        envelope_id = envelope_id or str(uuid.uuid4())
        self.send_raw(
            json.dumps(
                {
                    "envelope_id": envelope_id,
                    "payload": payload,
                    "type": envelope_type,
                    "accepts_response_payload": False,
                    "retry_attempt": retry_attempt,
                    "retry_reason": retry_reason,
                }
            )
        )
        return envelope_id

    def send_raw(self, text: str) -> None:
        """Push any text frame (malformed envelopes, for instance)."""
        conn = self.socket.current()
        if conn is None:
            raise RuntimeError("no Socket Mode client is connected")
        conn.send_text(text)

    def send_raw_bytes(self, data: bytes) -> None:
        """Push a text frame made of these exact bytes (not UTF-8, for instance)."""
        conn = self.socket.current()
        if conn is None:
            raise RuntimeError("no Socket Mode client is connected")
        conn.send_text_bytes(data)

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` message on the newest connection."""
        conn = self.socket.current()
        if conn is None:
            raise RuntimeError("no Socket Mode client is connected")
        conn.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}})

    def drop_connections(self) -> None:
        """Reset every open WebSocket connection (a network failure)."""
        for conn in list(self.socket.connections):
            if conn.open:
                conn.drop()

    def connection_count(self) -> int:
        """How many WebSocket connections were ever accepted."""
        with self.socket.cond:
            return len(self.socket.connections)

    def open_connections(self) -> int:
        with self.socket.cond:
            return sum(1 for c in self.socket.connections if c.open)

    def wait_for_connections(self, total: int, timeout: float = 10.0) -> bool:
        """Wait until ``total`` connections were accepted and one is open."""
        return self.socket.wait_for(
            lambda: len(self.socket.connections) >= total and any(c.open for c in self.socket.connections),
            timeout,
        )

    def wait_for_acks(self, envelope_ids: list[str], timeout: float = 10.0) -> bool:
        """Wait until every id in ``envelope_ids`` was acked."""
        missing = set(envelope_ids)
        seen = 0

        def done() -> bool:  # looks only at acks that arrived since the last check: a burst stays linear
            nonlocal seen
            acks = self.socket.acks
            missing.difference_update(acks[seen:])
            seen = len(acks)
            return not missing

        return self.socket.wait_for(done, timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds, re-checking on every socket event and every 50 ms."""
        return self.socket.wait_for(predicate, timeout)

    def _hello(self, conn: WsConnection) -> None:
        if self.send_hello:
            conn.send_json(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "fake-slack", "build_number": 1, "approximate_connection_time": 18060},
                    "connection_info": {"app_id": APP_ID},
                }
            )

    # ------------------------------------------------------------------ Web API
    def handle(self, method: str, params: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any]]:
        """Answer one Web API call (called by the HTTP handler, after the knobs)."""
        if method == "apps.connections.open":
            if token != self.app_token:
                return 200, {"ok": False, "error": "invalid_auth"}
            return 200, {"ok": True, "url": self.socket.url + f"?ticket={uuid.uuid4().hex}"}
        if token != self.bot_token:
            return 200, {"ok": False, "error": "invalid_auth" if token else "not_authed"}
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}
        with self._lock:
            return 200, handler(params)

    def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "athenaeum",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
        }

    def _page(self, items: list[Any], p: dict[str, Any], key: str, default_limit: int = 100) -> dict[str, Any]:
        start = int(p.get("cursor") or 0)
        limit = max(1, min(int(p.get("limit") or default_limit), 1000))
        page = items[start : start + limit]
        nxt = str(start + limit) if start + limit < len(items) else ""
        return {"ok": True, key: page, "has_more": bool(nxt), "response_metadata": {"next_cursor": nxt}}

    def _in_range(self, ts: str, p: dict[str, Any]) -> bool:
        inclusive = str(p.get("inclusive", "false")).lower() in ("1", "true")
        value = float(ts)
        if p.get("oldest"):
            oldest = float(p["oldest"])
            if value < oldest or (value == oldest and not inclusive):
                return False
        if p.get("latest"):
            latest = float(p["latest"])
            if value > latest or (value == latest and not inclusive):
                return False
        return True

    def _top_level(self, channel: str) -> tuple[list[dict[str, Any]], list[float]]:
        """Top-level messages (and broadcasts) of a channel, newest first, with their negated ts for bisect."""
        cached = self._cache.get(channel)
        if cached is None or cached[0] != self._version:
            msgs = [
                m
                for m in self._history[channel].values()
                if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
            ]
            msgs.sort(key=lambda m: float(m["ts"]), reverse=True)
            cached = (self._version, msgs, [-float(m["ts"]) for m in msgs])
            self._cache[channel] = cached
        return cached[1], cached[2]

    def _m_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = p.get("channel")
        if channel not in self._history:
            return {"ok": False, "error": "channel_not_found"}
        msgs, keys = self._top_level(channel)
        inclusive = str(p.get("inclusive", "false")).lower() in ("1", "true")
        lo, hi = 0, len(msgs)
        if p.get("latest"):
            cut = -float(p["latest"])
            lo = bisect.bisect_left(keys, cut) if inclusive else bisect.bisect_right(keys, cut)
        if p.get("oldest"):
            cut = -float(p["oldest"])
            hi = bisect.bisect_right(keys, cut) if inclusive else bisect.bisect_left(keys, cut)
        return self._page(msgs[lo:hi], p, "messages")

    def _threads(self, channel: str) -> dict[str, list[dict[str, Any]]]:
        key = "threads:" + channel
        cached = self._cache.get(key)
        if cached is None or cached[0] != self._version:
            threads: dict[str, list[dict[str, Any]]] = {}
            for m in self._history[channel].values():
                if m.get("thread_ts"):
                    threads.setdefault(m["thread_ts"], []).append(m)
            for msgs in threads.values():
                msgs.sort(key=lambda m: float(m["ts"]))
            cached = (self._version, threads, [])  # type: ignore[assignment]
            self._cache[key] = cached  # type: ignore[assignment]
        return cached[1]  # type: ignore[return-value]

    def _m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        channel, ts = p.get("channel"), p.get("ts")
        if channel not in self._history or ts not in self._history[channel]:
            return {"ok": False, "error": "thread_not_found"}
        msgs = self._threads(channel).get(ts) or [self._history[channel][ts]]
        msgs = [m for m in msgs if m["ts"] == ts or self._in_range(m["ts"], p)]
        return self._page(msgs, p, "messages")

    def _m_conversations_list(self, p: dict[str, Any]) -> dict[str, Any]:
        types = set(str(p.get("types") or "public_channel").split(","))

        def kind(c: dict[str, Any]) -> str:
            if c.get("is_im"):
                return "im"
            if c.get("is_mpim"):
                return "mpim"
            return "private_channel" if c.get("is_private") else "public_channel"

        chans = [c for c in self.channels.values() if kind(c) in types]
        if str(p.get("exclude_archived", "false")).lower() in ("1", "true"):
            chans = [c for c in chans if not c.get("is_archived")]
        return self._page(sorted(chans, key=lambda c: c["id"]), p, "channels")

    def _m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(p.get("channel", ""))
        return {"ok": True, "channel": channel} if channel else {"ok": False, "error": "channel_not_found"}

    def _m_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._page(sorted(self.users.values(), key=lambda u: u["id"]), p, "members")

    def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(p.get("user", ""))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _bot_message(self, p: dict[str, Any], text: str) -> dict[str, Any]:
        channel = p.get("channel")
        if not channel:
            raise _SlackErr("channel_not_found")
        fields: dict[str, Any] = {"bot_id": self.bot_id, "app_id": APP_ID}
        metadata = p.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if metadata:
            fields["metadata"] = metadata
        if p.get("blocks"):
            fields["blocks"] = json.loads(p["blocks"]) if isinstance(p["blocks"], str) else p["blocks"]
        return self.add_message(channel, text=text, user=self.bot_user_id, thread_ts=p.get("thread_ts"), **fields)

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        text = p.get("text") or p.get("markdown_text") or ""
        if not text and not p.get("blocks"):
            return {"ok": False, "error": "no_text"}
        try:
            msg = self._bot_message(p, text)
        except _SlackErr as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "channel": p["channel"], "ts": msg["ts"], "message": msg}

    def _find(self, p: dict[str, Any]) -> dict[str, Any] | None:
        return self._history.get(p.get("channel", ""), {}).get(p.get("ts") or p.get("timestamp") or "")

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._find(p)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg["text"] = p.get("text") or p.get("markdown_text") or msg["text"]
        msg["edited"] = {"user": self.bot_user_id, "ts": self.new_ts()}
        return {"ok": True, "channel": p["channel"], "ts": msg["ts"], "text": msg["text"]}

    def _m_chat_delete(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._find(p)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        del self._history[p["channel"]][msg["ts"]]
        self._version += 1
        return {"ok": True, "channel": p["channel"], "ts": msg["ts"]}

    def _m_chat_startStream(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("thread_ts") and not (p.get("recipient_user_id") and p.get("recipient_team_id")):
            return {"ok": False, "error": "missing_recipient_user_id"}
        msg = self._bot_message(p, p.get("markdown_text") or "")
        msg["streaming"] = True
        return {"ok": True, "channel": p["channel"], "ts": msg["ts"]}

    def _m_chat_appendStream(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._find(p)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if not msg.get("streaming"):
            return {"ok": False, "error": "message_not_in_streaming_state"}
        msg["text"] += p.get("markdown_text") or ""
        return {"ok": True, "channel": p["channel"], "ts": msg["ts"]}

    def _m_chat_stopStream(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._find(p)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if not msg.get("streaming"):
            return {"ok": False, "error": "message_not_in_streaming_state"}
        msg["text"] += p.get("markdown_text") or ""
        msg["streaming"] = False
        return {"ok": True, "channel": p["channel"], "ts": msg["ts"], "message": msg}

    def expire_stream(self, channel: str, ts: str) -> None:
        """Make a stream idle-expired: further appends fail with ``message_not_in_streaming_state``."""
        with self._lock:
            self._history[channel][ts]["streaming"] = False

    def _m_reactions_add(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self._find(p)
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        reactions = msg.setdefault("reactions", [])
        for r in reactions:
            if r["name"] == p.get("name"):
                if self.bot_user_id in r["users"]:
                    return {"ok": False, "error": "already_reacted"}
                r["users"].append(self.bot_user_id)
                r["count"] += 1
                return {"ok": True}
        reactions.append({"name": p.get("name"), "users": [self.bot_user_id], "count": 1})
        return {"ok": True}

    def _m_assistant_threads_setStatus(self, p: dict[str, Any]) -> dict[str, Any]:
        self.statuses.append(
            {"channel_id": p.get("channel_id"), "thread_ts": p.get("thread_ts"), "status": p.get("status")}
        )
        return {"ok": True}


class _SlackErr(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    slack: FakeSlack
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        path, _, query = self.path.partition("?")
        method = path.rsplit("/", 1)[-1]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query).items()}
        ctype = self.headers.get("Content-Type", "")
        if raw and ctype.startswith("application/json"):
            params.update(json.loads(raw))
        elif raw:
            params.update({k: v[-1] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()})
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else params.get("token")
        fake = self.slack
        with fake._lock:
            fake.calls.append(Call(method, params, token, time.monotonic()))
        rule = fake._take_rule(method)
        if rule is not None and rule.kind == "delay":
            time.sleep(rule.seconds)
        if rule is not None and rule.kind == "fail":
            headers = {"Retry-After": str(int(rule.retry_after))} if rule.retry_after is not None else {}
            self._send(rule.status, {"ok": False, "error": rule.error}, headers)
            return
        if rule is not None and rule.kind == "error":
            self._send(200, {"ok": False, "error": rule.error})
            return
        status, body = fake.handle(method, params, token)
        if rule is not None and rule.kind == "reset":
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        self._send(status, body)

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
