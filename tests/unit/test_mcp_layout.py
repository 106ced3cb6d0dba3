"""The MCP servers import only ``database`` and their own code (architecture.md), never each other."""

import ast
from pathlib import Path

import pytest

MCP = Path(__file__).resolve().parents[2] / "mcp"
SERVERS = ("slack_mcp", "docs_mcp", "github_mcp")


def _top_level_imports(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", [*SERVERS, "embeddings"])
def test_servers_and_shared_code_never_import_agent_or_slack_or_each_other(package: str) -> None:
    imports = _top_level_imports(MCP / package)
    forbidden = {"agent", "slack", "athenaeum", *SERVERS} - {package}
    assert imports & forbidden == set(), imports & forbidden
