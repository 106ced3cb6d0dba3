"""Fixtures for integration tests that run real processes (the fault-suite plugin is tests/support/fault_plugin.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


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


@pytest.fixture
def pools() -> Iterator[list]:
    """Collects the WorkerPools a test starts and stops them at the end, whatever happened."""
    started: list = []
    yield started
    for pool in started:
        pool.stop(timeout=2)
