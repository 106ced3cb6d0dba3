"""The Slack Web API seam: the only module that calls ``slack_sdk.WebClient`` and sees its exceptions.

Retries are chosen per kind of call (reliability.md):

- **reads** (history, lists, info, ``auth.test``): retry connection errors, 5xx and 429 (honouring
  ``Retry-After``), a bounded number of times.
- **writes** (``chat.postMessage``, ``chat.update``, ``chat.delete``, streams, reactions): retry 429 only,
  because Slack stored nothing when it answered 429. A connection error or a 5xx on a write is ambiguous
  (Slack may have stored it), so it surfaces as :class:`SlackConnectionError`/:class:`SlackServerError`
  and the caller decides using its reply ledger. Posts to one channel are paced (about one per second).

Every Slack failure becomes a :class:`~slack.errors.SlackError` subclass carrying Slack's error code.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.error import HTTPError, URLError

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from slack.errors import (
    AUTH_ERROR_CODES,
    SlackApiCallError,
    SlackAuthError,
    SlackConnectionError,
    SlackError,
    SlackRateLimitedError,
    SlackServerError,
)

DEFAULT_API_URL = "https://slack.com/api/"
DEFAULT_TIMEOUT_SECONDS = 30
READ_RETRIES = 3
RATE_LIMIT_RETRIES = 5
MAX_RETRY_AFTER_SECONDS = 120.0
POST_INTERVAL_SECONDS = 1.0
PAGE_LIMIT = 200

_log = structlog.get_logger("athenaeum.slack.client")

Sleep = Callable[[float], None]
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    URLError,
    ConnectionError,
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
    socket.timeout,
    TimeoutError,
)


# ----------------------------------------------------------------------------------------- retry handlers
class RateLimitRetry(RetryHandler):
    """Retry HTTP 429 after ``Retry-After`` seconds (capped), through an injectable ``sleep``."""

    def __init__(self, max_retry_count: int, sleep: Sleep, max_wait_seconds: float = MAX_RETRY_AFTER_SECONDS):
        super().__init__(max_retry_count=max_retry_count)
        self._sleep = sleep
        self._max_wait = max_wait_seconds

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return (
            response is not None
            and response.status_code == 429
            and (retry_after_seconds(response.headers) <= self._max_wait)
        )

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        wait = retry_after_seconds(response.headers if response is not None else {})
        _log.info("slack rate limited; waiting", url=request.url, retry_after=wait)
        state.next_attempt_requested = True
        self._sleep(wait)
        state.increment_current_attempt()


class ServerErrorRetry(RetryHandler):
    """Retry 5xx answers with exponential backoff (reads only)."""

    def __init__(self, max_retry_count: int, sleep: Sleep, base_delay: float = 0.5):
        super().__init__(max_retry_count=max_retry_count)
        self._sleep = sleep
        self._base = base_delay

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code < 600

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        self._sleep(backoff_seconds(state.current_attempt, self._base))
        state.increment_current_attempt()


class ConnectionErrorRetry(ServerErrorRetry):
    """Retry requests that got no answer (reads only: a write may have been stored)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return error is not None and not isinstance(error, HTTPError) and isinstance(error, _CONNECTION_ERRORS)


def retry_after_seconds(headers: Mapping[str, Any]) -> float:
    """The ``Retry-After`` of a response in seconds (1 when absent or unreadable)."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return 1.0
    return 1.0


def backoff_seconds(attempt: int, base: float) -> float:
    """``base · 2^attempt`` with ±10 % jitter (attempt 0 is the first retry)."""
    return base * (2**attempt) * random.uniform(0.9, 1.1)


# ----------------------------------------------------------------------------------------- the client
@dataclass(frozen=True)
class BotIdentity:
    """Who we are in the workspace, from ``auth.test``."""

    team_id: str
    user_id: str
    bot_id: str | None
    url: str | None = None
    team: str | None = None


class SlackClient:
    """The Slack Web API, as Athenaeum uses it.

    Args:
        token: the bot token (``xoxb-…``).
        base_url: the Web API URL (``SLACK_API_URL``); GovSlack, proxies and test servers change it.
        timeout_seconds: per request.
        read_retries: retries of a read after a connection error or 5xx.
        rate_limit_retries: retries after a 429 (reads and writes).
        max_retry_after_seconds: a 429 asking for a longer wait is raised as :class:`SlackRateLimitedError`.
        post_interval_seconds: minimum spacing of posts to one channel (0 disables pacing).
        sleep: how to wait (tests record the waits instead of sleeping).
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_API_URL,
        *,
        timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
        read_retries: int = READ_RETRIES,
        rate_limit_retries: int = RATE_LIMIT_RETRIES,
        max_retry_after_seconds: float = MAX_RETRY_AFTER_SECONDS,
        post_interval_seconds: float = POST_INTERVAL_SECONDS,
        sleep: Sleep = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        rate_limit = RateLimitRetry(rate_limit_retries, sleep, max_retry_after_seconds)
        self.reads = WebClient(
            token=token,
            base_url=base_url,
            timeout=timeout_seconds,
            retry_handlers=[
                rate_limit,
                ServerErrorRetry(read_retries, sleep),
                ConnectionErrorRetry(read_retries, sleep),
            ],
        )
        self.writes = WebClient(token=token, base_url=base_url, timeout=timeout_seconds, retry_handlers=[rate_limit])
        self._sleep = sleep
        self._clock = clock
        self._post_interval = post_interval_seconds
        self._last_post: dict[str, float] = {}
        self._pace_lock = threading.Lock()

    # ------------------------------------------------------------------ generic calls
    def read(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a read method (retried on connection errors, 5xx and 429); returns the response body."""
        return self._call(self.reads, method, params)

    def write(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a write method with a JSON body (retried on 429 only); returns the response body."""
        return self._call(self.writes, method, params, as_json=True)

    def paginate(
        self, method: str, key: str, *, limit: int = PAGE_LIMIT, cursor: str | None = None, **params: Any
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Pages of a cursor-paginated read: yields ``(items, next_cursor)``; ``next_cursor`` is None at the end.

        Args:
            method: e.g. ``conversations.history``.
            key: the list in each response (``messages``, ``channels``, ``members``).
            limit: page size (``users.list``/``conversations.list`` allow 1000, ``conversations.history`` 999).
            cursor: resume from this cursor.
        """
        while True:
            body = self.read(method, limit=limit, **({"cursor": cursor} if cursor else {}), **params)
            cursor = (body.get("response_metadata") or {}).get("next_cursor") or None
            yield list(body.get(key) or []), cursor
            if not cursor:
                return

    # ------------------------------------------------------------------ reads
    def auth_test(self) -> BotIdentity:
        """Who the bot token belongs to."""
        body = self.read("auth.test")
        return BotIdentity(
            team_id=body["team_id"],
            user_id=body["user_id"],
            bot_id=body.get("bot_id"),
            url=body.get("url"),
            team=body.get("team"),
        )

    def conversation_info(self, channel: str) -> dict[str, Any]:
        """``conversations.info`` of one channel."""
        return dict(self.read("conversations.info", channel=channel)["channel"])

    def user_info(self, user: str) -> dict[str, Any]:
        """``users.info`` of one user."""
        return dict(self.read("users.info", user=user)["user"])

    # ------------------------------------------------------------------ writes
    def post_message(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """``chat.postMessage`` (never retried after a connection error; paced per channel).

        Link and media unfurling are off unless ``extra`` turns them on. Returns the response
        (``ts``, ``channel``, ``message``).

        Raises:
            SlackConnectionError: no answer; Slack may or may not have stored the message.
        """
        params: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False}
        if thread_ts:
            params["thread_ts"] = thread_ts
        if metadata is not None:
            params["metadata"] = dict(metadata)
        params.update(extra)
        self._pace(channel)
        return self._call(self.writes, "chat.postMessage", params, as_json=True)

    def update_message(self, channel: str, ts: str, text: str, **extra: Any) -> dict[str, Any]:
        """``chat.update`` (idempotent when re-applied, but still not auto-retried on connection errors)."""
        return self._call(
            self.writes, "chat.update", {"channel": channel, "ts": ts, "text": text, **extra}, as_json=True
        )

    def delete_message(self, channel: str, ts: str) -> dict[str, Any]:
        """``chat.delete``."""
        return self.write("chat.delete", channel=channel, ts=ts)

    def add_reaction(self, channel: str, ts: str, name: str) -> bool:
        """``reactions.add``; returns False when the reaction was already there."""
        try:
            self.write("reactions.add", channel=channel, timestamp=ts, name=name)
        except SlackApiCallError as exc:
            if exc.code == "already_reacted":
                return False
            raise
        return True

    def set_assistant_status(self, channel: str, thread_ts: str, status: str) -> None:
        """``assistant.threads.setStatus`` ("is thinking…"); Slack shows at most ~50 characters."""
        self.write("assistant.threads.setStatus", channel_id=channel, thread_ts=thread_ts, status=status[:50])

    # ------------------------------------------------------------------ internals
    def _pace(self, channel: str) -> None:
        """Keep posts to one channel ``post_interval_seconds`` apart (Slack allows ~1/s per channel)."""
        if self._post_interval <= 0:
            return
        with self._pace_lock:
            now = self._clock()
            due = self._last_post.get(channel, float("-inf")) + self._post_interval
            wait = due - now
            self._last_post[channel] = max(now, due)
        if wait > 0:
            self._sleep(wait)

    def _call(
        self, client: WebClient, method: str, params: Mapping[str, Any], *, as_json: bool = False
    ) -> dict[str, Any]:
        try:
            if as_json:
                response = client.api_call(method, json=dict(params))
            else:
                response = client.api_call(method, params=_form(params))
        except SlackApiError as exc:
            raise from_api_error(method, exc) from exc
        except SlackClientError as exc:
            raise SlackError(f"{method}: {type(exc).__name__}: {exc}", code="client_error", method=method) from exc
        except _CONNECTION_ERRORS as exc:
            raise SlackConnectionError(
                f"{method}: no answer from Slack ({type(exc).__name__}); the outcome is unknown",
                code="connection_error",
                method=method,
            ) from exc
        return dict(response.data) if isinstance(response.data, dict) else {}


def _form(params: Mapping[str, Any]) -> dict[str, Any]:
    """Form-encode values the way Slack expects (booleans as ``true``/``false``; None dropped)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def from_api_error(method: str, exc: SlackApiError) -> SlackError:
    response = exc.response
    status = getattr(response, "status_code", 200)
    try:
        code = str(response.get("error") or "unknown")
    except Exception:  # a non-JSON body
        code = "unknown"
    message = f"{method} failed: {code} (HTTP {status})"
    if status == 429 or code == "ratelimited":
        headers = getattr(response, "headers", {}) or {}
        return SlackRateLimitedError(message, retry_after=retry_after_seconds(headers), method=method)
    if status >= 500:
        return SlackServerError(message, code=code if code != "unknown" else "server_error", method=method)
    if code in AUTH_ERROR_CODES:
        return SlackAuthError(message, code=code, method=method)
    return SlackApiCallError(message, code=code, method=method)
