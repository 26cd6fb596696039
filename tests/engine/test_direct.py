"""A statement built once, read outside any transaction or written in a transaction the driver
has begun, goes to the driver itself (``scim.storage.direct``): the same rows, the same
errors, without SQLAlchemy's cursor."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import Integer, String, bindparam, event, literal, select, update
from sqlalchemy.exc import IntegrityError

from scim.hooks import Tenant
from scim.service import Caller
from scim.storage import audit, database, direct
from scim.storage.database import create_engine
from scim.storage.tables import resources
from tests.conftest import GROUP_SCHEMA, Organisations, captured, through_the_cursor
from tests.engine.conftest import create_user

_EXTERNAL_ID = (
    update(resources).where(resources.c.id == bindparam("rid")).values(external_id=bindparam("e"))
)


async def test_a_read_by_id_bypasses_the_cursor_and_answers_the_same(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """The read of GET by id is sent by the driver; its answer (the user, the groups read with
    it, the timestamps, the ETag) is the one SQLAlchemy's execution gives, which a statement
    listener brings back."""
    name = f"direct.{uuid.uuid4().hex[:8]}@example.se"
    user = await create_user(client, name, name={"familyName": "Direkt", "givenName": "Dora"})
    group = await client.post(
        "/Groups",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": f"Direct {name}",
            "members": [{"value": user["id"]}],
        },
    )
    assert group.status_code == 201, group.text
    reads = app.state.service.read_engine
    with through_the_cursor(app.state.engine) as executed:
        read = await client.get(f"/Users/{user['id']}")
        missing = await client.get(f"/Users/{uuid.uuid4()}")
    assert read.status_code == 200, read.text
    assert missing.status_code == 404
    assert not [s for s in executed if "FROM resources" in s], executed
    with captured(reads) as heard, through_the_cursor(app.state.engine) as executed:
        again = await client.get(f"/Users/{user['id']}")
    assert [s for s in executed if "FROM resources" in s]
    assert heard  # a listener hears every statement: the direct path stands aside
    assert again.json() == read.json()
    assert read.json()["groups"][0]["value"] == group.json()["id"]
    assert again.headers["etag"] == read.headers["etag"]


async def test_a_value_written_into_the_sql_is_written_as_sqlalchemy_writes_it(
    app: Litestar,
) -> None:
    """A value written into the SQL (``literal_execute``: a ``co`` pattern, so that each is
    planned for what it matches) is written by the driver's path as SQLAlchemy's execution
    writes it: quoted, its quotes doubled, its backslashes kept."""
    pattern = "%o'k\\_x'%"
    family = f"O'k\\_x'{uuid.uuid4().hex[:6]}"
    statement = select(
        literal(pattern, String, literal_execute=True).label("pattern"),
        literal(7, Integer, literal_execute=True).label("n"),
        bindparam("bound", type_=String).label("bound"),
        literal(family.lower(), String, literal_execute=True)
        .like(bindparam("like", type_=String, literal_execute=True, required=True), escape="\\")
        .label("matches"),
    )
    reads = app.state.service.read_engine
    given = {"bound": "b'", "like": r"%k\\\_x'%"}  # k, a backslash, an underscore, x, a quote
    with through_the_cursor(app.state.engine) as executed:
        row = await direct.first(reads, statement, given)
    assert executed == []  # sent by the driver
    with captured(reads) as heard:  # a listener: SQLAlchemy's execution
        again = await direct.first(reads, statement, given)
    assert heard
    assert tuple(row) == tuple(again) == (pattern, 7, "b'", True)


async def test_a_statement_whose_sql_takes_a_list_goes_through_sqlalchemy(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """An expanding IN is written for as many values as it is given: SQLAlchemy's to send."""
    user = await create_user(client, f"in.{uuid.uuid4().hex[:8]}@example.se")
    statement = select(resources.c.id).where(
        resources.c.id.in_(bindparam("ids", expanding=True, required=True))
    )
    with through_the_cursor(app.state.engine) as executed:
        rows = await direct.rows(app.state.service.read_engine, statement, {"ids": [user["id"]]})
    assert [row.id for row in rows] == [user["id"]]
    assert len(executed) == 1


async def test_a_statement_read_on_two_databases_is_prepared_for_each(app: Litestar) -> None:
    """A kept statement may serve SQLite and PostgreSQL in one process (the organisation's
    count is one for both): each reads it in its own SQL."""
    statement = select(bindparam("n", type_=Integer).label("n"))
    embedded = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        for engine in (database.reads(embedded), app.state.service.read_engine):
            async with engine.connect() as connection:
                row = await direct.first(connection, statement, {"n": 7})
            assert row is not None and row.n == 7
    finally:
        await embedded.dispose()


async def test_a_request_that_reads_opens_no_sqlalchemy_connection(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """GET by id and a search (its page and its count) open no SQLAlchemy connection: their
    reads take the driver's connection alone (one kept, ``direct.keep``), and every
    connection the pool lends meanwhile (the token's look-up) goes back."""
    family = f"Lånad{uuid.uuid4().hex[:8]}"
    name = f"{family}@example.se"
    user = await create_user(client, name, name={"familyName": family, "givenName": "Lo"})
    await create_user(client, f"{family}.2@example.se", name={"familyName": family})
    sync = app.state.service.read_engine.sync_engine
    opened: list[object] = []
    borrowed: list[object] = []
    returned: list[object] = []

    def on_connect(connection: object) -> None:
        opened.append(connection)

    listeners = [
        (sync, "engine_connect", on_connect),
        (sync.pool, "checkout", lambda *_: borrowed.append(1)),
        (sync.pool, "checkin", lambda *_: returned.append(1)),
    ]
    for target, name_, listener in listeners:
        event.listen(target, name_, listener)
    try:
        read = await client.get(f"/Users/{user['id']}")
        # A page of one of the two: its count is a read of its own.
        query = {"filter": f'name.familyName eq "{family}"', "count": 1}
        found = await client.get("/Users", params=query)
    finally:
        for target, name_, listener in listeners:
            event.remove(target, name_, listener)
    assert read.status_code == 200 and read.json()["userName"] == name
    assert found.status_code == 200 and found.json()["totalResults"] == 2
    assert opened == []
    assert borrowed and len(borrowed) == len(returned)


async def test_reads_keep_their_connections_between_requests(
    app: Litestar, client: httpx.AsyncClient, organisations: Organisations
) -> None:
    """A read takes the connection the read before it kept, not one of the pool's, and keeps
    it after; the pool's lent connections are those in use and those kept, none lost."""
    name = f"kept.{uuid.uuid4().hex[:8]}@example.se"
    user = await create_user(client, name, name={"familyName": "Kvar", "givenName": "Kim"})
    service = app.state.service
    kind = service.registry.by_name["User"]
    plan = service.plan(kind, None, None)
    caller = Caller(Tenant(organisations.stockholm.id, "kommun", frozenset()), "http://scim.test")
    await service.get(caller, kind, user["id"], plan)
    engine = app.state.engine
    pool = engine.sync_engine.pool
    borrowed: list[object] = []

    def on_checkout(*_: object) -> None:
        borrowed.append(1)

    event.listen(pool, "checkout", on_checkout)
    try:
        for _ in range(5):
            document, _version = await service.get(caller, kind, user["id"], plan)
            assert document["userName"] == name
    finally:
        event.remove(pool, "checkout", on_checkout)
    assert borrowed == []
    assert pool.checkedout() == direct.kept_idle(engine) >= 1


async def test_reads_at_once_keep_at_most_what_they_may(database_url: str) -> None:
    """Reads at once beyond what may be kept hand the rest back to the pool; disposing of
    the engine closes those kept."""
    engine = create_engine(database_url, pool_size=4)
    direct.keep(engine, 2)
    reads = database.reads(engine)
    statement = select(literal(1, Integer).label("one"))
    try:
        # The driver's connection is lent only while its read runs: many at once take many.
        found = await asyncio.gather(*(direct.first(reads, statement, {}) for _ in range(6)))
        assert [row.one for row in found] == [1] * 6
        assert direct.kept_idle(engine) == 2
        assert engine.sync_engine.pool.checkedout() == 2
        kept = list(direct._kept[engine.sync_engine.pool].idle)
    finally:
        await engine.dispose()
    assert direct.kept_idle(engine) == 0
    assert all(not connection.is_valid for connection in kept)
    # Kept again after the dispose, from the new pool.
    assert (await direct.first(reads, statement, {})).one == 1
    assert direct.kept_idle(engine) == 1
    await engine.dispose()


@pytest.mark.skipif(
    not os.environ.get("SCIM_TEST_DATABASE_URL"), reason="runs in the PostgreSQL pass"
)
async def test_a_kept_connection_the_database_closed_is_not_lent_again(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """After PostgreSQL ends the server's connections (a restart, an administrator), a read
    takes a new connection instead of the kept one it closed: no request fails for it."""
    name = f"omstart.{uuid.uuid4().hex[:8]}@example.se"
    user = await create_user(client, name)
    assert (await client.get(f"/Users/{user['id']}")).status_code == 200
    engine = app.state.engine
    kept = list(direct._kept[engine.sync_engine.pool].idle)
    assert kept
    pids = [connection.driver_connection.get_server_pid() for connection in kept]
    async with engine.connect() as connection:
        await connection.exec_driver_sql(
            f"SELECT pg_terminate_backend(pid) FROM unnest(ARRAY{pids}) AS pid"
        )
    deadline = time.monotonic() + 5
    while not all(connection.driver_connection.is_closed() for connection in kept):
        assert time.monotonic() < deadline, "the ended connections went unnoticed"
        await asyncio.sleep(0.01)
    read = await client.get(f"/Users/{user['id']}")
    assert read.status_code == 200, read.text
    assert all(connection not in direct._kept[engine.sync_engine.pool].idle for connection in kept)


PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def test_a_patch_writes_through_the_driver_in_its_transaction(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """The UPDATE of a PATCH and its audit record are sent by the driver, in the transaction
    SQLAlchemy began, and written (a direct write undone with the transaction:
    ``test_a_transactions_first_statement_goes_by_the_driver_in_it``)."""
    user = await create_user(client, f"skriv.{uuid.uuid4().hex[:8]}@example.se")
    path = f"/Users/{user['id']}"
    body = {
        "schemas": [PATCH_SCHEMA],
        "Operations": [{"op": "replace", "path": "name.givenName", "value": "Dora"}],
    }
    with through_the_cursor(app.state.engine) as executed:
        patched = await client.patch(path, json=body)
    assert patched.status_code == 200, patched.text
    assert not [s for s in executed if s.lstrip().startswith(("UPDATE", "INSERT"))], executed
    stored = (await client.get(path)).json()
    assert stored["name"]["givenName"] == "Dora"
    assert stored["meta"]["version"] != user["meta"]["version"]
    async with app.state.engine.connect() as connection:
        records = await audit.history(connection, 1, "User", user["id"], 10)
    assert [record["action"] for record in records][:1] == ["User.patch"]


async def test_a_unique_key_a_direct_write_takes_is_an_integrity_error(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """As SQLAlchemy's execution raises it, on either driver: what tells a PATCH or PUT
    that lost a race for a userName (``UniquenessConflict``, 409)."""
    first = await create_user(client, f"ett.{uuid.uuid4().hex[:8]}@example.se")
    second = await create_user(client, f"tva.{uuid.uuid4().hex[:8]}@example.se")
    statement = update(resources).where(resources.c.id == bindparam("rid"))
    statement = statement.values(user_name_key=bindparam("key"))
    async with app.state.engine.begin() as connection:
        taken = (
            await connection.execute(
                select(resources.c.user_name_key).where(resources.c.id == first["id"])
            )
        ).scalar_one()
        with through_the_cursor(app.state.engine) as executed, pytest.raises(IntegrityError):
            await direct.write(connection, statement, {"rid": second["id"], "key": taken})
        assert executed == []
        await connection.rollback()


async def test_a_transactions_first_statement_goes_by_the_driver_in_it(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """The driver's transaction begins with SQLAlchemy's (PostgreSQL: ``database`` begins it
    then, not at the first statement), so its first statement is sent by the driver too, in
    it: undone with it."""
    user = await create_user(client, f"forst.{uuid.uuid4().hex[:8]}@example.se")
    async with app.state.engine.connect() as connection, connection.begin() as transaction:
        with through_the_cursor(app.state.engine) as executed:
            written = await direct.write(connection, _EXTERNAL_ID, {"rid": user["id"], "e": "x"})
        assert written == 1 and executed == []
        await transaction.rollback()
    assert "externalId" not in (await client.get(f"/Users/{user['id']}")).json()


async def test_a_write_in_no_transaction_goes_through_sqlalchemy(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """Sent by the driver, a statement on a connection in no transaction would be outside
    any: SQLAlchemy sends it, and begins one (fails if ``direct`` skips the check)."""
    user = await create_user(client, f"ingen.{uuid.uuid4().hex[:8]}@example.se")
    async with app.state.engine.connect() as connection:
        with through_the_cursor(app.state.engine) as executed:
            await direct.write(connection, _EXTERNAL_ID, {"rid": user["id"], "e": "x"})
        assert [s for s in executed if s.startswith("UPDATE")], executed
        await connection.rollback()
    assert "externalId" not in (await client.get(f"/Users/{user['id']}")).json()


async def test_a_begin_that_fails_is_left_to_the_first_statement(
    app: Litestar, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the early BEGIN fails, the first statement goes through SQLAlchemy, which begins
    the transaction (and would tell its failure as for any statement): still one transaction."""
    if app.state.engine.dialect.name != "postgresql":
        pytest.skip("SQLite begins with BEGIN IMMEDIATE, through SQLAlchemy")
    user = await create_user(client, f"andra.{uuid.uuid4().hex[:8]}@example.se")
    failed: list[bool] = []
    async with app.state.engine.connect() as connection:
        adapter = type((await connection.get_raw_connection()).dbapi_connection)
        start = adapter._start_transaction

        async def failing_once(self: Any) -> None:
            if not failed:
                failed.append(True)
                raise ConnectionError("BEGIN did not reach the database")
            await start(self)

        monkeypatch.setattr(adapter, "_start_transaction", failing_once)
        async with connection.begin() as transaction:
            with through_the_cursor(app.state.engine) as executed:
                await direct.write(connection, _EXTERNAL_ID, {"rid": user["id"], "e": "x"})
                await direct.write(connection, _EXTERNAL_ID, {"rid": user["id"], "e": "y"})
            assert failed and len([s for s in executed if s.startswith("UPDATE")]) == 1
            await transaction.rollback()
    assert "externalId" not in (await client.get(f"/Users/{user['id']}")).json()
