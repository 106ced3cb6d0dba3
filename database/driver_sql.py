"""Hot statements defined with SQLAlchemy Core and sent straight to the driver's cursor.

The queue's claim, completion and heartbeat statements run thousands of times a second. SQLAlchemy's
execute path (parameter processing, the compiled-cache lookup, result wrapping) cost about a quarter of a
claim's wall time on the development machine, more than the statement's execution in PostgreSQL. A
:class:`DriverStatement` keeps the single definition in Core (so models and SQL cannot drift apart),
compiles it once per dialect, and runs it on the session's own DBAPI connection, inside whatever
transaction the session has open. Driver errors come out as SQLAlchemy's exception types, and a lost
connection invalidates the SQLAlchemy connection, exactly as SQLAlchemy's own execute would.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class DriverStatement:
    """A Core statement compiled once per dialect and executed on the raw DBAPI cursor.

    Args:
        statement: the Core statement; its bind parameters are filled by keyword at execution.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _for(self, dialect: Dialect) -> tuple[str, dict[str, Any]]:
        key = f"{dialect.name}+{dialect.driver}"
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                result = self.statement.compile(dialect=dialect)
                assert isinstance(result, SQLCompiler)
                # Literal values inside the statement (status names, constants) become bind
                # parameters with fixed values: those are the defaults every execution sends.
                defaults = {name: bind.value for name, bind in result.binds.items() if bind.callable is None}
                compiled = (str(result), defaults)
                self._compiled[key] = compiled
        return compiled

    def fetchall(self, connection: Connection, **params: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Execute with ``params`` on ``connection``; returns the column names and the rows."""
        sql, defaults = self._for(connection.dialect)
        arguments = {**defaults, **params}
        fairy = connection.connection
        dbapi_connection = fairy.dbapi_connection
        cursor = None
        try:
            cursor = dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute(sql, arguments)
            if cursor.description is None:
                return [], []
            names: list[str] = [d[0] for d in cursor.description]
            rows: list[tuple[Any, ...]] = list(cursor.fetchall())
            return names, rows
        except connection.dialect.loaded_dbapi.Error as error:
            disconnected = connection.dialect.is_disconnect(error, dbapi_connection, cursor)
            if disconnected:
                connection.invalidate(error)
            raise sa_exc.DBAPIError.instance(
                sql,
                arguments,
                error,
                connection.dialect.loaded_dbapi.Error,
                connection_invalidated=disconnected,
                dialect=connection.dialect,
            ) from error
        finally:
            if cursor is not None:
                try:
                    cursor.close()
                except Exception:  # a cursor of a dead connection: nothing to free
                    pass
