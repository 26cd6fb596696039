"""Engines and schema migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState
from sqlalchemy.util import await_only

from scim.storage.write_queue import WriteQueue

MIGRATIONS = Path(__file__).parent / "migrations"


def _json_loads(value: str | bytes) -> Any:
    return msgspec.json.decode(value)


def json_dumps(value: Any) -> str:
    """JSON columns as the engine writes them (also for PostgreSQL's COPY, see Repository)."""
    return msgspec.json.encode(value).decode()


# How the server's PostgreSQL sessions plan: for many small requests side by side, not for one
# big query at a time. JIT compiling added ~25 ms to counting an organisation's users. A
# parallel plan (the default allows two helper processes per query) made the count of a
# ``co`` search in an organisation of 166,000 users take 23 ms instead of 13 alone, and under
# eight clients it took the cores the other requests needed.
SESSION_SETTINGS = {"jit": "off", "max_parallel_workers_per_gather": "0"}


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Build the engine the server and the CLI share.

    SQLite gets WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` for
    every transaction that may write, so two writers queue instead of one of them
    failing when it upgrades its read lock.
    """
    parsed = make_url(url)
    options: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": _json_loads}
    if parsed.get_backend_name() == "postgresql":
        # Fail fast when the database is down or the pool is exhausted: the request gets a
        # 503 within seconds instead of hanging. A connection that broke (a restart) makes
        # SQLAlchemy replace the whole pool, so service resumes by itself.
        options.update(
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
            pool_timeout=5,
            connect_args={"timeout": 5, "server_settings": SESSION_SETTINGS},
        )
    if parsed.get_backend_name() == "sqlite":
        # Rolled back on return only when in a transaction (``_on_reset``).
        options["pool_reset_on_return"] = None
        if _in_a_file(parsed):
            # As many kept as PostgreSQL's: with SQLAlchemy's five, every request beyond the
            # fifth at once opened a connection (a thread, the file, its settings) and
            # closed it after (eight clients' GET: 0.49 → 0.38 ms of CPU, p99 29 → 4.5 ms).
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_timeout=5)
    engine = create_async_engine(url, **options)
    if parsed.get_backend_name() == "sqlite":
        queue = None
        if _in_a_file(parsed):
            # A URI names its file its own way: its writers queue within the process only.
            file = parsed.database
            queue = WriteQueue(Path(file) if file and not parsed.query.get("uri") else None)
        _configure_sqlite(engine, queue)
    if parsed.get_backend_name() == "postgresql":
        _configure_postgresql(engine)
    return engine


def _in_a_file(url: URL) -> bool:
    """Whether a SQLite URL names a file: its connections are pooled (an in-memory
    database's are one, shared)."""
    return url.database not in (None, "", ":memory:") and url.query.get("mode") != "memory"


def _configure_postgresql(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        """Begin the driver's transaction when SQLAlchemy's begins, not with its first
        statement as the asyncpg adapter does (its ``_start_transaction``): then that
        statement too is sent by the driver itself (``scim.storage.direct``), as those after
        it are. Where BEGIN fails, the first statement begins the transaction through
        SQLAlchemy, which tells and handles the failure as for any statement."""
        adapter = connection.connection.dbapi_connection
        start = getattr(adapter, "_start_transaction", None)
        if start is None or getattr(adapter, "_transaction", None) is not None:
            return  # another adapter, or a transaction already begun
        with suppress(Exception):
            await_only(start())


def _configure_sqlite(engine: AsyncEngine, queue: WriteQueue | None) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # LIKE compiles co/sw/ew; caseExact=false keys and operands are already lowered,
        # so LIKE must not fold ASCII case itself (externalId sw "ext" != "EXT-1").
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()
        # SQLite's own lower() folds ASCII only; names here are Swedish.
        dbapi_connection.create_function("lower", 1, _casefold, deterministic=True)

    @event.listens_for(engine.sync_engine.pool, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
        # The pool's rollback on return, but not for a connection in no transaction (every
        # read's, in autocommit): it would cost a hop to aiosqlite's thread, ~60 µs, per read.
        if (
            state.asyncio_safe
            and not state.transaction_was_reset
            and dbapi_connection.driver_connection.in_transaction
        ):
            dbapi_connection.rollback()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Reads (``reads``) must not take the write lock: with several workers they would
        # queue behind each other and the writers.
        if reading(connection):
            return
        if queue is None:  # in memory: one connection, shared
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        # The process's writers in turn (``write_queue``); the turn known by the connection
        # (which an invalidated one no longer tells its driver's) and by the driver's.
        await_only(queue.take(connection, connection.connection.dbapi_connection))
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            queue.end(connection)
            raise

    if queue is not None:

        @event.listens_for(engine.sync_engine, "commit")
        @event.listens_for(engine.sync_engine, "rollback")
        def _on_end(connection: Connection) -> None:
            queue.end(connection)

        @event.listens_for(engine.sync_engine.pool, "checkin")
        def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
            queue.end(dbapi_connection)  # a transaction whose end was not seen


_READS = "scim_reads"


def reading(connection: Connection | Engine) -> bool:
    """Whether a connection (or engine) is one of ``reads``: its statements in no
    transaction."""
    options = connection.get_execution_options()
    return options.get("isolation_level") == "AUTOCOMMIT" or bool(options.get(_READS))


def reads(engine: AsyncEngine) -> AsyncEngine:
    """The engine for work that only reads: each statement on its own, in no transaction (on
    SQLite none takes the write lock). PostgreSQL: autocommit. SQLite's connections are in
    autocommit already (``_on_connect``): they are only marked, as switching SQLAlchemy's
    isolation level would cost five hand-offs to aiosqlite's thread per checkout."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{_READS: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _casefold(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


@cache
def alembic_script() -> ScriptDirectory:
    """The migrations this code comes with (their head is the schema it expects)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply the migrations up to ``revision``."""
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(_alembic_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(_alembic_config(sync), revision))


async def revision(engine: AsyncEngine) -> str | None:
    """The migration the database is at (None: never migrated); the driver's error if the
    database cannot be reached."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        try:
            version = await connection.execute(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:  # no migration table
            return None
        current: str | None = version.scalar()
        return current


# PostgreSQL's SQLSTATEs for "not now": connection exceptions (class 08), shutting down or
# starting up (57P01–57P03), too many connections (53300).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def unavailable(error: BaseException) -> bool:
    """Whether an error means "the database cannot be reached now" (down, restarting, pool
    exhausted) rather than a fault in this request."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated or isinstance(error, OperationalError | InterfaceError):
            return True
        driver_error = error.orig
        state = getattr(driver_error, "sqlstate", None) or getattr(
            getattr(driver_error, "__cause__", None), "sqlstate", None
        )
        return isinstance(state, str) and state.startswith(_UNAVAILABLE_STATES)
    return isinstance(error, SQLAlchemyTimeoutError | OSError | TimeoutError)
