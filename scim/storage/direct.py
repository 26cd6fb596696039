"""A statement built once, read outside any transaction or sent in one the driver has begun:
sent by the driver itself.

SQLAlchemy's execution of a statement (the compiled-cache lookup, an execution context, the
cursor adapter, result rows, each step through a greenlet) cost a GET by id about as much
CPU as the rest of the read: ~130 µs of ~600 (``tests/bench/README.md``). A statement that
is built once and kept (so that it is compiled once here too: GET's by its arguments, a
search's by its shape, ``scim.storage.kept``), read on a connection of
``database.reads`` (autocommit: no transaction the driver would have to be in), goes to
asyncpg or aiosqlite with the parameters SQLAlchemy would send, their bind processors
applied; its rows come back with the result processors of its columns applied, as named
tuples of its columns. Everything else goes through SQLAlchemy.

In a write's transaction (``write``, and reads on its connection) the same holds once the
driver is in the transaction, which it is from SQLAlchemy's BEGIN on: PostgreSQL's begins
then (``database._configure_postgresql``; SQLAlchemy's asyncpg adapter alone would begin it
with the first statement, sending that one itself), SQLite's with ``BEGIN IMMEDIATE``. A
PATCH's statements so cost 0.2 ms less of server CPU. A unique key or a reference that fails
is the ``IntegrityError`` SQLAlchemy raises.

A request that only reads needs no SQLAlchemy connection at all (its ``Source`` is the
engine of ``database.reads``): each direct read takes the pool's connection for itself and
hands it back, at about a third of what checking out and closing a SQLAlchemy connection
costs (GET by id on PostgreSQL: 0.79 → 0.63 ms of server CPU per request; on SQLite, whose
pool rolls back only a connection in a transaction, ``database._on_reset``: 0.96 → 0.82);
only a statement SQLAlchemy must execute opens one. The server's reads go further (``keep``):
a connection handed back is kept for the next read, up to the pool's size, and the pool's
checkout and return (each through a greenlet) are left out (0.25 → 0.19 ms).

While anything listens to the engine's statements (``before_cursor_execute`` or
``after_cursor_execute``: tracing, the tests' own capture), every statement goes through
SQLAlchemy, so that the listener hears them all.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Dialect, Table, bindparam, event, insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import Delete, Insert, Select, Update
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.util import greenlet_spawn

from scim.storage import database

Processor = Callable[[Any], Any] | None
T = TypeVar("T")
Statement = Select[Any] | Insert | Update | Delete
# Where a read is made: a connection already checked out, or the engine whose pool lends one
# for this read alone.
Source = AsyncConnection | AsyncEngine


@dataclass(frozen=True)
class _Prepared:
    """What a statement becomes once for the driver: its SQL, the order of its parameters
    with their bind processors, the values of those it fixes itself, its columns' result
    processors (by column, for those that have one) and its row type (a named tuple); and
    the values it writes into its SQL (``literal_execute``: a ``co`` pattern), each by its
    placeholder in ``sql``, written as its statement's compiled form writes them (``_sql``)."""

    sql: str
    order: tuple[tuple[str, Processor], ...]
    fixed: Mapping[str, Any]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    row: Any
    written: tuple[tuple[str, str, BindParameter[Any]], ...] = ()
    compiled: SQLCompiler | None = None


# Per statement, as long as it is kept, and per dialect (a statement may serve both);
# None: it goes through SQLAlchemy.
_prepared: weakref.WeakKeyDictionary[Statement, dict[str, Any]] = weakref.WeakKeyDictionary()
_UNSEEN = object()


def _prepare(statement: Statement, dialect: Dialect) -> _Prepared | None:
    """The statement as the driver takes it; None if its SQL depends on the number of
    values it is given (an expanding IN) or a column's name is not one a row can be read
    by."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if compiled.post_compile_params:
        return None
    names = compiled.bind_names
    written = tuple(
        (names[bind], f"__[POSTCOMPILE_{names[bind]}]", bind)
        for bind in compiled.literal_execute_params
    )
    if not all(placeholder in compiled.string for _, placeholder, _ in written):
        return None  # a name escaped, or a type's own SQL around it: SQLAlchemy's to write
    # What it reads: a SELECT's columns, what an INSERT, UPDATE or DELETE returns.
    columns = (
        statement.selected_columns if isinstance(statement, Select) else statement.exported_columns
    )
    keys = [column.key or "" for column in columns]
    if not all(key.isidentifier() and not key.startswith("_") for key in keys):
        return None
    processors = {
        name: bind.type.dialect_impl(dialect).bind_processor(dialect)
        for bind, name in names.items()
    }
    in_sql = {name for name, _, _ in written}
    order = tuple(
        (name, processors.get(name)) for name in compiled.positiontup or () if name not in in_sql
    )
    fixed = {name: bind.effective_value for bind, name in names.items() if not bind.required}
    results = tuple(
        (index, processor)
        for index, column in enumerate(columns)
        if (processor := column.type.dialect_impl(dialect).result_processor(dialect, None))
    )
    return _Prepared(
        compiled.string,
        order,
        fixed,
        results,
        namedtuple("Row", keys),
        written,
        compiled if written else None,
    )


def _sql(prepared: _Prepared, parameters: Mapping[str, Any]) -> str:
    """The statement's SQL for these parameters: those it writes in written as SQLAlchemy's
    execution writes them (``render_literal_bindparam``: quoted, quotes doubled)."""
    sql = prepared.sql
    if prepared.compiled is not None:
        values = {**prepared.fixed, **parameters}
        for name, placeholder, bind in prepared.written:
            value = prepared.compiled.render_literal_bindparam(  # type: ignore[no-untyped-call]
                bind, render_literal_value=values[name]
            )
            sql = sql.replace(placeholder, value)
    return sql


def _unheard(sync: Connection | Engine) -> bool:
    """Whether a statement on ``sync`` may go to the driver itself: a driver this module
    knows, and nothing listening to SQLAlchemy's statements."""
    return (
        sync.dialect.driver in ("asyncpg", "aiosqlite")
        and not sync.dispatch.before_cursor_execute
        and not sync.dispatch.after_cursor_execute
    )


def _in_transaction(driver: Any) -> bool:
    """Whether the driver's connection is in its transaction (begun with SQLAlchemy's, in
    ``database``), so that a statement the driver sends is in it too; not where no
    transaction was begun, or its BEGIN failed (then SQLAlchemy sends the statement)."""
    asyncpg_in_transaction = getattr(driver, "is_in_transaction", None)
    if asyncpg_in_transaction is not None:
        return bool(asyncpg_in_transaction())
    return bool(getattr(driver, "in_transaction", False))  # aiosqlite


def _prepared_for(statement: Statement, dialect: Dialect) -> _Prepared | None:
    by_dialect = _prepared.get(statement)
    if by_dialect is None:
        by_dialect = _prepared[statement] = {}
    prepared: _Prepared | None = by_dialect.get(dialect.name, _UNSEEN)
    if prepared is _UNSEEN:
        prepared = by_dialect[dialect.name] = _prepare(statement, dialect)
    return prepared


def _arguments(prepared: _Prepared, parameters: Mapping[str, Any]) -> list[Any]:
    """The parameters in the statement's order, as SQLAlchemy would send them."""
    values = {**prepared.fixed, **parameters}
    return [
        values[name] if processor is None else processor(values[name])
        for name, processor in prepared.order
    ]


async def execute(source: Source, statement: Any, parameters: Any = None) -> Any:
    """``connection.execute`` on the source: an engine's opens a connection for it alone
    (the result is buffered, as every result of an async connection is)."""
    if isinstance(source, AsyncEngine):
        async with source.connect() as connection:
            return await connection.execute(statement, parameters)
    return await source.execute(statement, parameters)


async def _records(
    dialect: Dialect, driver: Any, sql: str, arguments: list[Any], one: bool
) -> Sequence[Sequence[Any]]:
    if dialect.driver == "asyncpg":
        if one:
            record = await driver.fetchrow(sql, *arguments)
            return () if record is None else (record,)
        records: Sequence[Sequence[Any]] = await driver.fetch(sql, *arguments)
        return records
    fetched: Sequence[Sequence[Any]] = await driver.execute_fetchall(sql, arguments)
    return fetched  # aiosqlite: one hop to its thread


async def _count(dialect: Dialect, driver: Any, sql: str, arguments: list[Any]) -> int:
    """The rows a statement wrote, as the driver tells them."""
    if dialect.driver == "asyncpg":
        status: str = await driver.execute(sql, *arguments)  # "UPDATE 1", "INSERT 0 1"
        return int(status.rpartition(" ")[2])
    cursor = await driver.execute(sql, arguments)
    try:
        return int(cursor.rowcount)
    finally:
        await cursor.close()


async def first(source: Source, statement: Statement, parameters: Mapping[str, Any]) -> Any:
    """The first row of a statement that reads one: ``(await connection.execute(...))
    .first()``, with the same columns, read by the driver itself where it can be (above)."""
    found = await _read(source, statement, parameters, one=True)
    return found[0] if found else None


async def rows(
    source: Source, statement: Select[Any], parameters: Mapping[str, Any]
) -> Sequence[Any]:
    """Every row of a statement: ``(await connection.execute(...)).all()``, read by the
    driver itself where it can be (above)."""
    return await _read(source, statement, parameters, one=False)


async def _read(
    source: Source, statement: Statement, parameters: Mapping[str, Any], one: bool
) -> Sequence[Any]:
    sync = source.sync_engine if isinstance(source, AsyncEngine) else source.sync_connection
    driver = None
    if isinstance(source, AsyncConnection):
        driver = (await source.get_raw_connection()).driver_connection
    prepared = None
    # Read where no transaction is (``database.reads``), or in the driver's own.
    if sync is not None and _unheard(sync) and (database.reading(sync) or _in_transaction(driver)):
        prepared = _prepared_for(statement, source.dialect)
    if prepared is None:
        result = await execute(source, statement, dict(parameters))
        if one:
            row = result.first()
            return () if row is None else (row,)
        return list(result.all())
    arguments = _arguments(prepared, parameters)
    sql = _sql(prepared, parameters)
    if isinstance(source, AsyncEngine):
        lent = await _lent(source)
        try:
            driver = lent.driver_connection
            records = await _sent(
                source.dialect,
                driver,
                (sql, arguments),
                partial(_records, source.dialect, driver, sql, arguments, one),
                lambda: greenlet_spawn(lent.invalidate),
            )
        except BaseException:
            # Cancelled mid-statement, or failed: the pool's return makes it fit for reuse.
            await greenlet_spawn(lent.close)
            raise
        await _handed_back(source, lent)
    else:
        records = await _sent(
            source.dialect,
            driver,
            (sql, arguments),
            partial(_records, source.dialect, driver, sql, arguments, one),
            source.invalidate,
        )
    make, results = prepared.row._make, prepared.results
    read = records[:1] if one else records
    if not results:
        return [make(record) for record in read]
    rows = []
    for record in read:
        values = list(record)
        for index, processor in results:
            values[index] = processor(values[index])
        rows.append(make(values))
    return rows


async def write(
    connection: AsyncConnection, statement: Statement, parameters: Mapping[str, Any]
) -> int:
    """The rows an INSERT, UPDATE or DELETE built once (kept) wrote: ``(await
    connection.execute(...)).rowcount``, sent by the driver itself in the transaction it is
    in (``_in_transaction``), as reads are; through SQLAlchemy before that."""
    driver = (await connection.get_raw_connection()).driver_connection
    prepared = None
    sync = connection.sync_connection
    if sync is not None and _unheard(sync) and _in_transaction(driver):
        prepared = _prepared_for(statement, connection.dialect)
    if prepared is None:
        return int((await connection.execute(statement, dict(parameters))).rowcount)
    arguments = _arguments(prepared, parameters)
    sql = _sql(prepared, parameters)
    return await _sent(
        connection.dialect,
        driver,
        (sql, arguments),
        partial(_count, connection.dialect, driver, sql, arguments),
        connection.invalidate,
    )


@cache
def inserting(table: Table, columns: tuple[str, ...]) -> Insert:
    """One row of these columns, its values bound by name: built once, so that ``write``
    sends it by the driver (an ``insert(table)`` takes its columns from each execution's
    values, which only SQLAlchemy's execution gives it)."""
    return insert(table).values(
        {name: bindparam(name, type_=table.c[name].type) for name in columns}
    )


class _Kept:
    """The connections an engine's direct reads keep between reads (``keep``): taking one
    and handing it back is a list's pop and append, where the pool's checkout and return
    are each a hop through a greenlet (a GET by id: 0.25 → 0.19 ms of server CPU)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.idle: list[Any] = []


# Per pool: an engine's, replaced with it on dispose; only an engine given to ``keep`` (the
# server's) keeps connections.
_kept: weakref.WeakKeyDictionary[Any, _Kept] = weakref.WeakKeyDictionary()


def keep(engine: AsyncEngine, most: int) -> None:
    """Let direct reads on ``engine`` (and every engine sharing its pool, as those of
    ``database.reads`` do) keep up to ``most`` connections of its pool between reads; the
    rest of the pool (its size and overflow) stays for everything else. Disposing of the
    engine closes them."""
    sync = engine.sync_engine
    if not isinstance(sync.pool, QueuePool):
        return  # a pool that lends one connection to all (SQLite in memory)
    kept = _kept[sync.pool] = _Kept(most)

    @event.listens_for(sync, "engine_disposed")
    def _disposed(disposed: Engine) -> None:
        # Within dispose's greenlet, so closing may wait for the driver.
        idle, kept.idle = kept.idle, []
        for connection in idle:
            connection.invalidate()
        _kept[disposed.pool] = kept


def kept_idle(engine: AsyncEngine) -> int:
    """How many of the engine's pool's checked-out connections are kept idle (``keep``)."""
    kept = _kept.get(engine.sync_engine.pool)
    return len(kept.idle) if kept is not None else 0


async def _lent(engine: AsyncEngine) -> Any:
    """A connection of the engine's pool: one kept (``keep``) if any, unless the database
    closed it meanwhile (a restart: then the pool's). Failing to get one is never the
    request's fault: the error tells a connection that could not be had
    (``database.unavailable``: 503), as when the pool's connection broke while it was being
    checked out or opened."""
    kept = _kept.get(engine.sync_engine.pool)
    while kept is not None and kept.idle:
        connection = kept.idle.pop()
        if not _closed(connection.driver_connection):
            return connection
        await greenlet_spawn(connection.invalidate)
    try:
        return await engine.raw_connection()
    except Exception as error:
        raise DBAPIError.instance(
            None, None, error, Exception, connection_invalidated=True, dialect=engine.dialect
        ) from error


async def _handed_back(engine: AsyncEngine, connection: Any) -> None:
    """A connection ``_lent`` lent, after a read that completed: kept if there is room."""
    kept = _kept.get(engine.sync_engine.pool)
    if (
        kept is not None
        and len(kept.idle) < kept.most
        and connection.is_valid
        and not _closed(connection.driver_connection)
    ):
        kept.idle.append(connection)
    else:
        await greenlet_spawn(connection.close)


def _closed(driver: Any) -> bool:
    """Whether the driver knows its connection closed (asyncpg does; aiosqlite's closes
    only when the pool closes it)."""
    is_closed = getattr(driver, "is_closed", None)
    return is_closed is not None and bool(is_closed())


async def _sent(
    dialect: Dialect,
    driver: Any,
    sent: tuple[str, list[Any]],
    send: Callable[[], Awaitable[T]],
    invalidate: Callable[[], Awaitable[Any]],
) -> T:
    """What ``send`` gets from the driver for a statement (its SQL and arguments). An error
    is a DBAPIError, as SQLAlchemy's execution would raise, that tells a broken connection
    (PostgreSQL restarted; ``database.unavailable``: 503), and the broken connection is
    replaced (``invalidate``)."""
    try:
        return await send()
    except Exception as error:
        broken = _closed(driver)
        if broken:
            await invalidate()
        sql, arguments = sent
        if isinstance(error, asyncpg.IntegrityConstraintViolationError):
            # SQLAlchemy's adapter names it so (a unique key, a reference); sqlite3 does.
            raise IntegrityError(sql, arguments, error) from error
        raise DBAPIError.instance(
            sql, arguments, error, Exception, connection_invalidated=broken, dialect=dialect
        ) from error
