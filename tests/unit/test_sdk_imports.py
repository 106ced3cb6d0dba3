"""Name clashes of architecture.md: our folders must not shadow the SDKs, nor the SDKs ours."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.path.insert(1, 'mcp')  # as athenaeum.py and pytest's pythonpath do
import mcp, slack, slack_sdk, docs_mcp
from mcp.server.mcpserver import MCPServer
from mcp import Client
from slack_sdk import WebClient
print(mcp.__file__)
print(slack.__file__)
print(docs_mcp.__file__)
print(WebClient(token='xoxb-test').base_url)
"""


def test_import_mcp_from_the_root_is_the_sdk_and_slack_is_ours() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    mcp_file, slack_file, docs_file, base_url = result.stdout.split()
    assert "site-packages" in mcp_file and Path(mcp_file).parent.name == "mcp"
    assert not Path(mcp_file).is_relative_to(ROOT / "mcp")
    assert Path(slack_file) == ROOT / "slack" / "__init__.py"
    assert Path(docs_file) == ROOT / "mcp" / "docs_mcp" / "__init__.py"
    assert base_url.startswith("https://")
