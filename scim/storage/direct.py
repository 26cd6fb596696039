"""A statement built once, read in autocommit on PostgreSQL: sent by asyncpg itself.

SQLAlchemy's execution of a statement (the compiled-cache lookup, an execution context, the
cursor adapter, result rows, each step through a greenlet) cost a GET by id about as much
CPU as the rest of the read: ~130 µs of ~600 (``tests/bench/README.md``). A statement that
is built once and kept (so that it is compiled once here too), read on a connection in
autocommit (``database.reads``: no transaction that the driver would have to be in), goes
to asyncpg with the parameters SQLAlchemy would send, their bind processors applied, and its
row comes back as a named tuple of the statement's columns. Everything else, and everything
on SQLite, goes through SQLAlchemy.

While anything listens to the engine's statements (``before_cursor_execute`` or
``after_cursor_execute``: tracing, the tests' own capture), every statement goes through
SQLAlchemy, so that the listener hears them all.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select


@dataclass(frozen=True)
class _Prepared:
    """What a statement becomes once for asyncpg: its SQL, the order of its parameters with
    their bind processors, the values of those it fixes itself, and its row type."""

    sql: str
    order: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    fixed: Mapping[str, Any]
    row: Any  # a named tuple's class


# Per statement, as long as it is kept; None: it goes through SQLAlchemy.
_prepared: weakref.WeakKeyDictionary[Select[Any], _Prepared | None] = weakref.WeakKeyDictionary()


def _prepare(statement: Select[Any], connection: AsyncConnection) -> _Prepared | None:
    """The statement as asyncpg takes it; None if its SQL depends on the values it is given
    (``literal_execute``) or its rows need SQLAlchemy to process them."""
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    if compiled.literal_execute_params or compiled.post_compile_params:
        return None
    if any(
        column.type.dialect_impl(dialect).result_processor(dialect, None) is not None
        for column in statement.selected_columns
    ):
        return None
    processors = {
        compiled.bind_names[bind]: bind.type.dialect_impl(dialect).bind_processor(dialect)
        for bind in compiled.binds.values()
    }
    order = tuple((name, processors.get(name)) for name in compiled.positiontup or ())
    names = compiled.bind_names
    fixed = {name: bind.effective_value for bind, name in names.items() if not bind.required}
    keys = [column.key or "" for column in statement.selected_columns]
    if not all(key.isidentifier() and not key.startswith("_") for key in keys):
        return None  # not a row's attribute name
    return _Prepared(compiled.string, order, fixed, namedtuple("Row", keys))


def _direct(connection: AsyncConnection) -> bool:
    sync = connection.sync_connection
    return (
        sync is not None
        and connection.dialect.driver == "asyncpg"
        and sync.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        and not sync.dispatch.before_cursor_execute
        and not sync.dispatch.after_cursor_execute
    )


async def first(
    connection: AsyncConnection, statement: Select[Any], parameters: Mapping[str, Any]
) -> Any:
    """The statement's first row, or None: ``(await connection.execute(...)).first()``, with
    the same columns, read by the driver itself where it can be (above)."""
    prepared = None
    if _direct(connection):
        if statement in _prepared:
            prepared = _prepared[statement]
        else:
            prepared = _prepared[statement] = _prepare(statement, connection)
    if prepared is None:
        return (await connection.execute(statement, dict(parameters))).first()
    values = {**prepared.fixed, **parameters}
    arguments = [
        values[name] if processor is None else processor(values[name])
        for name, processor in prepared.order
    ]
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    try:
        record = await driver.fetchrow(prepared.sql, *arguments)  # type: ignore[union-attr]
    except Exception as error:
        # As SQLAlchemy's execution would: the error is a DBAPIError that tells a broken
        # connection (the database restarted; ``database.unavailable``: 503), and the broken
        # connection is replaced.
        broken = driver is None or driver.is_closed()
        if broken:
            await connection.invalidate()
        raise DBAPIError.instance(
            prepared.sql, arguments, error, Exception, connection_invalidated=broken
        ) from error
    return None if record is None else prepared.row._make(record)
