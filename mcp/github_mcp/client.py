"""The GitHub REST API seam: one place for the base URL, the token, rate limits, page caps and errors.

::

    AthenaeumError
    └── GitHubError                  GitHub could not do what was asked (message says what to change)
        ├── GitHubNotFoundError      404: no such repository/issue/file, or the token cannot see it
        ├── GitHubForbiddenError     401/403: bad token or missing scope
        ├── GitHubRateLimitError     rate limit reached and the reset is too far away to wait for
        └── AmbiguousRepositoryError a bare repository name matches several owners
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx

from database.errors import AthenaeumError

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MAX_WAIT_SECONDS = 20.0
MAX_PAGES = 5
PER_PAGE = 50
_LINK_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
_REPO = re.compile(r"^[A-Za-z0-9_.-]{1,100}(/[A-Za-z0-9_.-]{1,100})?$")


class GitHubError(AthenaeumError):
    """GitHub could not do what was asked."""


class GitHubNotFoundError(GitHubError):
    """404: the thing does not exist, or the token cannot see it."""


class GitHubForbiddenError(GitHubError):
    """401/403: the token is missing, wrong, or lacks a scope."""


class GitHubRateLimitError(GitHubError):
    """The rate limit is exhausted until a reset too far away to wait for."""


class AmbiguousRepositoryError(GitHubError):
    """A repository name without an owner matched several repositories."""


class GitHubClient:
    """A small synchronous GitHub REST client.

    Args:
        api_url: ``GITHUB_API_URL`` (GitHub Enterprise: ``https://HOST/api/v3``; tests: a local fake).
        token: ``GITHUB_TOKEN`` (optional; without it the public API's low rate limit applies).
        default_org: ``GITHUB_ORG``: the owner of repository names given without one.
        timeout: seconds per request.
        max_wait: longest rate-limit wait (``Retry-After``/``X-RateLimit-Reset``) before giving up.
        max_pages: page cap for any listing.
        sleep: how to wait (tests pass a recorder).
        clock: the current Unix time (tests pass a fixed one).
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        *,
        default_org: str | None = None,
        timeout: float = 20.0,
        max_wait: float = MAX_WAIT_SECONDS,
        max_pages: int = MAX_PAGES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "athenaeum-github-mcp",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=api_url.rstrip("/") + "/", headers=headers, timeout=timeout)
        self.default_org = default_org
        self._has_token = bool(token)
        self._max_wait = max_wait
        self._max_pages = max_pages
        self._sleep = sleep
        self._clock = clock

    # ------------------------------------------------------------------ requests
    def get(
        self, path: str, params: dict[str, Any] | None = None, *, accept: str | None = None, what: str = "resource"
    ) -> httpx.Response:
        """GET ``path`` and return the 2xx response, waiting out short rate limits.

        Raises:
            GitHubError: (and subclasses) for anything but success, with what to do.
        """
        headers = {"Accept": accept} if accept else None
        for attempt in range(3):
            try:
                response = self._client.get(path.lstrip("/"), params=params, headers=headers)
            except httpx.HTTPError as exc:
                if attempt == 2:
                    raise GitHubError(f"GitHub is unreachable ({type(exc).__name__}); try again later") from exc
                self._sleep(1.0 * (attempt + 1))
                continue
            wait = self._rate_limit_wait(response)
            if wait is not None:
                if wait > self._max_wait or attempt == 2:
                    raise GitHubRateLimitError(self._rate_limit_message(response, wait))
                self._sleep(wait)
                continue
            if response.status_code >= 500 and attempt < 2:
                self._sleep(1.0 * (attempt + 1))
                continue
            return self._check(response, what)
        raise GitHubError("GitHub kept failing; try again later")  # pragma: no cover - loop always returns

    def get_json(self, path: str, params: dict[str, Any] | None = None, *, what: str = "resource") -> Any:
        """GET and decode JSON."""
        return self.get(path, params, what=what).json()

    def paginate(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        limit: int,
        what: str = "resource",
        key: str | None = None,
    ) -> tuple[list[Any], bool]:
        """Up to ``limit`` items across pages (at most ``max_pages``); also whether more were left."""
        params = {**(params or {}), "per_page": min(PER_PAGE, max(limit, 1))}
        items: list[Any] = []
        url: str | None = path
        pages = 0
        while url and pages < self._max_pages and len(items) < limit:
            response = self.get(url, params if pages == 0 else None, what=what)
            body = response.json()
            batch = body.get(key, []) if key else body
            items.extend(batch)
            pages += 1
            match = _LINK_NEXT.search(response.headers.get("link", ""))
            url = match.group(1) if match else None
            if url and url.startswith(str(self._client.base_url)):
                url = url[len(str(self._client.base_url)) :]
        return items[:limit], bool(url) or len(items) > limit

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # ------------------------------------------------------------------ repositories
    def resolve_repo(self, repo: str) -> str:
        """``owner/name`` for ``repo``; a bare name uses ``GITHUB_ORG`` or must match exactly one repository.

        Raises:
            GitHubError: malformed; AmbiguousRepositoryError: several owners (candidates listed);
            GitHubNotFoundError: none found.
        """
        repo = repo.strip().removeprefix("https://github.com/").strip("/")
        if not _REPO.match(repo):
            raise GitHubError(f"repo {repo!r} is not a repository name: use owner/name, e.g. octocat/hello-world")
        if "/" in repo:
            return repo
        if self.default_org:
            return f"{self.default_org}/{repo}"
        found = self.get_json("search/repositories", {"q": f"{repo} in:name", "per_page": 20}, what="repositories")
        exact = [item["full_name"] for item in found.get("items", []) if item.get("name", "").lower() == repo.lower()]
        if len(exact) == 1:
            return str(exact[0])
        if not exact:
            raise GitHubNotFoundError(f"no repository named {repo!r} found: give owner/name (or set GITHUB_ORG)")
        raise AmbiguousRepositoryError(
            f"repository {repo!r} is ambiguous; use one of: {', '.join(exact[:10])} (or set GITHUB_ORG)"
        )

    # ------------------------------------------------------------------ helpers
    def _rate_limit_wait(self, response: httpx.Response) -> float | None:
        if response.status_code not in (403, 429):
            return None
        retry_after = response.headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(float(retry_after), 0.0)
            except ValueError:
                return self._max_wait + 1
        if response.headers.get("x-ratelimit-remaining") == "0":
            try:
                reset = float(response.headers.get("x-ratelimit-reset", "0"))
            except ValueError:
                return self._max_wait + 1
            return max(reset - self._clock(), 0.0) + 1.0
        return 60.0 if response.status_code == 429 else None

    def _rate_limit_message(self, response: httpx.Response, wait: float) -> str:
        reset = response.headers.get("x-ratelimit-reset")
        when = (
            datetime.fromtimestamp(float(reset), UTC).strftime("%H:%M UTC")
            if reset and reset.isdigit()
            else f"in about {int(wait)} s"
        )
        hint = "" if self._has_token else "; set GITHUB_TOKEN for a much higher limit"
        return f"GitHub rate limit reached; it resets at {when}: try again then{hint}"

    def _check(self, response: httpx.Response, what: str) -> httpx.Response:
        status = response.status_code
        if status < 300:
            return response
        message = _error_message(response)
        if status == 404:
            raise GitHubNotFoundError(
                f"{what} not found on GitHub (or the token cannot see it): check the name and number"
                + ("" if self._has_token else "; private repositories need GITHUB_TOKEN")
            )
        if status == 401:
            raise GitHubForbiddenError("GitHub rejected the token (401): check GITHUB_TOKEN")
        if status == 403:
            raise GitHubForbiddenError(f"GitHub refused access to {what} (403: {message}); the token may lack a scope")
        if status == 422:
            raise GitHubError(f"GitHub could not process the request for {what}: {message}; change the arguments")
        raise GitHubError(f"GitHub failed with HTTP {status} for {what}: {message}")


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:200] or response.reason_phrase
    except Exception:
        return response.reason_phrase
