"""The ``scim`` command line, whose flags scripts depend on: ``scim db upgrade``, ``scim serve``."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, inspect, select

from scim.storage.database import create_engine, downgrade, upgrade
from scim.storage.tables import resources, tenants
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


def test_migration_0005_folds_the_stored_keys_and_keeps_the_first_holder(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Keys stored by lower() are folded anew; of two names that only now read the same, the
    one whose key does not change keeps it, and the other is named in the log."""
    now = datetime.now(UTC)
    nfd = unicodedata.normalize("NFD", "Åsa")
    full_width = "".join(chr(0xFF21 + ord(c) - ord("A")) for c in "ADMIN")
    stored = {  # id: userName, displayName
        "u1": ("straße", "Gatan"),
        "u2": ("STRASSE", None),
        "u3": (nfd, full_width),
        "u4": ("plain", "Plain"),
    }

    async def run(url: str) -> dict[str, tuple[str | None, str | None]]:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0004")
            async with engine.begin() as connection:
                await connection.execute(
                    insert(tenants).values(
                        id=1, name="Kommunen", org_number="2120000142", kind="kommun", created=now
                    )
                )
                for number, (resource_id, (user_name, display)) in enumerate(stored.items()):
                    data = {"userName": user_name, **({"displayName": display} if display else {})}
                    await connection.execute(
                        insert(resources).values(
                            tenant_id=1,
                            id=resource_id,
                            resource_type="User",
                            created=now + timedelta(seconds=number),
                            last_modified=now,
                            version=1,
                            user_name_key=user_name.lower(),
                            display_name_key=display.lower() if display else None,
                            data=data,
                        )
                    )
            await upgrade(engine)
            keys = await read_keys(engine)
            await downgrade(engine, "0004")
            assert await read_keys(engine) == {
                rid: (name.lower(), display.lower() if display else None)
                for rid, (name, display) in stored.items()
            }
            return keys
        finally:
            await engine.dispose()

    async def read_keys(engine: Any) -> dict[str, tuple[str | None, str | None]]:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(resources.c.id, resources.c.user_name_key, resources.c.display_name_key)
            )
            return {row.id: (row.user_name_key, row.display_name_key) for row in rows}

    with caplog.at_level(logging.WARNING), fresh_database() as url:
        keys = asyncio.run(run(url))
    assert keys == {
        "u1": ("straße", "gatan"),  # "strasse" is u2's: u1 keeps its old key
        "u2": ("strasse", None),
        "u3": ("åsa", "admin"),
        "u4": ("plain", "plain"),
    }
    assert unicodedata.is_normalized("NFC", keys["u3"][0] or "")
    warned = [record.getMessage() for record in caplog.records]
    assert any("u1" in message and "u2" in message for message in warned), warned
