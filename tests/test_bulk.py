"""Bulk (RFC 7644 §3.7): operations in one request, each its own transaction, with bulkId
references in any order, failOnErrors, versions and limits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from scim import bulk as bulk_module
from scim.app import create_app
from scim.service import CreateBatch, ResourceService
from scim.settings import Settings
from scim.storage.repository import Repository
from scim.storage.tables import audit_log, members, resources
from tests.conftest import (
    ADMIN_HSA,
    ESERVICES,
    GROUP_SCHEMA,
    LANDSTING,
    Organisations,
    api_client,
    captured,
    create_user,
    patch_body,
    user_body,
)

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def bulk(*operations: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"schemas": [BULK], "Operations": list(operations), **options}


def post_user(bulk_id: str, user_name: str, **attributes: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Users",
        "bulkId": bulk_id,
        "data": user_body(user_name, **attributes),
    }


def post_group(bulk_id: str, name: str, members: list[str]) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Groups",
        "bulkId": bulk_id,
        "data": {
            "schemas": [GROUP_SCHEMA],
            "displayName": name,
            "members": [{"value": member} for member in members],
        },
    }


async def send(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.post("/Bulk", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["schemas"] == [BULK_RESPONSE]
    operations: list[dict[str, Any]] = payload["Operations"]
    return operations


async def stored(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            (await connection.execute(select(func.count()).select_from(resources))).scalar_one()
        )


def resource_id(result: dict[str, Any]) -> str:
    location: str = result["location"]
    return location.rsplit("/", 1)[-1]


async def test_bulk_is_advertised(client: httpx.AsyncClient) -> None:
    config = (await client.get("/ServiceProviderConfig")).json()
    assert config["bulk"] == {
        "supported": True,
        "maxOperations": 1000,
        "maxPayloadSize": 256 * 1024,
    }


async def test_every_method_reports_its_own_status(client: httpx.AsyncClient) -> None:
    existing = await create_user(client, "existing@example.se")
    results = await send(
        client,
        bulk(
            post_user("new", "new@example.se"),
            {
                "method": "PUT",
                "path": f"/Users/{existing['id']}",
                "data": user_body(
                    "existing@example.se",
                    title="T",
                    **{ESERVICES: existing[ESERVICES]},
                ),
            },
            {
                "method": "PATCH",
                "path": f"/Users/{existing['id']}",
                "data": patch_body({"op": "replace", "path": "nickName", "value": "N"}),
            },
            {"method": "DELETE", "path": "/Users/bulkId:new"},
        ),
    )
    assert [(r["method"], r["status"]) for r in results] == [
        ("POST", "201"),
        ("PUT", "200"),
        ("PATCH", "200"),
        ("DELETE", "204"),
    ]
    assert results[0]["bulkId"] == "new" and results[0]["version"] == 'W/"1"'
    assert results[0]["location"].startswith("http://scim.test/scim/v2/Users/")
    assert results[2]["version"] == 'W/"3"'
    user = (await client.get(f"/Users/{existing['id']}")).json()
    assert (user["title"], user["nickName"]) == ("T", "N")
    assert (await client.get(results[0]["location"])).status_code == 404


async def test_references_forward_and_backward(client: httpx.AsyncClient) -> None:
    """The group names users created before it (backward) and after it (forward)."""
    results = await send(
        client,
        bulk(
            post_user("anna", "anna@example.se"),
            post_group("team", "Team", ["bulkId:anna", "bulkId:erik"]),
            post_user("erik", "erik@example.se"),
            {
                "method": "PATCH",
                "path": "/Groups/bulkId:team",
                "data": patch_body(
                    {"op": "add", "path": "members", "value": [{"value": "bulkId:sofia"}]}
                ),
            },
            post_user("sofia", "sofia@example.se"),
        ),
    )
    assert [r["status"] for r in results] == ["201", "201", "201", "204", "201"]
    by_bulk_id = {r.get("bulkId"): resource_id(r) for r in results if "bulkId" in r}
    group = (await client.get(f"/Groups/{by_bulk_id['team']}")).json()
    assert {m["value"] for m in group["members"]} == {
        by_bulk_id["anna"],
        by_bulk_id["erik"],
        by_bulk_id["sofia"],
    }
    erik = (await client.get(f"/Users/{by_bulk_id['erik']}")).json()
    assert erik["groups"][0]["value"] == by_bulk_id["team"]


async def test_unresolvable_and_circular_references_fail_on_their_own(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    results = await send(
        client,
        bulk(
            post_group("lonely", "Lonely", ["bulkId:nobody"]),
            post_group("a", "A", ["bulkId:b"]),
            post_group("b", "B", ["bulkId:a"]),
            post_user("ok", "ok@example.se"),
            post_group("bad-member", "Bad", ["bulkId:broken"]),
            post_user("broken", ""),
        ),
    )
    statuses = {r["bulkId"]: r for r in results}
    for failed in ("lonely", "a", "b"):
        assert statuses[failed]["status"] == "400"
        assert statuses[failed]["response"]["scimType"] == "invalidValue"
        assert ERROR in statuses[failed]["response"]["schemas"]
    assert "nobody" in statuses["lonely"]["response"]["detail"]
    assert "Circular" in statuses["a"]["response"]["detail"]
    assert statuses["ok"]["status"] == "201"
    assert statuses["broken"]["status"] == "400"
    assert statuses["bad-member"]["status"] == "400"
    assert "failed" in statuses["bad-member"]["response"]["detail"]
    assert await stored(engine) == 1


async def test_fail_on_errors_stops_and_keeps_what_was_done(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    results = await send(
        client,
        bulk(
            post_user("1", "one@example.se"),
            post_user("2", "one@example.se"),  # taken
            post_user("3", "three@example.se"),
            post_user("4", "three@example.se"),  # taken
            post_user("5", "five@example.se"),
            failOnErrors=2,
        ),
    )
    assert [(r["bulkId"], r["status"]) for r in results] == [
        ("1", "201"),
        ("2", "409"),
        ("3", "201"),
        ("4", "409"),
    ]
    assert results[1]["response"]["scimType"] == "uniqueness"
    assert await stored(engine) == 2


async def test_version_acts_as_if_match(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "v@example.se")
    stale = {
        "method": "PATCH",
        "path": f"/Users/{user['id']}",
        "version": 'W/"9"',
        "data": patch_body({"op": "add", "path": "title", "value": "stale"}),
    }
    current = {
        **stale,
        "version": 'W/"1"',
        "data": patch_body({"op": "add", "path": "title", "value": "fresh"}),
    }
    results = await send(client, bulk(stale, current))
    assert [r["status"] for r in results] == ["412", "200"]
    assert (await client.get(f"/Users/{user['id']}")).json()["title"] == "fresh"


@pytest.mark.parametrize(
    ("operation", "fragment"),
    [
        ({"method": "GET", "path": "/Users"}, "method"),
        ({"method": "POST", "path": "/Users", "data": {"userName": "x"}}, "bulkId"),
        ({"method": "POST", "path": "/Nothing", "bulkId": "n", "data": {}}, "path"),
        ({"method": "PUT", "path": "/Users", "data": {"userName": "x"}}, "one resource"),
        ({"method": "PATCH", "path": "Users/x", "data": {}}, "path"),
        ({"method": "DELETE", "path": "/Users/a/b"}, "path"),
        ({"method": "PUT", "path": "/Users/x"}, "data"),
        ("not an object", "object"),
    ],
)
async def test_a_malformed_operation_fails_alone(
    client: httpx.AsyncClient, engine: AsyncEngine, operation: Any, fragment: str
) -> None:
    results = await send(client, bulk(operation, post_user("fine", "fine@example.se")))
    assert results[0]["status"] == "400"
    assert fragment in results[0]["response"]["detail"]
    assert results[1]["status"] == "201"
    assert await stored(engine) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (bulk(post_user("same", "a@example.se"), post_user("same", "b@example.se")), "same"),
        (
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [post_user("a", "a@example.se")],
            },
            "BulkRequest",
        ),
        (bulk(), "Operations"),
        (bulk(post_user("a", "a@example.se"), failOnErrors=0), "failOnErrors"),
    ],
)
async def test_a_malformed_request_is_refused_whole(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any], fragment: str
) -> None:
    response = await client.post("/Bulk", json=body)
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"
    assert fragment in response.json()["detail"]
    assert await stored(engine) == 0


@pytest.fixture
async def small_app(
    settings: Settings, engine: AsyncEngine, clean: None
) -> AsyncIterator[Litestar]:
    app = create_app(
        Settings(database_url=settings.database_url, max_bulk_operations=3, max_payload_size=4096)
    )
    yield app
    await app.state.engine.dispose()


async def test_limits_are_enforced_before_anything_runs(
    small_app: Litestar, organisations: Organisations, engine: AsyncEngine
) -> None:
    async with api_client(small_app, organisations.stockholm.token) as client:
        too_many = bulk(*(post_user(str(i), f"u{i}@example.se") for i in range(4)))
        response = await client.post("/Bulk", json=too_many)
        assert response.status_code == 413
        assert response.json()["scimType"] == "tooMany"
        assert "maxOperations is 3" in response.json()["detail"]
        too_large = bulk(post_user("big", "big@example.se", nickName="x" * 5000))
        response = await client.post("/Bulk", json=too_large)
        assert response.status_code == 413
        assert "4096" in response.json()["detail"]
    assert await stored(engine) == 0


async def test_another_organisations_resources_are_out_of_reach(
    app: Litestar, client: httpx.AsyncClient, organisations: Organisations, engine: AsyncEngine
) -> None:
    async with api_client(app, organisations.goteborg.token) as goteborg:
        foreign = await create_user(goteborg, "foreign@goteborg.se")
        foreign_results = await send(goteborg, bulk(post_user("mine", "mine@goteborg.se")))
    foreign_id = resource_id(foreign_results[0])
    results = await send(
        client,
        bulk(
            {
                "method": "PATCH",
                "path": f"/Users/{foreign['id']}",
                "data": patch_body({"op": "add", "path": "title", "value": "x"}),
            },
            {"method": "DELETE", "path": f"/Users/{foreign_id}"},
            post_group("g", "G", [foreign["id"]]),
            # Göteborg's bulkId "mine" means nothing in Stockholm's request.
            post_group("h", "H", ["bulkId:mine"]),
        ),
    )
    assert [r["status"] for r in results] == ["404", "404", "400", "400"]
    # Errors may echo the ids the caller sent, but nothing of what Göteborg stores.
    assert "goteborg" not in str(results)
    assert all("location" not in r and "version" not in r for r in results)
    async with api_client(app, organisations.goteborg.token) as goteborg:
        assert (await goteborg.get(f"/Users/{foreign['id']}")).json().get("title") is None
        assert (await goteborg.get(f"/Users/{foreign_id}")).status_code == 200
    assert await stored(engine) == 2


async def test_bulk_needs_credentials(app: Litestar, clean: None) -> None:
    async with api_client(app, None) as anonymous:
        response = await anonymous.post("/Bulk", json=bulk(post_user("a", "a@example.se")))
    assert response.status_code == 401


# -- POSTs in a row: validated in Python, checked and written together (scim.bulk) ----------

SE_ASYL = f"{LANDSTING}:se-asylsokande"  # offered to regions only: not grantable in Stockholm
TAKEN_HSA = "SE2120000142-BTAKEN"


def hsa(hsa_id: str, **extension: Any) -> dict[str, Any]:
    return {ESERVICES: {"hsaId": hsa_id, **extension}}


async def wipe(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in (members, resources, audit_log):
            await connection.execute(delete(table))


def every_kind_of_outcome() -> dict[str, Any]:
    """POSTs that succeed and fail in every way a create can, around a PATCH that splits
    them into two runs; the group refers to users before and after it."""
    return bulk(
        post_user("anna", "anna@example.se", password="Hemligt-1"),
        post_user("existing", "TAKEN@example.se"),  # userName stored already
        post_user("bertil", "bertil@example.se", **hsa("se2120000142-b0002")),
        post_user("twice", "Anna@Example.se"),  # userName earlier in this batch
        post_user("hsa-existing", "cecilia@example.se", **hsa(TAKEN_HSA.lower())),
        post_user("hsa-twice", "david@example.se", **hsa("SE2120000142-B0002")),
        post_user("blank", " "),
        post_user(
            "not-grantable",
            "erik@example.se",
            **hsa("SE2120000142-B0006", permissions=[{"value": SE_ASYL}]),
        ),
        post_user("bad-hsa", "fia@example.se", **hsa("nonsense")),
        post_user("admin", "gun@example.se", **hsa(ADMIN_HSA.lower())),
        post_group("team", "Team", ["bulkId:anna", "bulkId:bertil", "bulkId:later"]),
        post_group("broken", "Broken", ["bulkId:anna", "bulkId:twice"]),
        post_group("ghost", "Ghost", ["2b5d7a4e-0000-4000-8000-000000000000"]),
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "long-display",
            "data": {
                "schemas": [GROUP_SCHEMA],
                "displayName": "Long",
                "members": [{"value": "bulkId:anna", "display": "x" * 300}],
            },
        },
        {"method": "POST", "path": "/Users/x", "bulkId": "bad-path", "data": user_body("h@e.se")},
        post_user("later", "later@example.se"),
        {
            "method": "PATCH",
            "path": "/Groups/bulkId:team",
            "data": patch_body(
                {"op": "add", "path": "members", "value": [{"value": "bulkId:after"}]}
            ),
        },
        post_user("after", "after@example.se"),
        post_user("after-twice", "AFTER@example.se"),
        post_user("last", "last@example.se"),
    )


async def run_every_kind(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    await create_user(client, "taken@example.se", **hsa(TAKEN_HSA))
    results = await send(client, every_kind_of_outcome())
    for result in results:
        # Ids are new on every run; what they are is the subject of other tests.
        if "location" in result:
            result["location"] = result["location"].rsplit("/", 1)[0]
    return results


async def test_batched_creates_have_the_outcomes_of_one_by_one(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    administrator: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each POST of a batch is admitted or refused exactly as if run in its own
    transaction, in order: same statuses, same errors, same resources."""
    # Every create goes through a CreateBatch; one by one, each batch looks up one draft.
    looked_up: list[int] = []
    look_up = CreateBatch.look_up

    async def spy(batch: CreateBatch, drafts: Any) -> Any:
        looked_up.append(len(drafts))
        return await look_up(batch, drafts)

    monkeypatch.setattr(CreateBatch, "look_up", spy)
    batched = await run_every_kind(client)
    batched_groups = await group_members(client)
    assert sum(size for size in looked_up if size > 1) > 10
    await wipe(engine)
    looked_up.clear()
    monkeypatch.setattr(bulk_module, "_BATCH_MIN", 10**9)
    alone = await run_every_kind(client)
    assert looked_up and set(looked_up) == {1}  # nothing batched this time
    assert batched == alone
    assert batched_groups == await group_members(client)
    statuses = {r["bulkId"]: r["status"] for r in batched if "bulkId" in r}
    assert statuses == {
        "anna": "201",
        "existing": "409",
        "bertil": "201",
        "twice": "409",
        "hsa-existing": "409",
        "hsa-twice": "409",
        "blank": "400",
        "not-grantable": "400",
        "bad-hsa": "400",
        "admin": "409",
        "team": "201",
        "broken": "400",
        "ghost": "400",
        "long-display": "400",
        "bad-path": "400",
        "later": "201",
        "after": "201",
        "after-twice": "409",
        "last": "201",
    }
    assert batched[16] == {"method": "PATCH", "status": "204", "version": 'W/"2"'} | {
        "location": batched[16]["location"]
    }


async def group_members(client: httpx.AsyncClient) -> dict[str, list[str]]:
    """Each group by name, with the userNames (of groups: the displayNames) of its members."""
    users = (await client.get("/Users", params={"count": "100"})).json()["Resources"]
    names = {user["id"]: user["userName"] for user in users}
    groups = (await client.get("/Groups")).json()["Resources"]
    return {
        group["displayName"]: sorted(
            names.get(m["value"], m["display"]) for m in group.get("members", [])
        )
        for group in groups
    }


async def test_fail_on_errors_stops_within_a_batch_of_several_chunks(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    operations = [post_user(str(i), f"u{i}@example.se") for i in range(450)]
    operations[10] = post_user("10", "u0@example.se")  # taken by the first
    operations[300] = post_user("300", "U1@example.se")  # taken by the second
    results = await send(client, bulk(*operations, failOnErrors=2))
    assert len(results) == 301
    assert [i for i, r in enumerate(results) if r["status"] != "201"] == [10, 300]
    assert await stored(engine) == 299
    assert await audited(engine) == 299


async def audited(engine: AsyncEngine) -> int:
    """Audit records of the resources there are (those of earlier tests are gone)."""
    async with engine.connect() as connection:
        statement = (
            select(func.count())
            .select_from(audit_log)
            .where(audit_log.c.resource_id.in_(select(resources.c.id)))
        )
        return int((await connection.execute(statement)).scalar_one())


async def test_a_batch_writes_users_groups_members_and_an_audit_record_each(
    client: httpx.AsyncClient, engine: AsyncEngine, organisations: Organisations
) -> None:
    async with engine.connect() as connection:
        last = select(func.coalesce(func.max(audit_log.c.id), 0))
        before = (await connection.execute(last)).scalar_one()
    results = await send(
        client,
        bulk(
            post_group("first", "First", ["bulkId:u1", "bulkId:u2"]),
            post_user("u1", "u1@example.se", password="Hemligt-7"),
            post_user("u2", "u2@example.se"),
            post_user("u3", "u1@example.se"),  # taken: no resource, no record
            post_group("second", "Second", ["bulkId:u2", "bulkId:first"]),
        ),
    )
    assert [r["status"] for r in results] == ["201", "201", "201", "409", "201"]
    ids = {r["bulkId"]: resource_id(r) for r in results if r["status"] == "201"}
    assert await group_members(client) == {
        "First": ["u1@example.se", "u2@example.se"],
        "Second": ["First", "u2@example.se"],
    }
    second = (await client.get(f"/Groups/{ids['second']}")).json()
    assert {(m["value"], m["type"]) for m in second["members"]} == {
        (ids["u2"], "User"),
        (ids["first"], "Group"),
    }
    u2 = (await client.get(f"/Users/{ids['u2']}")).json()
    assert {g["value"] for g in u2["groups"]} == {ids["first"], ids["second"]}
    assert all(r["version"] == 'W/"1"' for r in results if r["status"] == "201")

    async with engine.connect() as connection:
        records = (await connection.execute(select(audit_log).where(audit_log.c.id > before))).all()
    assert sorted((r.action, r.resource_id) for r in records) == sorted(
        [
            ("Group.create", ids["first"]),
            ("User.create", ids["u1"]),
            ("User.create", ids["u2"]),
            ("Group.create", ids["second"]),
        ]
    )
    assert {r.tenant_id for r in records} == {organisations.stockholm.id}
    by_id = {r.resource_id: r for r in records}
    assert by_id[ids["u1"]].changes["password"] == "(hidden)"
    assert by_id[ids["u1"]].changes["userName"] == "u1@example.se"
    # The body as the client sent it, with the ids the references stood for.
    assert by_id[ids["second"]].changes["members"] == [
        {"value": ids["u2"]},
        {"value": ids["first"]},
    ]


async def test_keys_taken_in_another_organisation_are_free_in_a_batch(
    app: Litestar, client: httpx.AsyncClient, organisations: Organisations
) -> None:
    async with api_client(app, organisations.goteborg.token) as goteborg:
        await create_user(goteborg, "same@example.se")
    results = await send(
        client, bulk(post_user("a", "same@example.se"), post_user("b", "other@example.se"))
    )
    assert [r["status"] for r in results] == ["201", "201"]


async def test_a_write_the_lookups_did_not_foresee_falls_back_to_one_by_one(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A concurrent request may take a key between the lookups and the writes: the batch
    is then rolled back whole and its operations run one by one, each as its own."""
    caplog.set_level(logging.INFO, logger="scim.bulk")
    await create_user(client, "taken@example.se")

    async def nothing_taken(*_: Any) -> tuple[set[str], set[str]]:
        return set(), set()

    monkeypatch.setattr(Repository, "taken", nothing_taken)
    results = await send(
        client,
        bulk(
            post_user("a", "a@example.se"),
            post_user("b", "taken@example.se"),
            post_group("g", "G", ["bulkId:a"]),
        ),
    )
    assert [r["status"] for r in results] == ["201", "409", "201"]
    assert results[1]["response"]["scimType"] == "uniqueness"
    assert await group_members(client) == {"G": ["a@example.se"]}
    assert await stored(engine) == 3
    assert await audited(engine) == 3  # the user made before, and two from the request
    # Known as a conflict (BatchConflict), not taken for some other failure.
    assert [r.getMessage() for r in caplog.records if r.name == "scim.bulk"] == [
        "bulk: a concurrent write; creating one by one"
    ]


@pytest.fixture
async def roomy_app(
    settings: Settings, engine: AsyncEngine, clean: None
) -> AsyncIterator[Litestar]:
    """The default limits: a thousand operations of a first sync fit in one request."""
    app = create_app(Settings(database_url=settings.database_url))
    yield app
    await app.state.engine.dispose()


async def test_a_bulk_of_a_thousand_creates_takes_a_few_statements(
    roomy_app: Litestar, organisations: Organisations, engine: AsyncEngine
) -> None:
    """Batching as behaviour: the number of statements does not grow with the operations
    (it was 3 per operation and a transaction each, one by one)."""
    operations = [post_user(f"u{i}", f"u{i}@example.se") for i in range(995)]
    operations += [
        post_group(f"g{g}", f"G{g}", [f"bulkId:u{g * 100 + i}" for i in range(50)])
        for g in range(5)
    ]
    with captured(roomy_app.state.engine) as statements:
        async with api_client(roomy_app, organisations.stockholm.token) as client:
            results = await send(client, bulk(*operations))
    assert {r["status"] for r in results} == {"201"}
    assert len(statements) < 50, statements
    assert await stored(engine) == 1000


async def test_a_batch_whose_commit_fails_reports_what_it_would_have_created_as_failed(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failed COMMIT nothing may be tried again (it may have been written): each
    create of the batch is a 500, as one whose own commit failed would be."""
    create_batch = ResourceService.create_batch

    @asynccontextmanager
    async def commit_fails(service: ResourceService, caller: Any) -> AsyncIterator[Any]:
        async with create_batch(service, caller) as batch:
            yield batch
            raise OSError("the connection was lost during COMMIT")

    monkeypatch.setattr(ResourceService, "create_batch", commit_fails)
    results = await send(
        client,
        bulk(
            post_user("a", "a@example.se"),
            post_user("blank", ""),
            post_group("g", "G", ["bulkId:a"]),
            {"method": "DELETE", "path": "/Users/bulkId:a"},
        ),
    )
    assert [r["status"] for r in results] == ["500", "400", "500", "400"]
    assert "failed" in results[3]["response"]["detail"]
    assert await stored(engine) == 0


async def test_with_the_database_away_each_operation_answers_503_as_alone(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a single request answers while the database cannot be reached (503, try again),
    each operation answers in its entry; other failures stay 500."""
    existing = await create_user(client, "finns@example.se")

    async def away(*_: Any, **__: Any) -> Any:
        raise ConnectionRefusedError("the database is restarting")

    monkeypatch.setattr(ResourceService, "create", away)
    monkeypatch.setattr(ResourceService, "delete", away)
    results = await send(
        client,
        bulk(
            post_user("a", "a@example.se"),
            {"method": "DELETE", "path": f"/Users/{existing['id']}"},
        ),
    )
    assert [r["status"] for r in results] == ["503", "503"]
    assert all(r["response"]["status"] == "503" for r in results)
    assert "try again" in results[0]["response"]["detail"]

    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a fault of this server")

    monkeypatch.setattr(ResourceService, "delete", broken)
    results = await send(client, bulk({"method": "DELETE", "path": f"/Users/{existing['id']}"}))
    assert [r["status"] for r in results] == ["500"]
