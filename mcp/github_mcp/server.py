"""The GitHub MCP server: code, files, issues, pull requests, commits, repositories and releases.

Each tool validates its arguments, calls the ``client`` seam, and returns a compact result within a hard
budget; ``GitHubError``s become ``isError`` results whose message says what to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field
from tool_rules import DEFAULT_BUDGET_CHARS, ToolInputError, clamp_int, clean_text, cut, parse_time

from github_mcp.client import GitHubClient, GitHubError

FILE_BUDGET_CHARS = 30_000
DIFF_BUDGET_CHARS = 40_000
BODY_CHARS = 4_000
COMMENT_CHARS = 1_500
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
INSTRUCTIONS = (
    "Read GitHub: search code and issues, read files, issues and pull requests (with diffs), commits and releases. "
    "Repositories are owner/name; a bare name uses the default organisation."
)


@contextmanager
def _github_errors() -> Iterator[None]:
    try:
        yield
    except GitHubError as exc:
        raise ToolError(str(exc)) from exc


def _repo_arg(client: GitHubClient, repo: str | None, required: bool = True) -> str | None:
    value = clean_text(repo, "repo", max_chars=200, required=required)
    return client.resolve_repo(value) if value else None


def _required_repo(client: GitHubClient, repo: str | None) -> str:
    value = clean_text(repo, "repo", max_chars=200, required=True) or ""
    return client.resolve_repo(value)


def _number(value: int | None, name: str = "number") -> int:
    if value is None or value < 1:
        raise ToolInputError(f"{name} must be a positive issue or pull request number")
    return value


def _fit(items: list[dict[str, Any]], budget: int = DEFAULT_BUDGET_CHARS) -> tuple[list[dict[str, Any]], bool]:
    import json

    kept: list[dict[str, Any]] = []
    used = 0
    for item in items:
        size = len(json.dumps(item, default=str))
        if used + size > budget:
            return kept, True
        kept.append(item)
        used += size
    return kept, False


def build_server(client: GitHubClient, *, name: str = "athenaeum-github") -> MCPServer:
    """The GitHub server bound to a client (which holds the base URL, token and default organisation)."""
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING")
    tool: Callable[..., Any] = server.tool(annotations=READ_ONLY)

    @tool
    def search_code(
        query: Annotated[str, Field(description="Code search terms (GitHub code search syntax allowed).")],
        repo: Annotated[str | None, Field(description="Only this repository (owner/name); null = all visible.")] = None,
        path: Annotated[str | None, Field(description="Only files under this path; null = anywhere.")] = None,
        language: Annotated[str | None, Field(description="Only this language, e.g. python; null = any.")] = None,
        limit: Annotated[int | None, Field(description="Results, 1-30; null = 10.")] = None,
    ) -> dict[str, Any]:
        """Search code; each hit has the repository, file path, URL and the matching lines."""
        q = clean_text(query, "query", max_chars=256, required=True) or ""
        n = clamp_int(limit, "limit", 10, 1, 30)
        with _github_errors():
            parts = [q]
            if (r := _repo_arg(client, repo, required=False)) is not None:
                parts.append(f"repo:{r}")
            elif client.default_org:
                parts.append(f"org:{client.default_org}")
            if p := clean_text(path, "path", max_chars=300):
                parts.append(f"path:{p}")
            if lang := clean_text(language, "language", max_chars=40):
                parts.append(f"language:{lang}")
            body = client.get(
                "search/code",
                {"q": " ".join(parts), "per_page": n},
                accept="application/vnd.github.text-match+json",
                what="code search",
            ).json()
        items = [
            {
                "repo": it.get("repository", {}).get("full_name"),
                "path": it.get("path"),
                "url": it.get("html_url"),
                "matches": [cut(m.get("fragment", ""), 400)[0] for m in it.get("text_matches", [])[:3]],
            }
            for it in body.get("items", [])[:n]
        ]
        kept, truncated = _fit(items)
        return {"total_count": body.get("total_count", len(items)), "results": kept, "truncated": truncated}

    @tool
    def get_file(
        repo: Annotated[str, Field(description="Repository, owner/name.")],
        path: Annotated[str, Field(description="File path in the repository.")],
        ref: Annotated[str | None, Field(description="Branch, tag or commit; null = default branch.")] = None,
        start_line: Annotated[int | None, Field(description="First line (1-based); null = 1.")] = None,
        end_line: Annotated[int | None, Field(description="Last line; null = as many as fit.")] = None,
    ) -> dict[str, Any]:
        """Read a file (or a line range of it); long files are cut, with the line to continue from."""
        p = (clean_text(path, "path", max_chars=500, required=True) or "").lstrip("/")
        r_ref = clean_text(ref, "ref", max_chars=200)
        first = clamp_int(start_line, "start_line", 1, 1, 10_000_000)
        last = clamp_int(end_line, "end_line", 10_000_000, first, 10_000_000)
        with _github_errors():
            full = _required_repo(client, repo)
            response = client.get(
                f"repos/{full}/contents/{p}",
                {"ref": r_ref} if r_ref else None,
                accept="application/vnd.github.raw+json",
                what=f"file {p!r} in {full}",
            )
        if b"\x00" in response.content[:8000]:
            raise ToolError(f"{p!r} is a binary file; only text files can be read")
        if response.headers.get("content-type", "").startswith("application/json"):
            raise ToolError(f"{p!r} is a directory; give the path of a file in it")
        lines = response.text.splitlines()
        selected = lines[first - 1 : last]
        out_lines: list[str] = []
        used = 0
        for line in selected:
            if used + len(line) + 1 > FILE_BUDGET_CHARS:
                break
            out_lines.append(line)
            used += len(line) + 1
        shown_last = first + len(out_lines) - 1
        result: dict[str, Any] = {
            "repo": full,
            "path": p,
            "ref": r_ref,
            "start_line": first,
            "end_line": shown_last,
            "total_lines": len(lines),
            "text": "\n".join(out_lines),
            "truncated": shown_last < min(last, len(lines)),
        }
        if result["truncated"]:
            result["next_start_line"] = shown_last + 1
        return result

    @tool
    def search_issues(
        query: Annotated[str, Field(description="Search terms.")],
        repo: Annotated[str | None, Field(description="Only this repository (owner/name); null = all.")] = None,
        state: Annotated[Literal["open", "closed", "all"] | None, Field(description="null = all.")] = None,
        kind: Annotated[
            Literal["issue", "pr", "all"] | None, Field(description="Issues, PRs or both; null = both.")
        ] = None,
        since: Annotated[
            str | None, Field(description="Only updated since this ISO-8601 date; null = any time.")
        ] = None,
        limit: Annotated[int | None, Field(description="Results, 1-30; null = 10.")] = None,
    ) -> dict[str, Any]:
        """Search issues and pull requests; each hit has number, title, state, author, dates and URL."""
        q = clean_text(query, "query", max_chars=256, required=True) or ""
        n = clamp_int(limit, "limit", 10, 1, 30)
        after = parse_time(since, "since")
        parts = [q]
        with _github_errors():
            if (r := _repo_arg(client, repo, required=False)) is not None:
                parts.append(f"repo:{r}")
            elif client.default_org:
                parts.append(f"org:{client.default_org}")
            if state in ("open", "closed"):
                parts.append(f"state:{state}")
            if kind in ("issue", "pr"):
                parts.append(f"is:{kind}")
            if after is not None:
                parts.append(f"updated:>={after.date().isoformat()}")
            body = client.get_json("search/issues", {"q": " ".join(parts), "per_page": n}, what="issue search")
        items = [
            {
                "number": it.get("number"),
                "title": it.get("title"),
                "state": it.get("state"),
                "kind": "pr" if "pull_request" in it else "issue",
                "author": (it.get("user") or {}).get("login"),
                "created_at": it.get("created_at"),
                "updated_at": it.get("updated_at"),
                "url": it.get("html_url"),
                "comments": it.get("comments"),
            }
            for it in body.get("items", [])[:n]
        ]
        kept, truncated = _fit(items)
        return {"total_count": body.get("total_count", len(items)), "results": kept, "truncated": truncated}

    @tool
    def get_issue(
        repo: Annotated[str, Field(description="Repository, owner/name.")],
        number: Annotated[int, Field(description="Issue number.")],
    ) -> dict[str, Any]:
        """An issue with its body and comments (long texts cut)."""
        num = _number(number)
        with _github_errors():
            full = _required_repo(client, repo)
            issue = client.get_json(f"repos/{full}/issues/{num}", what=f"issue #{num} in {full}")
            comments, more = client.paginate(
                f"repos/{full}/issues/{num}/comments", limit=30, what=f"comments of #{num}"
            )
        return _issue_shape(full, issue, comments, more)

    @tool
    def get_pull_request(
        repo: Annotated[str, Field(description="Repository, owner/name.")],
        number: Annotated[int, Field(description="Pull request number.")],
        include_diff: Annotated[bool | None, Field(description="Include the diff as raw text; null = false.")] = None,
    ) -> dict[str, Any]:
        """A pull request: body, comments, reviews, changed files, and optionally its diff within a budget."""
        num = _number(number)
        with _github_errors():
            full = _required_repo(client, repo)
            pr = client.get_json(f"repos/{full}/pulls/{num}", what=f"pull request #{num} in {full}")
            comments, more = client.paginate(f"repos/{full}/issues/{num}/comments", limit=30, what="comments")
            reviews, _ = client.paginate(f"repos/{full}/pulls/{num}/reviews", limit=30, what="reviews")
            files, more_files = client.paginate(f"repos/{full}/pulls/{num}/files", limit=100, what="changed files")
            diff = (
                client.get(f"repos/{full}/pulls/{num}", accept="application/vnd.github.diff", what="diff").text
                if include_diff
                else None
            )
        out = _issue_shape(full, pr, comments, more)
        out.update(
            {
                "kind": "pr",
                "merged": pr.get("merged"),
                "draft": pr.get("draft"),
                "base": (pr.get("base") or {}).get("ref"),
                "head": (pr.get("head") or {}).get("ref"),
                "reviews": [
                    {
                        "author": (r.get("user") or {}).get("login"),
                        "state": r.get("state"),
                        "body": cut(r.get("body") or "", COMMENT_CHARS)[0],
                        "submitted_at": r.get("submitted_at"),
                    }
                    for r in reviews
                ],
                "files": [
                    {
                        "path": f.get("filename"),
                        "status": f.get("status"),
                        "additions": f.get("additions"),
                        "deletions": f.get("deletions"),
                    }
                    for f in files
                ],
                "files_truncated": more_files,
            }
        )
        if diff is not None:
            text, cut_off = cut(diff, DIFF_BUDGET_CHARS)
            out["diff"] = text
            out["diff_truncated"] = cut_off
            if cut_off:
                out["note"] = "diff cut to the budget: read single files with get_file at the head ref"
        return out

    @tool
    def list_commits(
        repo: Annotated[str, Field(description="Repository, owner/name.")],
        author: Annotated[str | None, Field(description="GitHub login or email; null = anyone.")] = None,
        since: Annotated[str | None, Field(description="ISO-8601 start; null = no lower bound.")] = None,
        until: Annotated[str | None, Field(description="ISO-8601 end; null = now.")] = None,
        limit: Annotated[int | None, Field(description="Commits, 1-100; null = 20.")] = None,
    ) -> dict[str, Any]:
        """Recent commits of the default branch: sha, author, date, first line of the message, URL."""
        n = clamp_int(limit, "limit", 20, 1, 100)
        params: dict[str, Any] = {}
        if a := clean_text(author, "author", max_chars=100):
            params["author"] = a
        for key, value in (("since", parse_time(since, "since")), ("until", parse_time(until, "until"))):
            if value is not None:
                params[key] = value.isoformat().replace("+00:00", "Z")
        with _github_errors():
            full = _required_repo(client, repo)
            commits, more = client.paginate(f"repos/{full}/commits", params, limit=n, what=f"commits of {full}")
        items = [
            {
                "sha": c.get("sha", "")[:12],
                "author": ((c.get("commit") or {}).get("author") or {}).get("name"),
                "date": ((c.get("commit") or {}).get("author") or {}).get("date"),
                "message": ((c.get("commit") or {}).get("message") or "").split("\n", 1)[0][:200],
                "url": c.get("html_url"),
            }
            for c in commits
        ]
        kept, truncated = _fit(items)
        return {"repo": full, "commits": kept, "truncated": truncated or more}

    @tool
    def find_repos(
        query: Annotated[str, Field(description="Words in the repository name or description.")],
        limit: Annotated[int | None, Field(description="Results, 1-30; null = 10.")] = None,
    ) -> dict[str, Any]:
        """Find repositories (in the default organisation when one is set)."""
        q = clean_text(query, "query", max_chars=256, required=True) or ""
        n = clamp_int(limit, "limit", 10, 1, 30)
        if client.default_org:
            q += f" org:{client.default_org}"
        with _github_errors():
            body = client.get_json("search/repositories", {"q": q, "per_page": n}, what="repository search")
        items = [
            {
                "repo": it.get("full_name"),
                "description": cut(it.get("description") or "", 300)[0],
                "stars": it.get("stargazers_count"),
                "updated_at": it.get("updated_at"),
                "url": it.get("html_url"),
                "default_branch": it.get("default_branch"),
                "archived": it.get("archived"),
            }
            for it in body.get("items", [])[:n]
        ]
        kept, truncated = _fit(items)
        return {"results": kept, "truncated": truncated}

    @tool
    def get_releases(
        repo: Annotated[str, Field(description="Repository, owner/name.")],
        limit: Annotated[int | None, Field(description="Releases, 1-30; null = 5.")] = None,
    ) -> dict[str, Any]:
        """The latest releases: tag, name, date, notes (cut) and URL."""
        n = clamp_int(limit, "limit", 5, 1, 30)
        with _github_errors():
            full = _required_repo(client, repo)
            releases, more = client.paginate(f"repos/{full}/releases", limit=n, what=f"releases of {full}")
        items = [
            {
                "tag": r.get("tag_name"),
                "name": r.get("name"),
                "published_at": r.get("published_at"),
                "prerelease": r.get("prerelease"),
                "notes": cut(r.get("body") or "", 2000)[0],
                "url": r.get("html_url"),
            }
            for r in releases
        ]
        kept, truncated = _fit(items)
        return {"repo": full, "releases": kept, "truncated": truncated or more}

    return server


def _issue_shape(full: str, issue: dict[str, Any], comments: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    body, body_cut = cut(issue.get("body") or "", BODY_CHARS)
    shown, comments_cut = _fit(
        [
            {
                "author": (c.get("user") or {}).get("login"),
                "created_at": c.get("created_at"),
                "body": cut(c.get("body") or "", COMMENT_CHARS)[0],
                "url": c.get("html_url"),
            }
            for c in comments
        ]
    )
    return {
        "repo": full,
        "number": issue.get("number"),
        "title": issue.get("title"),
        "state": issue.get("state"),
        "kind": "pr" if "pull_request" in issue else "issue",
        "author": (issue.get("user") or {}).get("login"),
        "labels": [label.get("name") for label in issue.get("labels", []) if isinstance(label, dict)],
        "created_at": issue.get("created_at"),
        "updated_at": issue.get("updated_at"),
        "closed_at": issue.get("closed_at"),
        "url": issue.get("html_url"),
        "body": body,
        "body_truncated": body_cut,
        "comments": shown,
        "comments_truncated": comments_cut or more,
    }
