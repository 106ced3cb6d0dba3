"""The layout rules of architecture.md that a refactor could silently break."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mcp_folder_is_not_a_package() -> None:
    assert not (ROOT / "mcp" / "__init__.py").exists()


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("database", {"agent", "slack", "slack_mcp", "docs_mcp", "github_mcp"}),
        ("slack", {"agent", "slack_mcp", "docs_mcp", "github_mcp"}),
        ("agent", {"slack_mcp", "docs_mcp", "github_mcp"}),
    ],
)
def test_dependencies_flow_one_way(package: str, forbidden: set[str]) -> None:
    assert _imports(package) & forbidden == set()


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(ROOT))
    import athenaeum

    parser = athenaeum.build_parser()
    commands: list[list[str]] = []
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():
            commands.append([name])
            for subaction in sub._actions:
                if subaction.__class__.__name__ == "_SubParsersAction":
                    commands.extend([name, child] for child in subaction.choices)
    assert ["run"] in commands and ["events", "retry"] in commands
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            athenaeum.build_parser().parse_args([*command, "--help"])
        assert exit_info.value.code == 0, command
        assert "usage:" in capsys.readouterr().out


def test_the_entry_point_prints_help_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "athenaeum.py"), "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "status" in result.stdout
