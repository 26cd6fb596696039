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
from sqlalchemy import column, insert, inspect, select, table, text, update

from scim.app import create_app
from scim.operator import Operator
from scim.settings import Settings
from scim.storage.database import create_engine, downgrade, upgrade
from scim.storage.tables import Document, resources, tenants
from tests.conftest import api_client, fresh_database


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


def test_migration_0006_moves_stored_documents_to_the_new_extension_urn() -> None:
    """A user and a group stored under the old URNs are read, filtered and written under the
    new ones after ``scim db upgrade``; downgrading puts the old ones back."""
    old = "urn:behorigheter:scim:schemas:extension:eservices:1.0:"
    new = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:"
    core = "urn:ietf:params:scim:schemas:core:2.0:"
    now = datetime.now(UTC)
    permission = "ansok-om-statlig-ersattning:grundersattning"
    user = {
        "schemas": [f"{core}User", f"{old}User"],
        "userName": "kvar@stockholm.se",
        "name": {"givenName": "Kvar", "familyName": "Sedan"},
        "emails": [{"value": "kvar@stockholm.se"}],
        f"{old}User": {"hsaId": "SE2120000142-OLD1", "permissions": [{"value": permission}]},
    }
    group = {
        "schemas": [f"{core}Group", f"{old}Group"],
        "displayName": "Handläggare",
        f"{old}Group": {"permissions": [{"value": permission}]},
    }

    async def run(url: str) -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0005")
            async with engine.begin() as connection:
                operator = Operator(connection, "tests")
                tenant = await operator.add_tenant("2120000142", "Stockholms stad", "kommun")
                await operator.set_agreements(tenant, ["ansok-om-statlig-ersattning"])
                _, token = await operator.issue_token(tenant)
                for resource_id, kind, data in (("u1", "User", user), ("g1", "Group", group)):
                    await connection.execute(
                        insert(resources).values(
                            tenant_id=tenant.id,
                            id=resource_id,
                            resource_type=kind,
                            created=now,
                            last_modified=now,
                            version=1,
                            user_name_key=data.get("userName"),
                            display_name_key=str(data.get("displayName", "")).lower() or None,
                            hsa_id_key="se2120000142-old1" if kind == "User" else None,
                            data=data,
                        )
                    )
            await upgrade(engine)
            app = create_app(Settings(database_url=url))
            try:
                async with api_client(app, token) as client:
                    read = (await client.get("/Users/u1")).json()
                    assert read["schemas"] == [f"{core}User", f"{new}User"]
                    assert read[f"{new}User"]["hsaId"] == "SE2120000142-OLD1"
                    assert read[f"{new}User"]["permissions"] == [{"value": permission}]
                    assert not any(old in key for key in read)
                    found = await client.get(
                        "/Users", params={"filter": f'{new}User:hsaId eq "SE2120000142-OLD1"'}
                    )
                    assert found.json()["totalResults"] == 1
                    read_group = (await client.get("/Groups/g1")).json()
                    assert read_group[f"{new}Group"]["permissions"] == [{"value": permission}]
                    response = await client.put("/Users/u1", json=read)
                    assert response.status_code == 200, response.text
            finally:
                await app.state.engine.dispose()
            await downgrade(engine, "0005")
            async with engine.connect() as connection:
                rows = await connection.execute(select(resources.c.id, resources.c.data))
                stored = {row.id: row.data for row in rows}
            assert stored["u1"]["schemas"] == [f"{core}User", f"{old}User"]
            assert stored["u1"][f"{old}User"]["hsaId"] == "SE2120000142-OLD1"
            assert stored["g1"][f"{old}Group"] == group[f"{old}Group"]
        finally:
            await engine.dispose()

    with fresh_database() as url:
        asyncio.run(run(url))


def test_migration_0007_names_groups_that_share_a_name_and_changes_nothing() -> None:
    now = datetime.now(UTC)

    async def run(url: str) -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0006")
            async with engine.begin() as connection:
                await connection.execute(
                    insert(tenants).values(
                        id=1, name="Kommunen", org_number="2120000142", kind="kommun", created=now
                    )
                )
                for resource_id, name in (("g1", "Chefer"), ("g2", "CHEFER")):
                    await connection.execute(
                        insert(resources).values(
                            tenant_id=1,
                            id=resource_id,
                            resource_type="Group",
                            created=now,
                            last_modified=now,
                            version=1,
                            display_name_key=name.lower(),
                            data={"displayName": name},
                        )
                    )
            with pytest.raises(RuntimeError, match="2 groups named 'chefer'"):
                await upgrade(engine)
            async with engine.connect() as connection:
                version = await connection.execute(text("SELECT version_num FROM alembic_version"))
                assert version.scalar() == "0006"
            async with engine.begin() as connection:
                await connection.execute(
                    update(resources)
                    .where(resources.c.id == "g2")
                    .values(display_name_key="chefer 2", data={"displayName": "Chefer 2"})
                )
            await upgrade(engine)
        finally:
            await engine.dispose()

    with fresh_database() as url:
        asyncio.run(run(url))


def test_migration_0008_gives_stored_names_their_swedish_sort_keys() -> None:
    now = datetime.now(UTC)

    async def run(url: str) -> dict[str, Any]:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0007")
            async with engine.begin() as connection:
                await connection.execute(
                    insert(tenants).values(
                        id=1, name="Kommunen", org_number="2120000142", kind="kommun", created=now
                    )
                )
                data = {"userName": "x", "displayName": "Örjan", "name": {"givenName": "Åsa"}}
                # The table as it is at 0007, without the columns this migration adds.
                at_0007 = table(
                    "resources",
                    *(column(name) for name in ("tenant_id", "id", "resource_type")),
                    *(column(name) for name in ("created", "last_modified", "version")),
                    column("data", Document),
                )
                await connection.execute(
                    insert(at_0007).values(
                        tenant_id=1,
                        id="u1",
                        resource_type="User",
                        created=now,
                        last_modified=now,
                        version=1,
                        data=data,
                    )
                )
            await upgrade(engine)
            async with engine.connect() as connection:
                row = (await connection.execute(text("SELECT * FROM resources"))).mappings().one()
            await downgrade(engine, "0007")
            return dict(row)
        finally:
            await engine.dispose()

    with fresh_database() as url:
        row = asyncio.run(run(url))
    assert row["given_name_sort"] == "{sa" and row["display_name_sort"] == "}rjan"
    assert row["family_name_sort"] is None
