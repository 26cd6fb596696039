"""The engine's SQLite configuration: writers queue for the write lock from the start of their
transaction, readers never take it."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.storage.database import create_engine


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
