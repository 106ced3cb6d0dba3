"""mcp_config.json parsing: built-ins, external servers, ${ENV}, and errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.mcp_config import MCPConfigError, default_config, load_mcp_config, parse_mcp_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_file_is_valid_and_uses_every_feature() -> None:
    config = load_mcp_config(ROOT / "mcp_config.example.json", {"HOME": "/home/u"}, missing_ok=False)
    assert [s.name for s in config.enabled] == ["slack", "docs", "github"]
    fs = config.get("filesystem")
    assert fs is not None and fs.disabled and fs.args[-1] == "/home/u/shared-notes"
    assert fs.allows("read_file") and not fs.allows("write_file") and fs.exposed_name("read_file") == "notes_read_file"
    wiki = config.get("wiki")
    assert wiki is not None and wiki.kind == "http" and wiki.headers["Authorization"] == "Bearer ${WIKI_TOKEN}"
    assert [s.name for s in config.for_audience(shared_channel=True)] == ["slack", "docs"]


def test_env_substitution_defaults_and_escapes() -> None:
    config = parse_mcp_config(
        {
            "mcpServers": {
                "x": {"command": "${BIN:-npx}", "args": ["--token=${TOKEN}", "$$HOME"], "env": {"K": "${TOKEN}"}},
                "y": {"url": "https://h/${PATH_PART}", "headers": {"A": "b"}, "tool_prefix": "y_"},
            }
        },
        {"TOKEN": "t0k", "PATH_PART": "mcp"},
    )
    x, y = config.servers
    assert x.command == "npx" and x.args == ("--token=t0k", "$HOME") and x.env == {"K": "t0k"}
    assert y.url == "https://h/mcp"
    assert x.stdio_command("python", "athenaeum.py") == ("npx", ("--token=t0k", "$HOME"))
    assert default_config().get("docs").stdio_command("py", "a.py") == ("py", ("a.py", "mcp", "serve", "docs"))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"servers": {"x": {"builtin": "docs", "colour": "red"}}}, "unknown key 'colour'"),
        ({"servers": {}, "extra": 1}, "unknown key 'extra'"),
        ({"servers": {"x": {"command": "a", "url": "http://h"}}}, "exactly one of"),
        ({"servers": {"x": {"builtin": "jira"}}}, "builtin must be one of"),
        ({"servers": {"x": {"command": "run", "env": {"K": "${MISSING}"}}}}, r"\$\{MISSING\} is not set"),
        ({"servers": {"x": {"url": "ftp://h"}}}, "must start with http"),
        ({"servers": {"x": {"builtin": "docs", "disabled": "yes"}}}, "disabled must be true or false"),
        ({"servers": {"x": {"builtin": "docs", "allowed_tools": "search"}}}, "allowed_tools must be a list"),
        (
            {
                "servers": {
                    "a": {"builtin": "docs", "tool_prefix": "p_"},
                    "b": {"builtin": "slack", "tool_prefix": "p_"},
                }
            },
            "share a tool_prefix",
        ),
        ({"servers": {"x": {"builtin": "docs", "timeout_seconds": -1}}}, "timeout_seconds"),
        ([], "top level must be an object"),
    ],
)
def test_invalid_configurations_name_the_server_and_key(document: object, message: str) -> None:
    with pytest.raises(MCPConfigError, match=message):
        parse_mcp_config(document, {})


def test_disabled_servers_need_no_variables_and_files_report_json_errors(tmp_path: Path) -> None:
    config = parse_mcp_config(
        {"servers": {"w": {"url": "https://h", "headers": {"A": "${NOPE}"}, "disabled": True}}}, {}
    )
    assert config.enabled == ()
    bad = tmp_path / "mcp.json"
    bad.write_text('{"servers": {,}}')
    with pytest.raises(MCPConfigError, match="line 1"):
        load_mcp_config(bad, {})
    assert load_mcp_config(tmp_path / "absent.json", {}) == default_config()
    with pytest.raises(MCPConfigError, match="no such file"):
        load_mcp_config(tmp_path / "absent.json", {}, missing_ok=False)
    good = tmp_path / "ok.json"
    good.write_text(json.dumps({"servers": {"docs": {"builtin": "docs"}}}))
    assert load_mcp_config(good, {}).servers[0].builtin == "docs"
