"""The README's code runs as written against a real database (a broken example is a broken product)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("Running the Agent", "Configuration", "Database Connection", "Event Processor", "Worker Pool", "Monitoring")
# Commands that block forever (the service) or write files into the checkout are exercised elsewhere
# (test_cli runs the service; test_migrations renders the offline SQL).
NOT_RUN_HERE = {"make run", "python athenaeum.py", "alembic upgrade head --sql > schema.sql"}


def _blocks(section: str) -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert match, f"README has no section {section!r}"
    return re.findall(r"```(python|bash)\n(.*?)```", match.group(1), flags=re.S)


def _env(database_url: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": database_url,
        "LOG_FORMAT": "json",
    }


@pytest.mark.parametrize("section", SECTIONS)
def test_readme_section_runs_as_written(section: str, database_url: str) -> None:
    blocks = _blocks(section)
    assert blocks, f"section {section!r} has no code"
    for language, code in blocks:
        if language == "python":
            result = subprocess.run(
                [sys.executable, "-c", code],
                cwd=ROOT,
                env=_env(database_url),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, f"{section}:\n{code}\n{result.stderr}"
            continue
        for line in code.splitlines():
            command = line.split("#")[0].strip()
            if not command or command in NOT_RUN_HERE:
                continue
            result = subprocess.run(
                command, shell=True, cwd=ROOT, env=_env(database_url), capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, f"{section}: {command}\n{result.stdout}\n{result.stderr}"


def test_readme_shows_the_two_front_door_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make run" in text and "make test" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
