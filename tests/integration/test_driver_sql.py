"""DriverStatement: Core statements run on the raw cursor behave like SQLAlchemy's own execute."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, bindparam, literal, select, text, update
from sqlalchemy import exc as sa_exc

from agent import EventProcessor
from database import DatabaseConnection
from database.driver_sql import DriverStatement
from database.models import Event


def test_fills_parameters_and_keeps_literal_defaults(db: DatabaseConnection) -> None:
    stmt = DriverStatement(
        select(
            (bindparam("n", type_=Integer) + literal(40)).label("answer"),
            literal("fixed").label("word"),
        )
    )
    with db.session() as session:
        names, rows = stmt.fetchall(session.connection(), n=2)
    assert names == ["answer", "word"]
    assert rows == [(42, "fixed")]


def test_joins_the_session_transaction(db: DatabaseConnection) -> None:
    with db.session() as session:
        event_id = EventProcessor(session).enqueue_event("t", {}).id
    stmt = DriverStatement(
        update(Event).where(Event.id == bindparam("id", type_=Integer)).values(status="failed").returning(Event.id)
    )
    with db.session() as session:
        _, rows = stmt.fetchall(session.connection(), id=event_id)
        assert rows == [(event_id,)]
        session.rollback()  # the driver-level update belongs to the session's transaction
        assert session.execute(select(Event.status).where(Event.id == event_id)).scalar_one() == "pending"


def test_driver_errors_become_sqlalchemy_errors(db: DatabaseConnection) -> None:
    stmt = DriverStatement(select((literal(1) / bindparam("d", type_=Integer)).label("q")))
    with db.session() as session:
        with pytest.raises(sa_exc.DataError, match="division by zero") as caught:
            stmt.fetchall(session.connection(), d=0)
        assert caught.value.connection_invalidated is False
        session.rollback()
        assert stmt.fetchall(session.connection(), d=1)[1] == [(1,)]


def test_a_killed_backend_invalidates_the_connection(db: DatabaseConnection) -> None:
    stmt = DriverStatement(select(literal(1).label("one")))
    connection = db.engine.connect()
    try:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        connection.commit()
        with db.engine.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(sa_exc.OperationalError) as caught:
            stmt.fetchall(connection)
        assert caught.value.connection_invalidated is True
        assert connection.invalidated
    finally:
        connection.close()
    with db.session() as session:  # the pool hands out a working connection afterwards
        assert stmt.fetchall(session.connection())[1] == [(1,)]
