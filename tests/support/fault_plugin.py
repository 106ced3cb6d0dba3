"""pytest plugin for the fault suite (loaded with ``-p tests.support.fault_plugin`` from pyproject.toml).

- Every test that names its row of reliability.md's fault table (a docstring with "Fault row N" or
  "Fault suite row N", or starting with "Row N", or a name ``test_rowN_…``) gets the ``fault`` marker, in any tier, so
  ``make chaos`` (``pytest -m fault``) runs the whole suite together.
- After each fault test (and after its pools and processes are stopped), the invariants are checked:
  in SQL when it used the ``db`` fixture (no expired lease left in ``processing``, attempts within
  ``MAX_RETRY_COUNT``, every ``failed`` event with its error), and, for every fake Slack it used, at
  most one bot message per question thread (mark a test ``multiple_bot_messages`` when it posts more on
  purpose, e.g. a test of the splitting of long answers).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

MAX_RETRY_COUNT = 3  # the highest any fault test configures (the default)
_ROW_IN_DOC = re.compile(r"\bfault[- ](suite )?rows? \d+|^\s*rows? \d+\b", re.IGNORECASE)
_ROW_IN_NAME = re.compile(r"^test_row\d+_")


def is_fault_test(name: str, doc: str | None) -> bool:
    """Whether a test belongs to the fault suite, by the row it names."""
    return bool(_ROW_IN_NAME.match(name) or _ROW_IN_DOC.search(doc or ""))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "multiple_bot_messages: a fault test whose fake Slack threads may hold more than one bot message"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        func = getattr(item, "obj", None)
        if is_fault_test(getattr(func, "__name__", item.name), getattr(func, "__doc__", None)):
            item.add_marker(pytest.mark.fault)


def replies_per_thread(fake: Any) -> Counter[tuple[str, str]]:
    """Bot messages per (channel, thread) in a fake Slack (duck-typed: ``_history`` and ``bot_messages``)."""
    counts: Counter[tuple[str, str]] = Counter()
    for channel in list(getattr(fake, "_history", {})):
        for message in fake.bot_messages(channel):
            counts[(channel, message.get("thread_ts") or message["ts"])] += 1
    return counts


@pytest.fixture(autouse=True)
def _fault_invariants(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("fault") is None:
        yield
        return
    # Set up before (so torn down after) the test's own fixtures: pools and processes are gone by then.
    db = request.getfixturevalue("db") if "db" in request.fixturenames else None
    yield
    if db is not None:
        from tests.support.waiting import assert_queue_invariants

        assert_queue_invariants(db, MAX_RETRY_COUNT)
    if request.node.get_closest_marker("multiple_bot_messages") is None:
        for fake in fake_slacks(getattr(request.node, "funcargs", {}).values()):
            doubled = {k: n for k, n in replies_per_thread(fake).items() if n > 1}
            assert not doubled, f"more than one bot message in a question's thread: {doubled}"


def fake_slacks(values: Any) -> list[Any]:
    """Fake Slack servers among a test's fixture values, or one attribute down (a harness holding one)."""
    found: list[Any] = []
    for value in values:
        for candidate in (value, *getattr(value, "__dict__", {}).values()):
            if hasattr(candidate, "bot_messages") and hasattr(candidate, "_history") and candidate not in found:
                found.append(candidate)
    return found
