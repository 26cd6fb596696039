"""A statement built once, read outside any transaction: sent by the driver itself.

SQLAlchemy's execution of a statement (the compiled-cache lookup, an execution context, the
cursor adapter, result rows, each step through a greenlet) cost a GET by id about as much
CPU as the rest of the read: ~130 µs of ~600 (``tests/bench/README.md``). A statement that
is built once and kept (so that it is compiled once here too: GET's by its arguments, a
search's by its shape, ``scim.storage.kept``), read on a connection of
``database.reads`` (autocommit: no transaction the driver would have to be in), goes to
asyncpg or aiosqlite with the parameters SQLAlchemy would send, their bind processors
applied; its rows come back with the result processors of its columns applied, as named
tuples of its columns. Everything else goes through SQLAlchemy.

While anything listens to the engine's statements (``before_cursor_execute`` or
``after_cursor_execute``: tracing, the tests' own capture), every statement goes through
SQLAlchemy, so that the listener hears them all.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from scim.storage import database

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Prepared:
    """What a statement becomes once for the driver: its SQL, the order of its parameters
    with their bind processors, the values of those it fixes itself, its columns' result
    processors and its row type (a named tuple)."""

    sql: str
    order: tuple[tuple[str, Processor], ...]
    fixed: Mapping[str, Any]
    results: tuple[Processor, ...]
    row: Any


# Per statement, as long as it is kept, and per dialect (a statement may serve both);
# None: it goes through SQLAlchemy.
_prepared: weakref.WeakKeyDictionary[Select[Any], dict[str, Any]] = weakref.WeakKeyDictionary()
_UNSEEN = object()


def _prepare(statement: Select[Any], connection: AsyncConnection) -> _Prepared | None:
    """The statement as the driver takes it; None if its SQL depends on the values it is
    given (``literal_execute``) or a column's name is not one a row can be read by."""
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    if compiled.literal_execute_params or compiled.post_compile_params:
        return None
    keys = [column.key or "" for column in statement.selected_columns]
    if not all(key.isidentifier() and not key.startswith("_") for key in keys):
        return None
    names = compiled.bind_names
    processors = {
        name: bind.type.dialect_impl(dialect).bind_processor(dialect)
        for bind, name in names.items()
    }
    order = tuple((name, processors.get(name)) for name in compiled.positiontup or ())
    fixed = {name: bind.effective_value for bind, name in names.items() if not bind.required}
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in statement.selected_columns
    )
    return _Prepared(compiled.string, order, fixed, results, namedtuple("Row", keys))


def _direct(connection: AsyncConnection) -> bool:
    sync = connection.sync_connection
    return (
        sync is not None
        and connection.dialect.driver in ("asyncpg", "aiosqlite")
        and database.reading(sync)
        and not sync.dispatch.before_cursor_execute
        and not sync.dispatch.after_cursor_execute
    )


async def _records(
    connection: AsyncConnection, driver: Any, sql: str, arguments: list[Any], one: bool
) -> Sequence[Sequence[Any]]:
    if connection.dialect.driver == "asyncpg":
        if one:
            record = await driver.fetchrow(sql, *arguments)
            return () if record is None else (record,)
        records: Sequence[Sequence[Any]] = await driver.fetch(sql, *arguments)
        return records
    fetched: Sequence[Sequence[Any]] = await driver.execute_fetchall(sql, arguments)
    return fetched  # aiosqlite: one hop to its thread


async def first(
    connection: AsyncConnection, statement: Select[Any], parameters: Mapping[str, Any]
) -> Any:
    """The first row of a statement that reads one: ``(await connection.execute(...))
    .first()``, with the same columns, read by the driver itself where it can be (above)."""
    found = await _read(connection, statement, parameters, one=True)
    return found[0] if found else None


async def rows(
    connection: AsyncConnection, statement: Select[Any], parameters: Mapping[str, Any]
) -> Sequence[Any]:
    """Every row of a statement: ``(await connection.execute(...)).all()``, read by the
    driver itself where it can be (above)."""
    return await _read(connection, statement, parameters, one=False)


async def _read(
    connection: AsyncConnection, statement: Select[Any], parameters: Mapping[str, Any], one: bool
) -> Sequence[Any]:
    prepared = None
    if _direct(connection):
        by_dialect = _prepared.get(statement)
        if by_dialect is None:
            by_dialect = _prepared[statement] = {}
        dialect = connection.dialect.name
        prepared = by_dialect.get(dialect, _UNSEEN)
        if prepared is _UNSEEN:
            prepared = by_dialect[dialect] = _prepare(statement, connection)
    if prepared is None:
        result = await connection.execute(statement, dict(parameters))
        if one:
            row = result.first()
            return () if row is None else (row,)
        return list(result.all())
    values = {**prepared.fixed, **parameters}
    arguments = [
        values[name] if processor is None else processor(values[name])
        for name, processor in prepared.order
    ]
    driver = (await connection.get_raw_connection()).driver_connection
    try:
        records = await _records(connection, driver, prepared.sql, arguments, one)
    except Exception as error:
        # As SQLAlchemy's execution would: the error is a DBAPIError that tells a broken
        # connection (PostgreSQL restarted; ``database.unavailable``: 503), and the broken
        # connection is replaced.
        is_closed = getattr(driver, "is_closed", None)
        broken = is_closed is not None and is_closed()
        if broken:
            await connection.invalidate()
        raise DBAPIError.instance(
            prepared.sql,
            arguments,
            error,
            Exception,
            connection_invalidated=broken,
            dialect=connection.dialect,
        ) from error
    make, results = prepared.row._make, prepared.results
    return [
        make(
            value if processor is None else processor(value)
            for value, processor in zip(record, results, strict=True)
        )
        for record in (records[:1] if one else records)
    ]
