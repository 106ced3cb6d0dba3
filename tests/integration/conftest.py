"""The fault suite: tests whose docstring starts with "Fault row N" carry the ``fault`` marker (``make chaos``
runs them together), and each one that used a test database has the queue invariants of reliability.md
checked in SQL once it is over (after its pools and processes are stopped)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.waiting import assert_queue_invariants

# The highest MAX_RETRY_COUNT any fault test configures (the default); attempts beyond it are a bug.
MAX_RETRY_COUNT = 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        doc = (getattr(item, "obj", None).__doc__ or "") if hasattr(item, "obj") else ""
        if doc.lstrip().startswith("Fault row"):
            item.add_marker(pytest.mark.fault)


@pytest.fixture(autouse=True)
def _fault_invariants(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("fault") is None or "db" not in request.fixturenames:
        yield
        return
    db = request.getfixturevalue("db")  # set up before, so torn down after, the test's own fixtures
    yield
    assert_queue_invariants(db, MAX_RETRY_COUNT)


@pytest.fixture
def spawn_module(database_url: str) -> Iterator:
    """Start ``python -m MODULE database_url ARGS`` and wait for its READY line; kills leftovers at the end."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    procs: list[subprocess.Popen[str]] = []

    def _spawn(module: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, database_url, *args],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "READY", (line, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        return proc

    yield _spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
