"""The ``scim`` command line, whose flags scripts depend on: ``scim db upgrade``, ``scim serve``."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from sqlalchemy import inspect

from scim.storage.database import create_engine, downgrade, upgrade
from tests.conftest import fresh_database


def _tables(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
                return set(names)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_db_upgrade_creates_the_schema_and_is_idempotent() -> None:
    with fresh_database() as url:
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, "-m", "scim.cli", "db", "upgrade", "--database", url],
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
        assert {"tenants", "resources", "members", "alembic_version"} <= _tables(url)


def test_db_upgrade_reads_the_database_from_the_environment() -> None:
    with fresh_database() as url:
        result = subprocess.run(
            [sys.executable, "-m", "scim.cli", "db", "upgrade"],
            capture_output=True,
            text=True,
            check=False,
            env={"SCIM_DATABASE_URL": url, "PATH": ""},
        )
        assert result.returncode == 0, result.stderr
        assert "resources" in _tables(url)


def test_migrations_downgrade_to_nothing_and_back() -> None:
    async def roundtrip(url: str) -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            await downgrade(engine, "base")
            await upgrade(engine)
        finally:
            await engine.dispose()

    with fresh_database() as url:
        asyncio.run(roundtrip(url))
        assert "resources" in _tables(url)


def test_demo_is_refused_off_loopback() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scim.cli",
            "serve",
            "--demo",
            "--host",
            "0.0.0.0",
            "--database",
            "sqlite+aiosqlite:///:memory:",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
