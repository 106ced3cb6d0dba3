"""``tool_session``: every MCP tool query runs read-only under a statement timeout (set in one round trip)."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ToolError
from sqlalchemy import text
from tool_rules import tool_session

from database import DatabaseConnection


def test_tool_sessions_are_read_only_and_time_limited(db: DatabaseConnection) -> None:
    with tool_session(db, timeout_ms=1234) as session:
        settings = session.execute(
            text("SELECT current_setting('transaction_read_only'), current_setting('statement_timeout')")
        ).one()
    assert tuple(settings) == ("on", "1234ms")
    with pytest.raises(ToolError, match="change the arguments"), tool_session(db) as session:
        session.execute(text("CREATE TABLE intruder (id int)"))
    with pytest.raises(ToolError, match="took too long"), tool_session(db, timeout_ms=50) as session:
        session.execute(text("SELECT pg_sleep(2)"))
    with db.session() as session:
        assert session.execute(text("SELECT to_regclass('intruder')")).scalar() is None
