"""`ask` and `chat`: the terminal path through the same queue, workers, agent and tools."""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.commands.chat import cmd_ask, cmd_chat
from agent.commands.context import AppContext
from agent.config import Config
from tests.fakes.anthropic_server import FakeAnthropic, http_error, text
from tests.integration.assistant_harness import TINY

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def environment(database_url: str, tmp_path: Path, fake: FakeAnthropic | None) -> dict[str, str]:
    mcp_config = tmp_path / "mcp_config.json"
    mcp_config.write_text(json.dumps({"mcpServers": {"tiny": {"command": sys.executable, "args": [TINY]}}}))
    env = {
        "DATABASE_URL": database_url,
        "MCP_CONFIG": str(mcp_config),
        "RETRY_BASE_DELAY": "0.01",
        "MAX_RETRY_COUNT": "0",
        "LOG_LEVEL": "WARNING",
    }
    if fake is not None:
        env |= {"ANTHROPIC_API_KEY": "sk-ant-test-0123456789", "ANTHROPIC_BASE_URL": fake.base_url}
    return env


@pytest.fixture
def contexts() -> Iterator[list[AppContext]]:
    made: list[AppContext] = []
    yield made
    # The dispatcher's thread-local session keeps a connection checked out after `next_due_in` (no commit);
    # collect it while the database still exists, then close the pool before the database is dropped.
    gc.collect()
    for ctx in made:
        ctx.db.dispose()


@pytest.fixture
def context(contexts: list[AppContext]) -> Any:
    def make(env: dict[str, str]) -> AppContext:
        ctx = AppContext(Config(environ=env, env_file=None))
        contexts.append(ctx)
        return ctx

    return make


def test_ask_prints_one_answer_on_stdout(database_url: str, tmp_path: Path, fake: FakeAnthropic, context: Any) -> None:
    fake.script(text("Forty-two."))
    out, err = io.StringIO(), io.StringIO()
    code = cmd_ask(
        context(environment(database_url, tmp_path, fake)),
        argparse.Namespace(question="What is the answer?", timeout=30.0),
        out=out,
        err=err,
    )
    assert code == 0
    assert out.getvalue() == "Forty-two.\n"
    assert "What is the answer?" in json.dumps(fake.requests[0]["messages"])
    assert [t["name"] for t in fake.requests[0]["tools"]][:1]  # the MCP tools were offered


def test_ask_fails_with_a_clear_message_and_non_zero_exit(
    database_url: str, tmp_path: Path, fake: FakeAnthropic, context: Any
) -> None:
    fake.script(http_error("authentication_error", message="invalid x-api-key"))
    out, err = io.StringIO(), io.StringIO()
    code = cmd_ask(
        context(environment(database_url, tmp_path, fake)),
        argparse.Namespace(question="q", timeout=30.0),
        out=out,
        err=err,
    )
    assert code == 1
    assert out.getvalue() == ""
    assert err.getvalue().startswith("error: :warning: Sorry, I couldn't answer this")


def test_ask_without_an_api_key_answers_with_labelled_search_results(
    database_url: str, tmp_path: Path, context: Any
) -> None:
    out = io.StringIO()
    code = cmd_ask(
        context(environment(database_url, tmp_path, None)),
        argparse.Namespace(question="lease", timeout=30.0),
        out=out,
        err=io.StringIO(),
    )
    assert code == 0
    assert out.getvalue().startswith("**Search results**")
    assert "[Leases](https://docs.example/leases)" in out.getvalue()


def test_chat_keeps_the_conversation_like_a_thread(
    database_url: str, tmp_path: Path, fake: FakeAnthropic, context: Any
) -> None:
    fake.script(text("Blue is a colour."), text("You asked about blue."))
    lines = iter(["What is blue?", "What did I ask?", "exit"])
    out, err = io.StringIO(), io.StringIO()
    code = cmd_chat(
        context(environment(database_url, tmp_path, fake)),
        argparse.Namespace(conversation="c1"),
        read=lambda prompt: next(lines),
        out=out,
        err=err,
    )
    assert code == 0
    assert out.getvalue() == "Blue is a colour.\nYou asked about blue.\n"
    second = json.dumps(fake.requests[1]["messages"])
    assert "What is blue?" in second and "Blue is a colour." in second and "(you, the assistant)" in second
    assert second.index("Blue is a colour.") < second.index("What did I ask?")  # the question comes last


@pytest.mark.slow
def test_the_ask_command_keeps_stdout_for_the_answer(database_url: str, tmp_path: Path, fake: FakeAnthropic) -> None:
    fake.script(text("Only this on stdout."))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "SLACK_"))}
    env |= environment(database_url, tmp_path, fake) | {"LOG_LEVEL": "INFO"}
    done = subprocess.run(
        [sys.executable, "athenaeum.py", "ask", "hello?"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Only this on stdout.\n"
    assert "worker pool started" in done.stderr
