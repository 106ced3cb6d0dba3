"""The tool hub against a real MCP server over stdio (the official SDK on both sides)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.audience import Audience
from agent.tools import ServerSpec, ToolHub

TINY = str(Path(__file__).resolve().parent.parent / "fakes" / "tiny_mcp_server.py")
PUBLIC = Audience(channel_id="CANSWER", channel_type="channel")
SHARED = Audience(channel_id="CEXT", channel_type="channel", is_shared=True)


@pytest.fixture(scope="module")
def hub() -> Iterator[ToolHub]:
    specs = [
        ServerSpec(name="tiny", command=sys.executable, args=(TINY,)),
        ServerSpec(
            name="internal",
            command=sys.executable,
            args=(TINY,),
            tool_prefix="int_",
            internal_only=True,
            allowed_tools=("search_docs",),
        ),
        ServerSpec(name="broken", command=sys.executable, args=(TINY,), env={"TINY_MCP_FAIL": "1"}),
    ]
    with ToolHub(specs, start_timeout=20) as h:
        yield h


def test_servers_start_and_a_broken_one_is_left_out(hub: ToolHub) -> None:
    assert hub.server_names() == ["tiny", "internal"]
    assert "broken" in hub.failed
    names = [t["name"] for t in hub.tool_definitions(PUBLIC)]
    assert {"search_messages", "search_docs", "explode", "int_search_docs"} <= set(names)
    assert "int_explode" not in names  # allowed_tools
    assert all(t["input_schema"]["type"] == "object" for t in hub.tool_definitions())


def test_internal_only_servers_are_not_offered_in_shared_channels(hub: ToolHub) -> None:
    names = [t["name"] for t in hub.tool_definitions(SHARED)]
    assert "int_search_docs" not in names and "search_docs" in names
    assert hub.call("int_search_docs", {"query": "x"}, SHARED).is_error


def test_a_tool_call_returns_its_text(hub: ToolHub) -> None:
    result = hub.call("search_docs", {"query": "lease"}, PUBLIC)
    assert not result.is_error
    assert json.loads(result.text)["results"][0]["url"] == "https://docs.example/leases"


def test_row26_private_hits_are_removed_for_a_public_audience(hub: ToolHub) -> None:
    result = hub.call("search_messages", {"query": "launch"}, PUBLIC)
    assert "public note about launch" in result.text
    assert "PRIVATE-SECRET" not in result.text and "CSECRET" not in result.text
    assert "removed" in result.text


def test_private_hits_stay_in_their_own_channel_and_locally(hub: ToolHub) -> None:
    own = hub.call("search_messages", {"query": "q"}, Audience(channel_id="CSECRET", channel_type="group"))
    assert "PRIVATE-SECRET" in own.text
    local = hub.call("search_messages", {"query": "q"}, Audience(channel_id="local", channel_type="local"))
    assert "PRIVATE-SECRET" in local.text


def test_the_audience_channel_travels_in_the_request_meta(hub: ToolHub) -> None:
    assert json.loads(hub.call("whoami", {}, PUBLIC).text) == {"channel": "CANSWER"}
    assert json.loads(hub.call("whoami", {}, Audience("local", "local")).text) == {"channel": None}


def test_tool_failures_and_unknown_tools_become_error_results(hub: ToolHub) -> None:
    failed = hub.call("explode", {"reason": "boom"}, PUBLIC)
    assert failed.is_error and "boom" in failed.text
    unknown = hub.call("nope", {}, PUBLIC)
    assert unknown.is_error and "Unknown tool" in unknown.text


def test_tool_calls_are_signalled_by_server_for_the_metrics(hub: ToolHub) -> None:
    from agent import observers

    calls: list[dict[str, object]] = []

    def listener(**fields: object) -> None:
        calls.append(fields)

    observers.subscribe("tool_call", listener)
    try:
        hub.call("search_docs", {"query": "lease"}, PUBLIC)
        hub.call("explode", {"reason": "boom"}, PUBLIC)
    finally:
        observers.unsubscribe("tool_call", listener)
    assert [(c["tool"], c["ok"]) for c in calls] == [("search_docs", True), ("explode", False)]
    assert all(isinstance(c["server"], str) and c["server"] for c in calls)
