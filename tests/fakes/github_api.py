"""A local fake of the GitHub REST API (the subset the GitHub MCP server uses), on 127.0.0.1.

It speaks real HTTP with GitHub's shapes: JSON bodies, ``Link`` pagination, ``Accept``-selected raw files and
diffs, 404/403 errors, and rate limiting (``Retry-After`` or ``X-RateLimit-Remaining: 0`` + reset) that a
test can queue up. Every request is recorded.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class GitHubData:
    """What the fake serves."""

    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, path) -> content
    issues: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    pulls: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    diffs: dict[tuple[str, int], str] = field(default_factory=dict)
    files_changed: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    reviews: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    commits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    releases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)


class FakeGitHub:
    """The fake server's state: data, queued rate-limit responses, recorded requests."""

    def __init__(self, data: GitHubData) -> None:
        self.data = data
        self.requests: list[dict[str, Any]] = []
        self.queued: list[tuple[int, dict[str, str]]] = []  # responses to send before serving normally
        self.url = ""
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            self.requests.append(entry)
            return self.queued.pop(0) if self.queued else None


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            injected = fake.record(
                {
                    "path": parts.path,
                    "query": query,
                    "accept": self.headers.get("Accept", ""),
                    "authorization": self.headers.get("Authorization"),
                }
            )
            if injected is not None:
                status, headers = injected
                self._send(status, {"message": "API rate limit exceeded"}, headers)
                return
            try:
                self._route(parts.path, query)
            except KeyError:
                self._send(404, {"message": "Not Found"})

        def _route(self, path: str, q: dict[str, str]) -> None:
            d = fake.data
            accept = self.headers.get("Accept", "")
            if path == "/search/code":
                terms = q["q"]
                items = []
                for (repo, file_path), content in d.files.items():
                    if f"repo:{repo}" not in terms and "repo:" in terms:
                        continue
                    word = terms.split()[0]
                    lines = [line for line in content.splitlines() if word in line]
                    if lines:
                        items.append(
                            {
                                "path": file_path,
                                "repository": {"full_name": repo},
                                "html_url": f"https://github.com/{repo}/blob/main/{file_path}",
                                "text_matches": [{"fragment": line} for line in lines],
                            }
                        )
                return self._send(200, {"total_count": len(items), "items": items})
            if path == "/search/repositories":
                word = q["q"].split()[0].lower()
                items = [
                    dict(r, full_name=name, name=name.split("/")[1])
                    for name, r in d.repos.items()
                    if word in name.lower()
                ]
                return self._send(200, {"total_count": len(items), "items": items})
            if path == "/search/issues":
                word = q["q"].split()[0].lower()
                items = [i for i in d.issues.values() if word in i["title"].lower()]
                return self._send(200, {"total_count": len(items), "items": items})
            m = re.match(r"^/repos/([^/]+/[^/]+)(/.*)?$", path)
            if not m:
                raise KeyError(path)
            repo, rest = m.group(1), m.group(2) or ""
            if repo in d.forbidden:
                return self._send(403, {"message": "Resource not accessible by integration"})
            if repo not in d.repos:
                raise KeyError(repo)
            if rest.startswith("/contents/"):
                content = d.files[(repo, rest[len("/contents/") :])]
                return self._send_text(200, content, "application/vnd.github.raw")
            if m2 := re.match(r"^/issues/(\d+)$", rest):
                return self._send(200, d.issues[(repo, int(m2.group(1)))])
            if m2 := re.match(r"^/issues/(\d+)/comments$", rest):
                return self._paged(d.comments.get((repo, int(m2.group(1))), []), q, path)
            if m2 := re.match(r"^/pulls/(\d+)$", rest):
                key = (repo, int(m2.group(1)))
                if "diff" in accept:
                    return self._send_text(200, d.diffs[key], "text/plain; charset=utf-8")
                return self._send(200, d.pulls[key])
            if m2 := re.match(r"^/pulls/(\d+)/files$", rest):
                return self._paged(d.files_changed.get((repo, int(m2.group(1))), []), q, path)
            if m2 := re.match(r"^/pulls/(\d+)/reviews$", rest):
                return self._paged(d.reviews.get((repo, int(m2.group(1))), []), q, path)
            if rest == "/commits":
                return self._paged(d.commits.get(repo, []), q, path)
            if rest == "/releases":
                return self._paged(d.releases.get(repo, []), q, path)
            raise KeyError(rest)

        def _paged(self, items: list[Any], q: dict[str, str], path: str) -> None:
            per_page, page = int(q.get("per_page", 30)), int(q.get("page", 1))
            chunk = items[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(items):
                headers["Link"] = f'<{fake.url}{path}?per_page={per_page}&page={page + 1}>; rel="next"'
            self._send(200, chunk, headers)

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            self._send_text(status, json.dumps(body), "application/json; charset=utf-8", headers)

        def _send_text(self, status: int, text: str, content_type: str, headers: dict[str, str] | None = None) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def serve_github(data: GitHubData) -> Iterator[FakeGitHub]:
    """Run the fake on a free loopback port for the duration of the block."""
    fake = FakeGitHub(data)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def sample_data() -> GitHubData:
    """A small organisation: two repositories named ``widgets`` (ambiguous without an owner), issues, a PR."""
    user = {"login": "octo"}
    data = GitHubData()
    data.repos = {
        "acme/widgets": {
            "description": "Widgets service",
            "stargazers_count": 3,
            "html_url": "https://github.com/acme/widgets",
        },
        "other/widgets": {"description": "Another widgets", "stargazers_count": 1},
        "acme/gadgets": {"description": "Gadgets"},
        "acme/secret": {"description": "private"},
    }
    data.forbidden = {"acme/secret"}
    data.files = {
        ("acme/widgets", "src/app.py"): "\n".join(f"line {i}: def handler_{i}(): pass" for i in range(1, 2001)),
        ("acme/widgets", "README.md"): "# Widgets\nRun `make widgets`.\n",
    }
    data.issues = {
        ("acme/widgets", 7): {
            "number": 7,
            "title": "Crash on empty widget",
            "state": "open",
            "user": user,
            "body": "It crashes.\n" * 1000,
            "html_url": "https://github.com/acme/widgets/issues/7",
            "labels": [{"name": "bug"}],
            "created_at": "2026-01-02T03:04:05Z",
        },
        ("acme/widgets", 8): {
            "number": 8,
            "title": "Fix crash on empty widget",
            "state": "closed",
            "user": user,
            "body": "Fixes #7",
            "pull_request": {},
            "html_url": "https://github.com/acme/widgets/pull/8",
        },
    }
    data.comments = {
        ("acme/widgets", 7): [
            {"user": user, "body": f"comment {i}", "created_at": "2026-01-03T00:00:00Z"} for i in range(75)
        ]
    }
    data.pulls = {
        ("acme/widgets", 8): {
            "number": 8,
            "title": "Fix crash on empty widget",
            "state": "closed",
            "user": user,
            "body": "Fixes #7",
            "merged": True,
            "draft": False,
            "base": {"ref": "main"},
            "head": {"ref": "fix-7"},
            "pull_request": {},
        }
    }
    data.diffs = {("acme/widgets", 8): "diff --git a/src/app.py b/src/app.py\n" + "+added line\n" * 20000}
    data.files_changed = {
        ("acme/widgets", 8): [{"filename": "src/app.py", "status": "modified", "additions": 20000, "deletions": 0}]
    }
    data.reviews = {("acme/widgets", 8): [{"user": {"login": "rev"}, "state": "APPROVED", "body": "LGTM"}]}
    data.commits = {
        "acme/widgets": [
            {
                "sha": f"{i:040x}",
                "html_url": f"https://github.com/acme/widgets/commit/{i}",
                "commit": {
                    "message": f"commit {i}\n\nbody",
                    "author": {"name": "Octo", "date": "2026-01-01T00:00:00Z"},
                },
            }
            for i in range(120)
        ]
    }
    data.releases = {"acme/widgets": [{"tag_name": "v1.0", "name": "One", "body": "notes"}]}
    return data
