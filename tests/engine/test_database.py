"""The engine's SQLite configuration: writers queue for the write lock from the start of their
transaction, readers never take it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiosqlite.core as aiosqlite_core
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from scim.storage import write_queue
from scim.storage.database import create_engine, reads, unavailable
from scim.storage.write_queue import ProcessTurns, WriteQueue


@pytest.fixture
def statements(tmp_path_factory: pytest.TempPathFactory) -> tuple[AsyncEngine, list[str]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'x.db'}")
    seen: list[str] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda _connection, _cursor, statement, *_: seen.append(statement),
    )
    return engine, seen


async def test_a_transaction_takes_the_write_lock_at_once(
    statements: tuple[AsyncEngine, list[str]],
) -> None:
    engine, seen = statements
    async with engine.begin() as connection:
        await connection.execute(text("SELECT 1"))
    await engine.dispose()
    assert seen[:2] == ["BEGIN IMMEDIATE", "SELECT 1"]


async def test_autocommit_reads_take_no_lock(statements: tuple[AsyncEngine, list[str]]) -> None:
    engine, seen = statements
    reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with reader.connect() as connection:
        await connection.execute(text("SELECT 1"))
    await engine.dispose()
    assert "BEGIN IMMEDIATE" not in seen
    assert "SELECT 1" in seen


async def test_reads_neither_lock_nor_switch_the_isolation_level(
    statements: tuple[AsyncEngine, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read on SQLite is the statement's hand-offs to aiosqlite's thread (cursor, execute,
    fetch, close) and the pool's rollback: switching SQLAlchemy's isolation level to
    autocommit and back would add five, though the connection is in autocommit already."""
    engine, seen = statements
    handed: list[object] = []
    resolve = aiosqlite_core.set_result
    monkeypatch.setattr(
        aiosqlite_core, "set_result", lambda *args: (handed.append(args), resolve(*args))
    )

    async def read(reader: AsyncEngine) -> int:
        handed.clear()
        async with reader.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return len(handed)

    await read(reads(engine))  # the first connects
    assert await read(reads(engine)) == 5
    assert await read(engine.execution_options(isolation_level="AUTOCOMMIT")) == 10
    await engine.dispose()
    assert "BEGIN IMMEDIATE" not in seen


async def test_a_connection_handed_back_in_a_transaction_is_rolled_back(tmp_path: Path) -> None:
    """SQLite's pool rolls back on return only a connection in a transaction (a read hands
    its connection back without that hop to aiosqlite's thread): one handed back in a
    transaction keeps nothing of it and holds no write lock afterwards."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reset.db'}")
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        lent = await engine.raw_connection()
        driver = lent.driver_connection
        await driver.execute("BEGIN IMMEDIATE")
        await driver.execute("INSERT INTO t VALUES (1)")
        assert driver.in_transaction
        await greenlet_spawn(lent.close)
        assert not driver.in_transaction
        async with engine.begin() as connection:  # the write lock is free
            await connection.exec_driver_sql("INSERT INTO t VALUES (2)")
            kept = await connection.exec_driver_sql("SELECT n FROM t")
            assert list(kept.scalars()) == [2]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("pool_size", [5, 10])
async def test_concurrent_reads_keep_their_connections(tmp_path: Path, pool_size: int) -> None:
    """As many reads at once as the pool keeps open no connection after the first of each:
    a connection opened per request and closed after it is a thread, the file and its
    settings each time."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", pool_size=pool_size)
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda connection, _: opened.append(connection))
    reading = reads(engine)

    async def read() -> None:
        async with reading.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")
            await asyncio.sleep(0.01)  # all of them at once

    try:
        for _ in range(4):
            await asyncio.gather(*(read() for _ in range(pool_size)))
        assert len(opened) == pool_size
    finally:
        await engine.dispose()


async def test_writers_of_one_process_take_turns_in_the_order_they_came(tmp_path: Path) -> None:
    """Writers that find the write lock taken get it in the order they asked for it, each
    once the one before has committed or rolled back (SQLite's busy handler would wake them
    in whatever order their sleeps end); a rollback hands the lock on too."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    done: list[int] = []
    first_holds = asyncio.Event()
    let_go = asyncio.Event()

    async def write(n: int) -> None:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f"INSERT INTO t VALUES ({n})")
            if n == 0:
                first_holds.set()
                await let_go.wait()
            done.append(n)
            if n == 3:
                raise LookupError("rolled back")

    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        writers = [asyncio.create_task(write(0))]
        await first_holds.wait()
        for n in range(1, 8):
            writers.append(asyncio.create_task(write(n)))
            await asyncio.sleep(0.02)  # each asks after the one before
        let_go.set()
        results = await asyncio.gather(*writers, return_exceptions=True)
        assert [type(result) for result in results] == [
            *[type(None)] * 3,
            LookupError,
            *[type(None)] * 4,
        ]
        assert done == list(range(8))
        async with engine.connect() as connection:
            kept = await connection.exec_driver_sql("SELECT n FROM t ORDER BY n")
            assert list(kept.scalars()) == [0, 1, 2, 4, 5, 6, 7]
    finally:
        await engine.dispose()


async def test_a_writer_whose_connection_is_invalidated_gives_its_turn_on(
    tmp_path: Path,
) -> None:
    """A transaction whose connection was invalidated (a statement cancelled, the database
    gone) ends with a connection that no longer tells its driver's: its end still ends its
    turn, and the next writer writes."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'invalidated.db'}")
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        async with engine.connect() as connection:
            await connection.begin()
            await connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            await connection.invalidate()
        async with engine.begin() as connection:
            await connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        async with engine.connect() as connection:
            kept = await connection.exec_driver_sql("SELECT n FROM t")
            assert list(kept.scalars()) == [2]
    finally:
        await engine.dispose()


async def test_a_writer_that_waits_too_long_is_told_the_database_is_locked(
    tmp_path: Path,
) -> None:
    """As SQLite's busy handler ends: the error that tells a database unavailable (503),
    and the writer holding the lock is not disturbed."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'locked.db'}")
    queue = WriteQueue()
    try:
        async with engine.connect() as holding, engine.connect() as waiting:
            holder = (await holding.get_raw_connection()).dbapi_connection
            waiter = (await waiting.get_raw_connection()).dbapi_connection
            await queue.take(holder)
            with pytest.raises(OperationalError) as refused:
                await queue.take(waiter, timeout=0.05)
            assert "database is locked" in str(refused.value)
            assert unavailable(refused.value)
            queue.end(waiter)  # not its turn: nothing changes
            with pytest.raises(OperationalError):
                await queue.take(waiter, timeout=0.05)
            queue.end(holder)
            await queue.take(waiter, timeout=0.05)  # free now
    finally:
        await engine.dispose()


# Another process writing the database: it holds a write transaction until told to end it.
HOLDER = """
import asyncio, sys
from scim.storage.database import create_engine

async def main():
    engine = create_engine(sys.argv[1])
    async with engine.begin() as connection:
        await connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        print("holding", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await engine.dispose()

asyncio.run(main())
"""


async def test_writers_of_two_processes_take_turns(tmp_path: Path) -> None:
    """A writer of one process waits while another process writes, and writes once it has
    done (the turn between processes, ``ProcessTurns``), not in SQLite's busy handler: here
    SQLite's own wait is cut to 50 ms (for the moment between the other's turn and its
    commit, ``write_queue``), and would refuse it long before the other has done."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'two.db'}"
    engine = create_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def short_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            HOLDER,
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert holder.stdout is not None and holder.stdin is not None
        assert await holder.stdout.readline() == b"holding\n"

        async def write() -> None:
            async with engine.begin() as connection:
                await connection.exec_driver_sql("INSERT INTO t VALUES (2)")

        writing = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        assert not writing.done()  # waiting for its turn
        holder.stdin.write(b"done\n")
        await holder.stdin.drain()
        await writing
        assert await holder.wait() == 0
        async with engine.connect() as connection:
            kept = await connection.exec_driver_sql("SELECT n FROM t ORDER BY n")
            assert list(kept.scalars()) == [1, 2]
    finally:
        await engine.dispose()


async def test_a_process_keeps_its_turn_for_its_own_waiting_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process hands its turn to the others when none of its writers waits any more, or
    after ``RUN`` transactions in a row: not after each (every hand-over costs writes)."""
    database = tmp_path / "x.db"
    queue = WriteQueue(database)
    other = ProcessTurns(Path(f"{database}-writers"))
    first, second = object(), object()
    await queue.take(first)
    waiting = asyncio.create_task(queue.take(second))
    await asyncio.sleep(0.01)
    queue.end(first)
    with pytest.raises(OperationalError):
        await other.take(0.05)  # kept for the writer that waited
    await waiting
    queue.end(second)
    await other.take(1.0)  # no writer of the process waits: handed over
    other.end()

    monkeypatch.setattr(write_queue, "RUN", 1)
    await queue.take(first)
    waiting = asyncio.create_task(queue.take(second))
    await asyncio.sleep(0.01)
    queue.end(first)
    await other.take(1.0)  # the run was over: handed over though a writer waits
    await asyncio.sleep(0.05)
    assert not waiting.done()
    other.end()
    await waiting
    queue.end(second)


async def test_a_wait_given_up_on_never_lets_go_of_a_turn_taken_after_it(tmp_path: Path) -> None:
    """A wait that ran out leaves its thread waiting for the lock, to let it go once it has
    it; meanwhile its process may take the turn again. Letting go then must not end that
    turn: the wait locks a descriptor of its own (a flock belongs to an open file)."""
    path = tmp_path / "x.db-writers"
    holding, process, other = (ProcessTurns(path) for _ in range(3))
    await holding.take(1.0)
    with pytest.raises(OperationalError):
        await process.take(0.05)  # its thread still waits
    holding.end()
    await process.take(1.0)
    await asyncio.sleep(0.1)  # the wait given up on has had the lock and let it go
    with pytest.raises(OperationalError):
        await other.take(0.1)  # the turn is still the process's
    process.end()
    await other.take(1.0)
    other.end()


async def test_a_process_that_gives_up_its_wait_does_not_keep_the_turn(tmp_path: Path) -> None:
    """A wait that ran out, or was cancelled, lets the turn go as soon as it gets it: the
    next process takes it."""
    path = tmp_path / "x.db-writers"
    holding, waiting, cancelled, last = (ProcessTurns(path) for _ in range(4))
    await holding.take(1.0)
    with pytest.raises(OperationalError) as refused:
        await waiting.take(0.05)
    assert unavailable(refused.value)
    task = asyncio.create_task(cancelled.take(5.0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    holding.end()
    await last.take(5.0)
    last.end()
    await waiting.take(5.0)  # free again: neither given-up wait kept it


async def test_an_in_memory_database_shares_one_connection() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        async with engine.connect() as connection:  # the same database: the table is there
            await connection.exec_driver_sql("SELECT n FROM t")
    finally:
        await engine.dispose()


@pytest.mark.skipif(
    not os.environ.get("SCIM_TEST_DATABASE_URL"), reason="runs in the PostgreSQL pass"
)
async def test_postgresql_sessions_plan_for_many_small_requests(database_url: str) -> None:
    """Neither JIT compiling nor parallel helper processes: both cost a request more than
    they save it, and the helpers take cores from the requests beside it."""
    engine = create_engine(database_url)
    try:
        async with reads(engine).connect() as connection:
            jit = (await connection.execute(text("SHOW jit"))).scalar()
            helpers = (
                await connection.execute(text("SHOW max_parallel_workers_per_gather"))
            ).scalar()
    finally:
        await engine.dispose()
    assert (jit, helpers) == ("off", "0")


@pytest.mark.skipif(
    not os.environ.get("SCIM_TEST_DATABASE_URL"), reason="runs in the PostgreSQL pass"
)
async def test_postgresql_vacuums_resources_and_members_after_a_few_thousand_changes(
    engine: AsyncEngine,
) -> None:
    """Autovacuum's default waits for a fifth of a table to change; until it runs, a count
    or a member list reads the heap for every row written since (migration 0016)."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT relname, reloptions FROM pg_class "
                    "WHERE relname IN ('resources', 'members') AND relkind = 'r'"
                )
            )
        ).all()
    options = {name: dict(item.split("=") for item in listed or ()) for name, listed in rows}
    expected = {
        "autovacuum_vacuum_scale_factor": "0.005",
        "autovacuum_vacuum_threshold": "200",
        "autovacuum_vacuum_insert_scale_factor": "0.005",
        "autovacuum_vacuum_insert_threshold": "1000",
        "vacuum_index_cleanup": "on",
    }
    assert options == {"resources": expected, "members": expected}
