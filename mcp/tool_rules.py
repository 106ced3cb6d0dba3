"""The rules every MCP tool here follows (mcp.md), in one place the three servers share.

- Inputs: NUL bytes and oversized text are rejected with a message that says what to change.
- SQL: LIKE patterns are escaped; every tool query runs under a statement timeout.
- Outputs: a hard character budget, with a cursor to continue from when a result was cut.
- Errors: :class:`ToolInputError` and friends become ``isError`` tool results (the SDK's ``ToolError``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from database import DatabaseConnection
from database.errors import AthenaeumError, DatabaseUnavailableError

MAX_QUERY_CHARS = 1000
MAX_NAME_CHARS = 300
STATEMENT_TIMEOUT_MS = 5000
DEFAULT_BUDGET_CHARS = 12_000


class ToolInputError(ToolError):
    """The caller's arguments cannot be used; the message says what to send instead."""


def clean_text(value: str | None, name: str, *, max_chars: int = MAX_QUERY_CHARS, required: bool = False) -> str | None:
    """Validate a text argument: no NUL bytes, at most ``max_chars``, stripped; ``None`` or empty means unset.

    Raises:
        ToolInputError: NUL byte, too long, or missing when ``required``.
    """
    if value is None or not value.strip():
        if required:
            raise ToolInputError(f"{name} is required: pass a non-empty string")
        return None
    if "\x00" in value:
        raise ToolInputError(f"{name} contains a NUL byte (\\x00); remove it and try again")
    if len(value) > max_chars:
        raise ToolInputError(f"{name} is {len(value)} characters; the limit is {max_chars}: shorten it")
    return value.strip()


def clamp_int(value: int | None, name: str, default: int, low: int, high: int) -> int:
    """``value`` or ``default``, which must lie in ``[low, high]``.

    Raises:
        ToolInputError: out of range.
    """
    if value is None:
        return default
    if not low <= value <= high:
        raise ToolInputError(f"{name} must be between {low} and {high} (got {value}); pass null for {default}")
    return value


def clamp_float(value: float | None, name: str, default: float, low: float, high: float) -> float:
    """Like :func:`clamp_int` for floats."""
    if value is None:
        return default
    if not low <= value <= high:
        raise ToolInputError(f"{name} must be between {low} and {high} (got {value}); pass null for {default}")
    return float(value)


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO-8601 date or date-time (``2024-05-01``, ``2024-05-01T12:00:00Z``) as an aware UTC datetime.

    Raises:
        ToolInputError: not ISO-8601.
    """
    value = clean_text(value, name, max_chars=64)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ToolInputError(
            f"{name} must be an ISO-8601 date or time such as 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def escape_like(value: str) -> str:
    """``value`` with LIKE/ILIKE wildcards escaped, for ``… ILIKE :pattern ESCAPE '\\'``."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def encode_cursor(state: dict[str, Any]) -> str:
    """An opaque cursor for ``state``."""
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, name: str = "cursor") -> dict[str, Any] | None:
    """The state inside a cursor made by :func:`encode_cursor`.

    Raises:
        ToolInputError: not a cursor this server made.
    """
    cursor = clean_text(cursor, name, max_chars=2000)
    if cursor is None:
        return None
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise ToolInputError(
            f"{name} is not valid: pass the cursor from the previous result unchanged, or null"
        ) from None
    if not isinstance(state, dict):
        raise ToolInputError(f"{name} is not valid: pass the cursor from the previous result unchanged, or null")
    return state


def cut(value: str, limit: int) -> tuple[str, bool]:
    """``value`` cut to ``limit`` characters (marked with an ellipsis) and whether it was cut."""
    if len(value) <= limit:
        return value, False
    return value[: max(limit - 1, 0)].rstrip() + "…", True


@contextmanager
def tool_session(db: DatabaseConnection, timeout_ms: int = STATEMENT_TIMEOUT_MS) -> Iterator[Session]:
    """A read-only session with a statement timeout; database failures become actionable tool errors."""
    try:
        with db.session() as session:
            # One round trip for both (SET TRANSACTION READ ONLY would be a second one).
            session.execute(
                text(
                    "SELECT set_config('transaction_read_only', 'on', true), set_config('statement_timeout', :t, true)"
                ),
                {"t": str(timeout_ms)},
            )
            yield session
    except ToolError:
        raise
    except (DatabaseUnavailableError, OperationalError) as exc:
        cause = exc.__cause__ if isinstance(exc, DatabaseUnavailableError) else exc
        if "statement timeout" in str(cause):
            raise ToolError(
                "the query took too long and was cancelled: narrow it (add a filter or lower limit)"
            ) from exc
        raise ToolError("the database is unreachable right now; try again in a moment") from exc
    except DBAPIError as exc:
        raise ToolError(f"the query failed ({type(exc.orig).__name__}); change the arguments and retry") from exc
    except AthenaeumError as exc:
        raise ToolError(str(exc)) from exc
