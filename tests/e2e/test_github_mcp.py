"""The GitHub MCP server against a local fake GitHub API, through the official MCP client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from github_mcp.client import GitHubClient
from github_mcp.server import build_server

from tests.fakes.github_api import FakeGitHub, sample_data, serve_github
from tests.mcp_client import call, result_json, result_text, stdio_params, with_client


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_github(sample_data()) as fake:
        yield fake


def _server(fake: FakeGitHub, org: str | None = "acme", sleeps: list[float] | None = None):
    recorder = sleeps if sleeps is not None else []
    client = GitHubClient(fake.url, "ghp_test", default_org=org, sleep=recorder.append, clock=lambda: 1000.0)
    return build_server(client)


def test_every_tool_is_listed_with_nullable_optional_parameters(github: FakeGitHub) -> None:
    tools = with_client(_server(github), lambda c: c.list_tools()).tools
    names = {t.name for t in tools}
    assert names == {
        "search_code",
        "get_file",
        "search_issues",
        "get_issue",
        "get_pull_request",
        "list_commits",
        "find_repos",
        "get_releases",
    }
    for tool in tools:
        for name, prop in tool.input_schema["properties"].items():
            assert "minLength" not in str(prop) and "format" not in prop
            if name not in tool.input_schema.get("required", []):
                assert prop.get("default", "x") is None, (tool.name, name)


def test_get_file_line_range_and_budget_with_continuation(github: FakeGitHub) -> None:
    server = _server(github)
    part = result_json(
        call(server, "get_file", {"repo": "widgets", "path": "src/app.py", "start_line": 10, "end_line": 12})
    )
    assert part["repo"] == "acme/widgets" and part["text"].splitlines()[0].startswith("line 10:")
    assert part["end_line"] == 12 and not part["truncated"]
    whole = result_json(call(server, "get_file", {"repo": "acme/widgets", "path": "src/app.py"}))
    assert whole["truncated"] and len(whole["text"]) <= 30_000 and whole["next_start_line"] == whole["end_line"] + 1
    assert github.requests[-1]["accept"] == "application/vnd.github.raw+json"
    assert github.requests[-1]["authorization"] == "Bearer ghp_test"


def test_pull_request_with_diff_within_budget_reviews_and_files(github: FakeGitHub) -> None:
    pr = result_json(
        call(_server(github), "get_pull_request", {"repo": "acme/widgets", "number": 8, "include_diff": True})
    )
    assert pr["merged"] is True and pr["reviews"][0]["state"] == "APPROVED"
    assert pr["files"][0]["path"] == "src/app.py"
    assert pr["diff"].startswith("diff --git") and pr["diff_truncated"] and len(pr["diff"]) <= 40_000


def test_issue_comments_follow_link_pagination_up_to_the_cap(github: FakeGitHub) -> None:
    issue = result_json(call(_server(github), "get_issue", {"repo": "acme/widgets", "number": 7}))
    assert issue["labels"] == ["bug"] and issue["body_truncated"]
    assert issue["comments"][0]["body"] == "comment 0" and issue["comments_truncated"]
    pages = [r for r in github.requests if r["path"].endswith("/issues/7/comments")]
    assert len(pages) == 1  # 30 wanted, 30 per page: one request


def test_list_commits_pages_until_the_limit(github: FakeGitHub) -> None:
    out = result_json(
        call(_server(github), "list_commits", {"repo": "acme/widgets", "limit": 60, "since": "2025-12-01"})
    )
    assert len(out["commits"]) == 60 and out["truncated"] and out["commits"][0]["message"] == "commit 0"
    requests = [r for r in github.requests if r["path"].endswith("/commits")]
    assert len(requests) == 2 and requests[0]["query"]["since"] == "2025-12-01T00:00:00Z"


def test_clear_errors_for_404_403_and_ambiguous_names(github: FakeGitHub) -> None:
    no_org = _server(github, org=None)
    ambiguous = call(no_org, "get_releases", {"repo": "widgets"})
    assert ambiguous.is_error and "acme/widgets" in result_text(ambiguous) and "other/widgets" in result_text(ambiguous)
    unique = result_json(call(no_org, "get_releases", {"repo": "gadgets"}))
    assert unique["repo"] == "acme/gadgets"
    missing = call(_server(github), "get_issue", {"repo": "acme/widgets", "number": 999})
    assert missing.is_error and "not found" in result_text(missing)
    forbidden = call(_server(github), "get_releases", {"repo": "acme/secret"})
    assert forbidden.is_error and "403" in result_text(forbidden) and "scope" in result_text(forbidden)
    bad = call(_server(github), "get_issue", {"repo": "a/b/c; rm -rf", "number": 1})
    assert bad.is_error and "owner/name" in result_text(bad)


def test_rate_limits_honour_retry_after_and_reset_then_give_up_clearly(github: FakeGitHub) -> None:
    sleeps: list[float] = []
    github.queued = [(429, {"Retry-After": "3"}), (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1005"})]
    out = result_json(call(_server(github, sleeps=sleeps), "get_releases", {"repo": "acme/widgets"}))
    assert out["releases"][0]["tag"] == "v1.0"
    assert sleeps == [3.0, 6.0]  # Retry-After, then reset - now + 1 s
    github.queued = [(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "99999"})]
    limited = call(_server(github), "get_releases", {"repo": "acme/widgets"})
    assert limited.is_error and "rate limit" in result_text(limited) and "resets at" in result_text(limited)


def test_hostile_inputs_are_rejected_with_clear_errors(github: FakeGitHub) -> None:
    server = _server(github)
    nul = call(server, "search_code", {"query": "def\x00x"})
    assert nul.is_error and "NUL" in result_text(nul)
    huge = call(server, "search_code", {"query": "x" * 10_000})
    assert huge.is_error and "limit" in result_text(huge)
    bad_limit = call(server, "search_issues", {"query": "crash", "limit": 500})
    assert bad_limit.is_error and "between 1 and 30" in result_text(bad_limit)
    bad_date = call(server, "search_issues", {"query": "crash", "since": "last tuesday"})
    assert bad_date.is_error and "ISO-8601" in result_text(bad_date)


def test_search_tools_scope_to_the_default_org(github: FakeGitHub) -> None:
    server = _server(github)
    issues = result_json(call(server, "search_issues", {"query": "crash", "kind": "pr", "state": "closed"}))
    assert issues["total_count"] >= 1
    q = github.requests[-1]["query"]["q"]
    assert "org:acme" in q and "is:pr" in q and "state:closed" in q
    code = result_json(call(server, "search_code", {"query": "handler_7", "repo": "acme/widgets", "limit": 2}))
    assert code["results"][0]["path"] == "src/app.py" and code["results"][0]["matches"]


@pytest.mark.slow
def test_served_over_stdio_as_a_subprocess(github: FakeGitHub) -> None:
    params = stdio_params("github", {"GITHUB_API_URL": github.url, "GITHUB_ORG": "acme", "GITHUB_TOKEN": "ghp_x"})

    async def body(client):  # type: ignore[no-untyped-def]
        tools = await client.list_tools()
        result = await client.call_tool("get_releases", {"repo": "widgets"})
        return tools, result

    tools, result = with_client(params, body)
    assert len(tools.tools) == 8
    assert result_json(result)["repo"] == "acme/widgets"
