"""The e-service extension through the HTTP API: HSA-ids, permissions on users and groups,
what the organisation may grant (catalogue, kind, agreement, retirement), filters and sorting
on the extension, administrators versus users, and the read-only core ``entitlements``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.operator import Operator, OperatorError
from scim.settings import Settings
from scim.storage import identities
from scim.storage.tables import administrators, resources
from tests.conftest import (
    ENSAMKOMMANDE,
    ESERVICES,
    ESERVICES_GROUP,
    GROUP_SCHEMA,
    LANDSTING,
    STATLIG,
    USER_SCHEMA,
    Organisation,
    Organisations,
    api_client,
    captured,
    create_group,
    create_user,
    new_hsa_id,
    patch_body,
    user_body,
)

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
CORE_USER = USER_SCHEMA
CATALOGUE_FILE = Path(__file__).resolve().parents[2] / "extensions" / "catalogue.toml"

# Permissions of the catalogue (extensions/catalogue.toml).
GRUND = f"{STATLIG}:grundersattning"
FORSKOLA = f"{STATLIG}:asylsokande-i-forskola"
HEMTJANST = f"{STATLIG}:hemtjanst-for-nyanlanda"
BARN = f"{ENSAMKOMMANDE}:administrera-barn-utan-vardnadshavare"
SE_ASYL = f"{LANDSTING}:se-asylsokande"

HSA_ID = f"{ESERVICES}:hsaId"
PERMISSIONS = f"{ESERVICES}:permissions"
GROUP_PERMISSIONS = f"{ESERVICES_GROUP}:permissions"


# -- helpers ------------------------------------------------------------------------------


def assert_error(
    response: httpx.Response, status: int, scim_type: str | None = None, *fragments: str
) -> str:
    """A SCIM error (RFC 7644 §3.12) with this status, scimType and these words in its detail;
    returns the detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert ERROR in body["schemas"], body
    assert body["status"] == str(status), body
    detail: str = body.get("detail") or ""
    assert detail, body
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    for fragment in fragments:
        assert fragment.lower() in detail.lower(), (fragment, detail)
    return detail


def ext(document: dict[str, Any]) -> dict[str, Any]:
    extension: dict[str, Any] = document.get(ESERVICES) or {}
    return extension


def values(document: dict[str, Any], urn: str = ESERVICES) -> list[str]:
    """The permission values a resource shows, sorted."""
    return sorted(item["value"] for item in (document.get(urn) or {}).get("permissions") or [])


def granting(*permission_values: str) -> dict[str, Any]:
    return {"permissions": [{"value": value} for value in permission_values]}


def group_body(display_name: str, *permission_values: str, **attributes: Any) -> dict[str, Any]:
    return {
        "schemas": [GROUP_SCHEMA, ESERVICES_GROUP],
        "displayName": display_name,
        ESERVICES_GROUP: granting(*permission_values),
        **attributes,
    }


def with_permissions(*permission_values: str, hsa_id: str | None = None) -> dict[str, Any]:
    """The extension of a new user: a fresh HSA-id and these permissions."""
    return {ESERVICES: {"hsaId": hsa_id or new_hsa_id(), **granting(*permission_values)}}


async def get(client: httpx.AsyncClient, location: str, **params: str) -> dict[str, Any]:
    response = await client.get(location, params=params)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def user_names(client: httpx.AsyncClient, scim_filter: str, **params: str) -> list[str]:
    """The userNames a filter selects, in the order the server returns them."""
    response = await client.get("/Users", params={"filter": scim_filter, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totalResults"] == len(body["Resources"]), body
    return [user["userName"] for user in body["Resources"]]


async def total(client: httpx.AsyncClient, endpoint: str = "/Users") -> int:
    response = await client.get(endpoint, params={"count": "0"})
    assert response.status_code == 200, response.text
    count: int = response.json()["totalResults"]
    return count


def location(document: dict[str, Any]) -> str:
    return f"/{document['meta']['resourceType']}s/{document['id']}"


def replacement(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A PUT body from a representation: what the client wrote, with ``changes``."""
    body = {key: value for key, value in document.items() if key not in ("id", "meta", "groups")}
    body.update(changes)
    extension = dict(body.get(ESERVICES) or {})
    extension.pop("effectivePermissions", None)
    body[ESERVICES] = extension
    body.pop("entitlements", None)
    return body


async def catalogue(client: httpx.AsyncClient) -> dict[str, Any]:
    """``GET /catalogue``, outside the SCIM base path."""
    response = await client.get("http://scim.test/catalogue")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def catalogue_permission(body: dict[str, Any], value: str) -> dict[str, Any]:
    service_id, _, permission_id = value.partition(":")
    service = next(s for s in body["services"] if s["id"] == service_id)
    found: dict[str, Any] = next(
        p for group in service["groups"] for p in group["permissions"] if p["id"] == permission_id
    )
    return found


@asynccontextmanager
async def agreements_of(
    engine: AsyncEngine, organisation: Organisation, services: list[str]
) -> AsyncIterator[None]:
    """The organisation's agreements set to ``services`` for a while, then restored."""
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(organisation.org_number)
        previous = await operator.agreements(tenant.id)
        await operator.set_agreements(tenant, services)
    try:
        yield
    finally:
        async with engine.begin() as connection:
            await Operator(connection, "tests").set_agreements(tenant, previous)


@pytest.fixture
async def goteborg(
    app: Litestar, client: httpx.AsyncClient, organisations: Organisations
) -> AsyncIterator[httpx.AsyncClient]:
    """The identity system of Göteborgs stad (``client`` cleans first)."""
    async with api_client(app, organisations.goteborg.token) as goteborg:
        yield goteborg


@pytest.fixture
async def region(
    app: Litestar, client: httpx.AsyncClient, organisations: Organisations
) -> AsyncIterator[httpx.AsyncClient]:
    """The identity system of Region Västernorrland."""
    async with api_client(app, organisations.region.token) as region:
        yield region


# -- 1. hsaId -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"schemas": [USER_SCHEMA], "userName": "utan"}, id="no-extension"),
        pytest.param(
            {"schemas": [USER_SCHEMA, ESERVICES], "userName": "utan"}, id="schema-but-no-object"
        ),
        pytest.param(
            {"schemas": [USER_SCHEMA, ESERVICES], "userName": "utan", ESERVICES: {}},
            id="empty-extension",
        ),
        pytest.param(
            {
                "schemas": [USER_SCHEMA, ESERVICES],
                "userName": "utan",
                ESERVICES: granting(GRUND),
            },
            id="permissions-but-no-hsaId",
        ),
        pytest.param(
            {"schemas": [USER_SCHEMA, ESERVICES], "userName": "utan", ESERVICES: {"hsaId": None}},
            id="null-hsaId",
        ),
    ],
)
async def test_hsa_id_is_required_on_create_and_replace(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    assert_error(await client.post("/Users", json=body), 400, "invalidValue")
    assert await total(client) == 0

    existing = await create_user(client, "finns")
    before = await get(client, location(existing))
    assert_error(await client.put(location(existing), json=body), 400, "invalidValue")
    assert await get(client, location(existing)) == before


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": HSA_ID},
        {"op": "replace", "path": HSA_ID, "value": None},
        {"op": "add", "value": {HSA_ID: None}},
        {"op": "remove", "path": ESERVICES},
    ],
)
async def test_hsa_id_cannot_be_patched_away(
    client: httpx.AsyncClient, operation: dict[str, Any]
) -> None:
    existing = await create_user(client, "finns", **with_permissions(GRUND))
    before = await get(client, location(existing))
    response = await client.patch(location(existing), json=patch_body(operation))
    assert response.status_code == 400, response.text
    assert await get(client, location(existing)) == before


async def test_patching_the_extension_keeps_the_hsa_id(client: httpx.AsyncClient) -> None:
    """RFC 7644 §3.5.2.3: sub-attributes a replace leaves out are left unchanged."""
    existing = await create_user(client, "finns", **with_permissions(GRUND))
    hsa_id = ext(existing)["hsaId"]
    for operation in (
        {"op": "replace", "path": ESERVICES, "value": granting(FORSKOLA)},
        {"op": "replace", "value": {ESERVICES: granting(BARN)}},
    ):
        response = await client.patch(location(existing), json=patch_body(operation))
        assert response.status_code == 200, response.text
        assert ext(response.json())["hsaId"] == hsa_id
    assert ext(await get(client, location(existing))) == {"hsaId": hsa_id, **granting(BARN)}


@pytest.mark.parametrize(
    ("hsa_id", "why"),
    [
        pytest.param("SE212000014-ABC", "ten digits", id="nine-digits"),
        pytest.param("SE21200001420-ABC", "ten digits", id="eleven-digits"),
        pytest.param("2120000142-ABC", "ten digits", id="no-SE"),
        pytest.param("DK2120000142-ABC", "ten digits", id="other-country"),
        pytest.param("SE2120000142ABC", "hyphen", id="no-hyphen"),
        pytest.param("SE2120000142-", "letters or digits", id="nothing-after-hyphen"),
        pytest.param("SE2120000142-AB C", "letters or digits", id="space"),
        pytest.param("SE2120000142-A_B", "letters or digits", id="underscore"),
        pytest.param("SE2120000142-AB-C", "letters or digits", id="second-hyphen"),
        pytest.param("SE2120000142-ÅÄÖ", "letters or digits", id="non-ascii-letters"),
        pytest.param("SE21200001X2-ABC", "ten digits", id="letter-among-digits"),
        # An administrator's id in full-width digits must not pass for another person's.
        pytest.param("SE\uff12120000142-ADM1", "ten digits", id="full-width-digit"),
        pytest.param("SE2120000142-\u0661", "letters or digits", id="arabic-indic-digit"),
        pytest.param("", "HSA-id", id="empty"),
        pytest.param("   ", "HSA-id", id="blank"),
        pytest.param("SE2120000142-" + "A" * 19, "31 characters", id="32-characters"),
    ],
)
async def test_a_malformed_hsa_id_is_refused_saying_why(
    client: httpx.AsyncClient, hsa_id: str, why: str
) -> None:
    body = user_body("felaktig", **{ESERVICES: {"hsaId": hsa_id}})
    detail = assert_error(await client.post("/Users", json=body), 400, "invalidValue", why)
    assert "hsaId" in detail
    assert await total(client) == 0

    existing = await create_user(client, "finns")
    before = await get(client, location(existing))
    response = await client.patch(
        location(existing), json=patch_body({"op": "replace", "path": HSA_ID, "value": hsa_id})
    )
    assert_error(response, 400, "invalidValue", why)
    response = await client.put(
        location(existing), json=replacement(existing, **{ESERVICES: {"hsaId": hsa_id}})
    )
    assert_error(response, 400, "invalidValue", why)
    assert await get(client, location(existing)) == before


@pytest.mark.parametrize("hsa_id", [123, ["SE2120000142-ABC"], {"value": "SE2120000142-ABC"}])
async def test_an_hsa_id_that_is_not_a_string_is_refused(
    client: httpx.AsyncClient, hsa_id: Any
) -> None:
    body = user_body("felaktig", **{ESERVICES: {"hsaId": hsa_id}})
    assert_error(await client.post("/Users", json=body), 400, "invalidValue", "hsaId")
    assert await total(client) == 0


async def test_the_longest_hsa_id_is_accepted(client: httpx.AsyncClient) -> None:
    longest = "SE2120000142-" + "A" * 18
    assert len(longest) == 31
    created = await create_user(client, "lang", **{ESERVICES: {"hsaId": longest}})
    assert ext(created)["hsaId"] == longest


async def test_an_hsa_id_is_stored_in_upper_case(client: httpx.AsyncClient) -> None:
    created = await create_user(client, "gemener", **{ESERVICES: {"hsaId": "se2120000142-abc"}})
    assert ext(created)["hsaId"] == "SE2120000142-ABC"
    assert ext(await get(client, location(created)))["hsaId"] == "SE2120000142-ABC"

    response = await client.patch(
        location(created),
        json=patch_body({"op": "replace", "path": HSA_ID, "value": "se2120000142-def9"}),
    )
    assert response.status_code == 200, response.text
    assert ext(response.json())["hsaId"] == "SE2120000142-DEF9"

    response = await client.put(
        location(created),
        json=replacement(created, **{ESERVICES: {"hsaId": "se2120000142-ghi"}}),
    )
    assert response.status_code == 200, response.text
    assert ext(await get(client, location(created)))["hsaId"] == "SE2120000142-GHI"


async def test_an_hsa_id_is_unique_in_the_organisation_whatever_its_case(
    client: httpx.AsyncClient, goteborg: httpx.AsyncClient
) -> None:
    first = await create_user(client, "forsta", **{ESERVICES: {"hsaId": "SE2120000142-DUP1"}})
    body = user_body("andra", **{ESERVICES: {"hsaId": "se2120000142-dup1"}})
    detail = assert_error(await client.post("/Users", json=body), 409, "uniqueness", "hsaId")
    assert "SE2120000142-DUP1" in detail
    assert await user_names(client, "userName pr") == ["forsta"]

    # Another organisation has its own HSA-ids.
    elsewhere = await create_user(goteborg, "forsta", **{ESERVICES: {"hsaId": "se2120000142-dup1"}})
    assert ext(elsewhere)["hsaId"] == ext(first)["hsaId"] == "SE2120000142-DUP1"


async def test_changing_to_a_taken_hsa_id_is_a_conflict_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await create_user(client, "forsta", **{ESERVICES: {"hsaId": "SE2120000142-TAKEN"}})
    other = await create_user(client, "andra")
    before = await get(client, location(other))

    response = await client.patch(
        location(other),
        json=patch_body({"op": "replace", "path": HSA_ID, "value": "se2120000142-taken"}),
    )
    assert_error(response, 409, "uniqueness", "hsaId")
    response = await client.patch(
        location(other),
        json=patch_body(
            {"op": "replace", "path": "displayName", "value": "Ändrad"},
            {"op": "replace", "value": {HSA_ID: "SE2120000142-TAKEN"}},
        ),
    )
    assert_error(response, 409, "uniqueness", "hsaId")
    response = await client.put(
        location(other),
        json=replacement(
            other, displayName="Ändrad", **{ESERVICES: {"hsaId": "SE2120000142-TAKEN"}}
        ),
    )
    assert_error(response, 409, "uniqueness", "hsaId")
    assert await get(client, location(other)) == before


async def test_keeping_ones_own_hsa_id_is_no_conflict(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "samma", **{ESERVICES: {"hsaId": "SE2120000142-SELF"}})
    response = await client.put(
        location(user),
        json=replacement(user, displayName="Ny", **{ESERVICES: {"hsaId": "se2120000142-self"}}),
    )
    assert response.status_code == 200, response.text
    assert ext(response.json())["hsaId"] == "SE2120000142-SELF"


async def test_filtering_on_hsa_id(client: httpx.AsyncClient) -> None:
    for name, hsa_id in (
        ("anna", "SE2120000142-F1A"),
        ("bo", "SE2120000142-F1B"),
        ("cecilia", "SE2120000142-G2"),
    ):
        await create_user(client, name, **{ESERVICES: {"hsaId": hsa_id}})

    assert await user_names(client, f'{HSA_ID} eq "SE2120000142-F1A"') == ["anna"]
    # caseExact false: compared case-insensitively.
    assert await user_names(client, f'{HSA_ID} eq "se2120000142-f1b"') == ["bo"]
    assert await user_names(client, f'{HSA_ID.upper()} eq "se2120000142-f1b"') == ["bo"]
    assert sorted(await user_names(client, f'{HSA_ID} sw "se2120000142-F1"')) == ["anna", "bo"]
    assert await user_names(client, f'{HSA_ID} sw "SE2120000142-G"') == ["cecilia"]
    assert await user_names(client, f'{HSA_ID} eq "SE2120000142-F1"') == []
    assert sorted(await user_names(client, f"{HSA_ID} pr")) == ["anna", "bo", "cecilia"]
    assert await user_names(client, f'{HSA_ID} sw "SE2120000142-F" and userName eq "bo"') == ["bo"]

    response = await client.post(
        "/Users/.search", json={"filter": f'{HSA_ID} eq "se2120000142-g2"'}
    )
    assert response.status_code == 200, response.text
    assert [u["userName"] for u in response.json()["Resources"]] == ["cecilia"]


# -- 2. permissions on users ---------------------------------------------------------------


async def test_a_grantable_permission_reads_back_as_written(client: httpx.AsyncClient) -> None:
    created = await create_user(client, "anna", **with_permissions(GRUND, BARN))
    assert ext(created)["permissions"] == [{"value": GRUND}, {"value": BARN}]
    read = await get(client, location(created))
    assert ext(read)["permissions"] == [{"value": GRUND}, {"value": BARN}]
    listed = (await client.get("/Users")).json()["Resources"]
    assert ext(listed[0])["permissions"] == [{"value": GRUND}, {"value": BARN}]


@pytest.mark.parametrize(
    ("sub", "expected"),
    [
        ("display", ["Grundersättning", "Administrera barn utan vårdnadshavare"]),
        ("service", [STATLIG, ENSAMKOMMANDE]),
        ("permission", ["grundersattning", "administrera-barn-utan-vardnadshavare"]),
    ],
)
async def test_the_server_filled_sub_attributes_are_returned_on_request(
    client: httpx.AsyncClient, sub: str, expected: list[str]
) -> None:
    created = await create_user(client, "anna", **with_permissions(GRUND, BARN))
    for read in (
        await get(client, location(created), attributes=f"{PERMISSIONS}.{sub}"),
        (await client.get("/Users", params={"attributes": f"{PERMISSIONS}.{sub}"})).json()[
            "Resources"
        ][0],
    ):
        assert [item[sub] for item in ext(read)["permissions"]] == expected

    everything = await get(
        client,
        location(created),
        attributes=f"{PERMISSIONS}.value,{PERMISSIONS}.service,{PERMISSIONS}.permission,"
        f"{PERMISSIONS}.display",
    )
    assert ext(everything)["permissions"][0] == {
        "value": GRUND,
        "service": STATLIG,
        "permission": "grundersattning",
        "display": "Grundersättning",
    }


async def test_the_read_only_sub_attributes_cannot_be_written(client: httpx.AsyncClient) -> None:
    """What a client sends in service, permission or display is not what is stored."""
    created = await create_user(
        client,
        "anna",
        **{
            ESERVICES: {
                "hsaId": new_hsa_id(),
                "permissions": [
                    {
                        "value": GRUND,
                        "service": LANDSTING,
                        "permission": "se-asylsokande",
                        "display": "Falskt namn",
                    }
                ],
            }
        },
    )
    assert ext(created)["permissions"] == [{"value": GRUND}]
    read = await get(
        client,
        location(created),
        attributes=f"{PERMISSIONS}.service,{PERMISSIONS}.permission,{PERMISSIONS}.display",
    )
    assert ext(read)["permissions"] == [
        {"service": STATLIG, "permission": "grundersattning", "display": "Grundersättning"}
    ]


async def test_duplicate_permissions_collapse_to_one(client: httpx.AsyncClient) -> None:
    created = await create_user(client, "anna", **with_permissions(GRUND, BARN, GRUND))
    assert values(created) == sorted([GRUND, BARN])
    response = await client.patch(
        location(created),
        json=patch_body({"op": "add", "path": PERMISSIONS, "value": [{"value": BARN}]}),
    )
    assert response.status_code == 200, response.text
    assert values(response.json()) == sorted([GRUND, BARN])
    assert values(await get(client, location(created))) == sorted([GRUND, BARN])


# (who grants, the item, what the detail names)
REFUSED: list[Any] = [
    pytest.param(
        "stockholm",
        {"value": "no-such-service:grundersattning"},
        ["no-such-service:grundersattning", "unknown e-service"],
        id="unknown-e-service",
    ),
    pytest.param(
        "stockholm",
        {"value": f"{STATLIG}:no-such-permission"},
        [f"{STATLIG}:no-such-permission", "no permission"],
        id="unknown-permission",
    ),
    pytest.param(
        "stockholm",
        {"value": f"{STATLIG.upper()}:grundersattning"},
        [f"{STATLIG.upper()}:grundersattning", "unknown e-service"],
        id="ids-are-case-exact",
    ),
    pytest.param(
        "stockholm",
        {"value": f"{STATLIG}:GRUNDERSATTNING"},
        [f"{STATLIG}:GRUNDERSATTNING", "no permission"],
        id="permission-ids-are-case-exact",
    ),
    pytest.param("stockholm", {"value": "grundersattning"}, ["grundersattning"], id="no-colon"),
    pytest.param(
        "stockholm", {"value": ":grundersattning"}, [":grundersattning"], id="empty-e-service"
    ),
    pytest.param("stockholm", {"value": f"{STATLIG}:"}, [f"{STATLIG}:"], id="empty-permission"),
    pytest.param("stockholm", {"value": ""}, ["permissions"], id="empty-value"),
    # Not strings: the detail names the attribute, as no value can be quoted.
    pytest.param("stockholm", {"value": 42}, ["permission"], id="number"),
    pytest.param("stockholm", {"value": ["x:y"]}, ["permission"], id="list"),
    pytest.param("stockholm", {"value": {"value": GRUND}}, ["permission"], id="object"),
    pytest.param("stockholm", GRUND, ["permission"], id="not-an-object"),
    pytest.param(
        "stockholm",
        {"value": SE_ASYL},
        [SE_ASYL, "offered to region"],
        id="region-e-service-by-kommun",
    ),
    pytest.param(
        "region",
        {"value": GRUND},
        [GRUND, "offered to kommun"],
        id="kommun-e-service-by-region",
    ),
    pytest.param(
        "goteborg",
        {"value": BARN},
        [BARN, "agreement"],
        id="no-agreement",
    ),
]


@pytest.mark.parametrize(("who", "item", "named"), REFUSED)
async def test_a_permission_that_cannot_be_granted_is_refused_and_nothing_changes(
    client: httpx.AsyncClient,
    goteborg: httpx.AsyncClient,
    region: httpx.AsyncClient,
    who: str,
    item: Any,
    named: list[str],
) -> None:
    granter = {"stockholm": client, "goteborg": goteborg, "region": region}[who]
    grantable = SE_ASYL if who == "region" else GRUND

    body = user_body("ny", **{ESERVICES: {"hsaId": new_hsa_id(), "permissions": [item]}})
    assert_error(await granter.post("/Users", json=body), 400, "invalidValue", *named)
    # Next to a grantable one, too.
    body = user_body(
        "ny", **{ESERVICES: {"hsaId": new_hsa_id(), "permissions": [{"value": grantable}, item]}}
    )
    assert_error(await granter.post("/Users", json=body), 400, "invalidValue", *named)
    assert await total(granter) == 0

    existing = await create_user(granter, "finns", **with_permissions(grantable))
    before = await get(granter, location(existing))
    response = await granter.patch(
        location(existing), json=patch_body({"op": "add", "path": PERMISSIONS, "value": [item]})
    )
    assert_error(response, 400, "invalidValue", *named)
    response = await granter.patch(
        location(existing),
        json=patch_body({"op": "replace", "path": PERMISSIONS, "value": [item]}),
    )
    assert_error(response, 400, "invalidValue", *named)
    response = await granter.put(
        location(existing),
        json=replacement(
            existing,
            **{ESERVICES: {"hsaId": ext(existing)["hsaId"], "permissions": [item]}},
        ),
    )
    assert_error(response, 400, "invalidValue", *named)
    assert await get(granter, location(existing)) == before


@pytest.mark.parametrize("item", [{}, {"value": None}, {"display": "Grundersättning"}, None])
async def test_a_permission_without_a_value_is_refused(
    client: httpx.AsyncClient, item: Any
) -> None:
    body = user_body("ny", **{ESERVICES: {"hsaId": new_hsa_id(), "permissions": [item]}})
    assert_error(await client.post("/Users", json=body), 400, "invalidValue", "permissions")
    existing = await create_user(client, "finns", **with_permissions(GRUND))
    before = await get(client, location(existing))
    response = await client.put(
        location(existing),
        json=replacement(
            existing,
            **{
                ESERVICES: {
                    "hsaId": ext(existing)["hsaId"],
                    "permissions": [{"value": GRUND}, item],
                }
            },
        ),
    )
    assert_error(response, 400, "invalidValue", "permissions")
    assert await get(client, location(existing)) == before


async def test_each_organisation_grants_what_its_kind_and_agreements_allow(
    client: httpx.AsyncClient, goteborg: httpx.AsyncClient, region: httpx.AsyncClient
) -> None:
    assert values(await create_user(client, "s", **with_permissions(GRUND, BARN))) == sorted(
        [GRUND, BARN]
    )
    assert values(await create_user(goteborg, "g", **with_permissions(GRUND, FORSKOLA))) == sorted(
        [GRUND, FORSKOLA]
    )
    assert values(await create_user(region, "r", **with_permissions(SE_ASYL))) == [SE_ASYL]


async def test_patching_permissions(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "anna", **with_permissions(GRUND))
    where = location(user)

    async def patched(*operations: dict[str, Any]) -> list[str]:
        response = await client.patch(where, json=patch_body(*operations))
        assert response.status_code == 200, response.text
        shown = values(response.json())
        assert values(await get(client, where)) == shown
        return shown

    assert await patched(
        {"op": "add", "path": PERMISSIONS, "value": [{"value": FORSKOLA}, {"value": BARN}]}
    ) == sorted([GRUND, FORSKOLA, BARN])
    assert await patched(
        {"op": "remove", "path": f'{PERMISSIONS}[value eq "{FORSKOLA}"]'}
    ) == sorted([GRUND, BARN])
    assert await patched(
        {
            "op": "replace",
            "path": f'{PERMISSIONS}[value eq "{BARN}"]',
            "value": {"value": HEMTJANST},
        }
    ) == sorted([GRUND, HEMTJANST])
    assert await patched({"op": "replace", "path": PERMISSIONS, "value": [{"value": BARN}]}) == [
        BARN
    ]
    assert await patched({"op": "add", "value": {PERMISSIONS: [{"value": GRUND}]}}) == sorted(
        [GRUND, BARN]
    )
    assert await patched(
        {"op": "replace", "value": {ESERVICES: {"permissions": [{"value": FORSKOLA}]}}}
    ) == [FORSKOLA]
    assert await patched({"op": "remove", "path": PERMISSIONS}) == []
    assert "permissions" not in ext(await get(client, where))
    assert await patched({"op": "add", "path": PERMISSIONS, "value": [{"value": GRUND}]}) == [GRUND]

    # What PATCH stored is completed like what POST stored.
    read = await get(client, where, attributes=f"{PERMISSIONS}.display")
    assert ext(read)["permissions"] == [{"display": "Grundersättning"}]


async def test_a_patch_whose_second_operation_cannot_be_granted_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    user = await create_user(client, "anna", **with_permissions(GRUND))
    before = await get(client, location(user))
    response = await client.patch(
        location(user),
        json=patch_body(
            {"op": "add", "path": PERMISSIONS, "value": [{"value": FORSKOLA}]},
            {"op": "add", "path": PERMISSIONS, "value": [{"value": SE_ASYL}]},
            {"op": "replace", "path": "displayName", "value": "Ändrad"},
        ),
    )
    assert_error(response, 400, "invalidValue", SE_ASYL)
    assert await get(client, location(user)) == before


async def test_bulk_applies_the_same_rules_per_operation(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/Bulk",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": "nej",
                    "data": user_body("nej", **with_permissions(GRUND, SE_ASYL)),
                },
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": "ja",
                    "data": user_body("ja", **with_permissions(GRUND)),
                },
            ],
        },
    )
    assert response.status_code == 200, response.text
    refused, created = response.json()["Operations"]
    assert refused["status"] == "400"
    assert refused["response"]["scimType"] == "invalidValue"
    assert SE_ASYL in refused["response"]["detail"]
    assert created["status"] == "201"
    assert await user_names(client, "userName pr") == ["ja"]


# -- 3. agreement changes -------------------------------------------------------------------


async def test_a_permission_is_kept_but_not_granted_anew_once_the_agreement_ends(
    client: httpx.AsyncClient, engine: AsyncEngine, organisations: Organisations
) -> None:
    holder = await create_user(client, "innehavare", **with_permissions(GRUND, BARN))
    other = await create_user(client, "annan", **with_permissions(GRUND))
    where = location(holder)

    async with agreements_of(engine, organisations.stockholm, [STATLIG]):
        # Nothing is dropped silently.
        assert values(await get(client, where)) == sorted([GRUND, BARN])
        read = await get(client, where, attributes=f"{PERMISSIONS}.display")
        assert "Administrera barn utan vårdnadshavare" in [
            item["display"] for item in ext(read)["permissions"]
        ]

        response = await client.patch(
            where, json=patch_body({"op": "replace", "path": "displayName", "value": "Ändrad"})
        )
        assert response.status_code == 200, response.text
        assert values(response.json()) == sorted([GRUND, BARN])

        response = await client.put(
            where,
            json=replacement(
                holder,
                displayName="Ersatt",
                **{ESERVICES: {"hsaId": ext(holder)["hsaId"], **granting(BARN, GRUND)}},
            ),
        )
        assert response.status_code == 200, response.text
        assert values(response.json()) == sorted([GRUND, BARN])

        # What can still be granted can be added next to it.
        response = await client.patch(
            where,
            json=patch_body({"op": "add", "path": PERMISSIONS, "value": [{"value": FORSKOLA}]}),
        )
        assert response.status_code == 200, response.text
        assert values(response.json()) == sorted([GRUND, FORSKOLA, BARN])
        assert (await get(client, where))["displayName"] == "Ersatt"

        # To anyone else, it is refused: to a new user, to an existing one.
        body = user_body("ny", **with_permissions(BARN))
        assert_error(await client.post("/Users", json=body), 400, "invalidValue", BARN, "agreement")
        assert sorted(await user_names(client, "userName pr")) == ["annan", "innehavare"]
        before_other = await get(client, location(other))
        response = await client.patch(
            location(other),
            json=patch_body({"op": "add", "path": PERMISSIONS, "value": [{"value": BARN}]}),
        )
        assert_error(response, 400, "invalidValue", BARN, "agreement")
        response = await client.put(
            location(other),
            json=replacement(
                other, **{ESERVICES: {"hsaId": ext(other)["hsaId"], **granting(GRUND, BARN)}}
            ),
        )
        assert_error(response, 400, "invalidValue", BARN, "agreement")
        assert await get(client, location(other)) == before_other

        # Once given up, it cannot be taken back.
        response = await client.patch(
            where, json=patch_body({"op": "remove", "path": f'{PERMISSIONS}[value eq "{BARN}"]'})
        )
        assert response.status_code == 200, response.text
        assert values(response.json()) == sorted([GRUND, FORSKOLA])
        before = await get(client, where)
        response = await client.patch(
            where,
            json=patch_body({"op": "add", "path": PERMISSIONS, "value": [{"value": BARN}]}),
        )
        assert_error(response, 400, "invalidValue", BARN, "agreement")
        assert await get(client, where) == before

    # With the agreement back, it is grantable again.
    response = await client.patch(
        where, json=patch_body({"op": "add", "path": PERMISSIONS, "value": [{"value": BARN}]})
    )
    assert response.status_code == 200, response.text
    assert values(response.json()) == sorted([GRUND, FORSKOLA, BARN])


async def test_a_replace_that_drops_an_unagreed_permission_cannot_restore_it(
    client: httpx.AsyncClient, engine: AsyncEngine, organisations: Organisations
) -> None:
    holder = await create_user(client, "innehavare", **with_permissions(BARN))
    hsa_id = ext(holder)["hsaId"]
    async with agreements_of(engine, organisations.stockholm, [STATLIG]):
        response = await client.put(
            location(holder),
            json=replacement(holder, **{ESERVICES: {"hsaId": hsa_id, **granting(GRUND)}}),
        )
        assert response.status_code == 200, response.text
        assert values(response.json()) == [GRUND]
        response = await client.put(
            location(holder),
            json=replacement(holder, **{ESERVICES: {"hsaId": hsa_id, **granting(GRUND, BARN)}}),
        )
        assert_error(response, 400, "invalidValue", BARN, "agreement")
        assert values(await get(client, location(holder))) == [GRUND]


async def test_the_catalogue_endpoint_follows_the_agreements(
    client: httpx.AsyncClient, engine: AsyncEngine, organisations: Organisations
) -> None:
    before = await catalogue(client)
    assert before["organisation"] == {"kind": "kommun", "agreements": [STATLIG, ENSAMKOMMANDE]}
    assert GRUND in before["grantable"] and BARN in before["grantable"]
    assert not any(value.startswith(f"{LANDSTING}:") for value in before["grantable"])

    async with agreements_of(engine, organisations.stockholm, [STATLIG]):
        during = await catalogue(client)
        assert during["organisation"] == {"kind": "kommun", "agreements": [STATLIG]}
        assert BARN not in during["grantable"]
        ended = f"{ENSAMKOMMANDE}:"
        assert [v for v in before["grantable"] if not v.startswith(ended)] == during["grantable"]
        # The catalogue itself is the same: only what may be granted changed.
        assert during["services"] == before["services"]

    async with agreements_of(engine, organisations.stockholm, []):
        empty = await catalogue(client)
        assert empty["organisation"]["agreements"] == []
        assert empty["grantable"] == []
        body = user_body("ny", **with_permissions(GRUND))
        assert_error(
            await client.post("/Users", json=body), 400, "invalidValue", GRUND, "agreement"
        )

    assert await catalogue(client) == before


async def test_the_catalogue_endpoint_is_per_organisation(
    goteborg: httpx.AsyncClient, region: httpx.AsyncClient
) -> None:
    body = await catalogue(goteborg)
    assert body["organisation"] == {"kind": "kommun", "agreements": [STATLIG]}
    assert GRUND in body["grantable"]
    assert all(value.startswith(f"{STATLIG}:") for value in body["grantable"])
    body = await catalogue(region)
    assert body["organisation"] == {"kind": "region", "agreements": [LANDSTING]}
    assert SE_ASYL in body["grantable"]
    assert all(value.startswith(f"{LANDSTING}:") for value in body["grantable"])


# -- 4. retired permissions ------------------------------------------------------------------


@pytest.fixture
async def retired_client(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """Stockholm's identity system on a second app whose catalogue retires HEMTJANST."""
    text = CATALOGUE_FILE.read_text(encoding="utf-8")
    line = f'id = "{HEMTJANST.partition(":")[2]}"\n'
    assert text.count(line) == 1
    path = tmp_path / "catalogue.toml"
    path.write_text(
        text.replace(line, line + "retired = true\nretired_on = 2026-01-01\n"), encoding="utf-8"
    )
    retired: Litestar = create_app(Settings(database_url=database_url, catalogue=str(path)))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=retired),
            base_url="http://scim.test/scim/v2",
            headers=client.headers,
        ) as retired_client:
            yield retired_client
    finally:
        await retired.state.engine.dispose()


async def test_a_retired_permission_is_kept_but_not_granted(
    client: httpx.AsyncClient, retired_client: httpx.AsyncClient
) -> None:
    holder = await create_user(client, "innehavare", **with_permissions(HEMTJANST, GRUND))
    other = await create_user(client, "annan", **with_permissions(GRUND))
    where = location(holder)
    response = await client.post("/Groups", json=group_body("Hemtjänst", HEMTJANST))
    assert response.status_code == 201, response.text
    group = location(response.json())

    # A group keeps it too, and its members still change.
    response = await retired_client.patch(
        group,
        json=patch_body({"op": "add", "path": "members", "value": [{"value": holder["id"]}]}),
    )
    assert response.status_code == 204, response.text
    assert values(await get(retired_client, group), ESERVICES_GROUP) == [HEMTJANST]
    response = await retired_client.post("/Groups", json=group_body("Ny", HEMTJANST))
    assert_error(response, 400, "invalidValue", HEMTJANST, "retired")

    assert values(await get(retired_client, where)) == sorted([GRUND, HEMTJANST])
    response = await retired_client.patch(
        where,
        json=patch_body(
            {"op": "replace", "path": "displayName", "value": "Ändrad"},
            {"op": "add", "path": PERMISSIONS, "value": [{"value": FORSKOLA}]},
        ),
    )
    assert response.status_code == 200, response.text
    assert values(response.json()) == sorted([GRUND, FORSKOLA, HEMTJANST])
    response = await retired_client.put(
        where,
        json=replacement(
            holder,
            displayName="Ersatt",
            **{ESERVICES: {"hsaId": ext(holder)["hsaId"], **granting(HEMTJANST)}},
        ),
    )
    assert response.status_code == 200, response.text
    assert values(response.json()) == [HEMTJANST]

    body = user_body("ny", **with_permissions(HEMTJANST))
    assert_error(
        await retired_client.post("/Users", json=body),
        400,
        "invalidValue",
        HEMTJANST,
        "retired",
        "2026-01-01",
    )
    before_other = await get(retired_client, location(other))
    response = await retired_client.patch(
        location(other),
        json=patch_body({"op": "add", "path": PERMISSIONS, "value": [{"value": HEMTJANST}]}),
    )
    assert_error(response, 400, "invalidValue", HEMTJANST, "retired")
    assert await get(retired_client, location(other)) == before_other
    assert sorted(await user_names(retired_client, "userName pr")) == ["annan", "innehavare"]

    # Given up, it stays given up.
    response = await retired_client.patch(
        where, json=patch_body({"op": "remove", "path": f'{PERMISSIONS}[value eq "{HEMTJANST}"]'})
    )
    assert response.status_code == 200, response.text
    response = await retired_client.patch(
        where,
        json=patch_body({"op": "add", "path": PERMISSIONS, "value": [{"value": HEMTJANST}]}),
    )
    assert_error(response, 400, "invalidValue", HEMTJANST, "retired")

    # The app with the current catalogue still grants it.
    response = await client.patch(
        location(other),
        json=patch_body({"op": "add", "path": PERMISSIONS, "value": [{"value": HEMTJANST}]}),
    )
    assert response.status_code == 200, response.text


async def test_the_catalogue_endpoint_marks_a_retired_permission(
    client: httpx.AsyncClient, retired_client: httpx.AsyncClient
) -> None:
    current = await catalogue(client)
    retired = await catalogue(retired_client)
    assert catalogue_permission(current, HEMTJANST)["retired"] is False
    assert catalogue_permission(current, HEMTJANST)["retiredOn"] is None
    assert catalogue_permission(retired, HEMTJANST)["retired"] is True
    assert catalogue_permission(retired, HEMTJANST)["retiredOn"] == "2026-01-01"
    assert catalogue_permission(retired, HEMTJANST)["name"] == "Hemtjänst för nyanlända"
    assert HEMTJANST in current["grantable"]
    assert HEMTJANST not in retired["grantable"]
    assert [v for v in current["grantable"] if v != HEMTJANST] == retired["grantable"]


# -- 5. groups --------------------------------------------------------------------------------


async def test_group_permissions_follow_the_same_rules(
    client: httpx.AsyncClient, goteborg: httpx.AsyncClient, region: httpx.AsyncClient
) -> None:
    response = await client.post("/Groups", json=group_body("Handläggare", GRUND, BARN, GRUND))
    assert response.status_code == 201, response.text
    group = response.json()
    assert group[ESERVICES_GROUP]["permissions"] == [{"value": GRUND}, {"value": BARN}]
    read = await get(client, location(group))
    assert read[ESERVICES_GROUP]["permissions"] == [{"value": GRUND}, {"value": BARN}]
    read = await get(client, location(group), attributes=f"{GROUP_PERMISSIONS}.display")
    assert read[ESERVICES_GROUP]["permissions"] == [
        {"display": "Grundersättning"},
        {"display": "Administrera barn utan vårdnadshavare"},
    ]

    for granter, value, named in (
        (client, SE_ASYL, "offered to region"),
        (client, f"{STATLIG}:no-such-permission", "no permission"),
        (client, "utan-kolon", "utan-kolon"),
        (goteborg, BARN, "agreement"),
        (region, GRUND, "offered to kommun"),
    ):
        response = await granter.post("/Groups", json=group_body("Nej", value))
        assert_error(response, 400, "invalidValue", value, named)
        assert await total(granter, "/Groups") == (1 if granter is client else 0)
        if granter is client:
            before = await get(client, location(group))
            response = await client.put(
                location(group), json=group_body("Handläggare", GRUND, value)
            )
            assert_error(response, 400, "invalidValue", value, named)
            assert await get(client, location(group)) == before

    response = await region.post("/Groups", json=group_body("Region", SE_ASYL))
    assert response.status_code == 201, response.text


async def test_patching_group_permissions(client: httpx.AsyncClient) -> None:
    member = await create_user(client, "medlem")
    group = await create_group(client, "Handläggare", [member["id"]])
    where = location(group)

    async def patched(*operations: dict[str, Any]) -> list[str]:
        response = await client.patch(where, json=patch_body(*operations))
        assert response.status_code == 204, response.text
        return values(await get(client, where), ESERVICES_GROUP)

    assert await patched(
        {"op": "add", "path": GROUP_PERMISSIONS, "value": [{"value": GRUND}, {"value": BARN}]}
    ) == sorted([GRUND, BARN])
    assert await patched({"op": "remove", "path": f'{GROUP_PERMISSIONS}[value eq "{GRUND}"]'}) == [
        BARN
    ]
    assert await patched(
        {"op": "replace", "path": GROUP_PERMISSIONS, "value": [{"value": FORSKOLA}]}
    ) == [FORSKOLA]
    # Permissions and members in one request.
    assert await patched(
        {"op": "add", "path": GROUP_PERMISSIONS, "value": [{"value": GRUND}]},
        {"op": "remove", "path": f'members[value eq "{member["id"]}"]'},
    ) == sorted([FORSKOLA, GRUND])
    assert (await get(client, where)).get("members", []) == []

    before = await get(client, where)
    response = await client.patch(
        where,
        json=patch_body(
            {"op": "add", "path": "members", "value": [{"value": member["id"]}]},
            {"op": "add", "path": GROUP_PERMISSIONS, "value": [{"value": SE_ASYL}]},
        ),
    )
    assert_error(response, 400, "invalidValue", SE_ASYL)
    assert await get(client, where) == before


async def test_member_patches_of_a_group_with_permissions_still_answer_204(
    client: httpx.AsyncClient, engine: AsyncEngine, organisations: Organisations
) -> None:
    first = await create_user(client, "forsta")
    second = await create_user(client, "andra")
    response = await client.post("/Groups", json=group_body("Grupp", GRUND, BARN))
    assert response.status_code == 201, response.text
    where = location(response.json())

    async def members_after(*operations: dict[str, Any]) -> set[str]:
        response = await client.patch(where, json=patch_body(*operations))
        assert response.status_code == 204, response.text
        read = await get(client, where)
        assert values(read, ESERVICES_GROUP) == sorted([GRUND, BARN])
        return {member["value"] for member in read.get("members", [])}

    assert await members_after(
        {"op": "add", "path": "members", "value": [{"value": first["id"]}]}
    ) == {first["id"]}
    # A group keeps what it holds once the agreement has ended, and its members still change.
    async with agreements_of(engine, organisations.stockholm, [STATLIG]):
        assert await members_after(
            {"op": "add", "path": "members", "value": [{"value": second["id"]}]}
        ) == {first["id"], second["id"]}
        assert await members_after(
            {"op": "remove", "path": f'members[value eq "{first["id"]}"]'}
        ) == {second["id"]}
        assert await members_after({"op": "replace", "path": "displayName", "value": "Omdöpt"}) == {
            second["id"]
        }
        response = await client.post("/Groups", json=group_body("Ny", BARN))
        assert_error(response, 400, "invalidValue", BARN, "agreement")
    assert await members_after({"op": "remove", "path": "members"}) == set()


# -- 6. filters and sorting in SQL ----------------------------------------------------------


@pytest.fixture
async def holders(client: httpx.AsyncClient) -> None:
    """Users with various permissions, and HSA-ids that sort in a known order."""
    for name, hsa_id, granted in (
        ("grund", "SE2120000142-S3", [GRUND]),
        ("bada", "se2120000142-s1", [GRUND, BARN]),
        ("barn", "SE2120000142-S5", [BARN]),
        ("ingen", "SE2120000142-S2", []),
        ("forskola", "SE2120000142-S4", [FORSKOLA]),
    ):
        await create_user(client, name, **with_permissions(*granted, hsa_id=hsa_id))
    response = await client.post("/Groups", json=group_body("Grupp", BARN))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("scim_filter", "expected"),
    [
        (f'{PERMISSIONS}[value eq "{GRUND}"]', ["bada", "grund"]),
        (f'{PERMISSIONS}.value eq "{GRUND}"', ["bada", "grund"]),
        (f'{PERMISSIONS} eq "{GRUND}"', ["bada", "grund"]),
        (f'{PERMISSIONS}.value eq "{GRUND.upper()}"', []),
        (f'{PERMISSIONS}.service eq "{STATLIG}"', ["bada", "forskola", "grund"]),
        (f'{PERMISSIONS}[service eq "{ENSAMKOMMANDE}"]', ["bada", "barn"]),
        (f'{PERMISSIONS}.permission eq "asylsokande-i-forskola"', ["forskola"]),
        (f'{PERMISSIONS}.display co "GRUNDERS"', ["bada", "grund"]),
        (f'{PERMISSIONS}.value sw "{STATLIG}:"', ["bada", "forskola", "grund"]),
        (f"not ({PERMISSIONS} pr)", ["ingen"]),
        (f"{PERMISSIONS} pr", ["bada", "barn", "forskola", "grund"]),
        (f'not ({PERMISSIONS}.service eq "{STATLIG}")', ["barn", "ingen"]),
        (
            f'{PERMISSIONS}[service eq "{STATLIG}" and permission eq "grundersattning"]',
            ["bada", "grund"],
        ),
        (
            f'{PERMISSIONS}[value eq "{GRUND}"] and {PERMISSIONS}[value eq "{BARN}"]',
            ["bada"],
        ),
        (
            f'{PERMISSIONS}[value eq "{GRUND}"] or {PERMISSIONS}[value eq "{BARN}"]',
            ["bada", "barn", "grund"],
        ),
        (f'{PERMISSIONS}.service eq "{STATLIG}" and userName sw "g"', ["grund"]),
        (f'{PERMISSIONS}.service eq "{STATLIG}" and {HSA_ID} eq "SE2120000142-S1"', ["bada"]),
        (
            f'not ({PERMISSIONS} pr) or {PERMISSIONS}.service eq "{ENSAMKOMMANDE}"',
            ["bada", "barn", "ingen"],
        ),
        (f'{PERMISSIONS}.service eq "{LANDSTING}"', []),
        (f'not ({PERMISSIONS}[value eq "{GRUND}"])', ["barn", "forskola", "ingen"]),
        (f'{PERMISSIONS}.value ne "{GRUND}"', ["barn", "forskola", "ingen"]),
    ],
)
async def test_filtering_users_on_permissions(
    client: httpx.AsyncClient, holders: None, scim_filter: str, expected: list[str]
) -> None:
    assert sorted(await user_names(client, scim_filter)) == expected
    response = await client.post(
        "/Users/.search", json={"filter": scim_filter, "sortBy": "userName"}
    )
    assert response.status_code == 200, response.text
    assert [user["userName"] for user in response.json()["Resources"]] == expected


async def test_filtering_groups_on_permissions(client: httpx.AsyncClient, holders: None) -> None:
    for scim_filter, expected in (
        (f'{GROUP_PERMISSIONS}[value eq "{BARN}"]', 1),
        (f'{GROUP_PERMISSIONS}.service eq "{ENSAMKOMMANDE}"', 1),
        (f'{GROUP_PERMISSIONS}.service eq "{STATLIG}"', 0),
        (f"not ({GROUP_PERMISSIONS} pr)", 0),
    ):
        response = await client.get("/Groups", params={"filter": scim_filter})
        assert response.status_code == 200, response.text
        assert response.json()["totalResults"] == expected, scim_filter


async def test_sorting_by_hsa_id(client: httpx.AsyncClient, holders: None) -> None:
    ascending = ["bada", "ingen", "grund", "forskola", "barn"]
    assert await user_names(client, "userName pr", sortBy=HSA_ID) == ascending
    assert (
        await user_names(client, "userName pr", sortBy=HSA_ID, sortOrder="descending")
        == ascending[::-1]
    )
    assert await user_names(client, f'{PERMISSIONS}.service eq "{STATLIG}"', sortBy=HSA_ID) == [
        "bada",
        "grund",
        "forskola",
    ]
    page = (
        await client.get("/Users", params={"sortBy": HSA_ID, "count": "2", "startIndex": "2"})
    ).json()
    assert [user["userName"] for user in page["Resources"]] == ["ingen", "grund"]
    assert page["totalResults"] == 5

    # Cursor paging (RFC 9865) in that order.
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        response = await client.get(
            "/Users", params={"sortBy": HSA_ID, "count": "2", "cursor": cursor}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [user["userName"] for user in body["Resources"]]
        if "nextCursor" not in body:
            break
        cursor = body["nextCursor"]
    assert seen == ascending


# -- 7. administrator and user are exclusive ------------------------------------------------


async def test_an_administrator_cannot_also_be_a_user(
    client: httpx.AsyncClient, goteborg: httpx.AsyncClient, administrator: str
) -> None:
    for hsa_id in (administrator, administrator.lower()):
        body = user_body("admin", **with_permissions(GRUND, hsa_id=hsa_id))
        assert_error(await client.post("/Users", json=body), 409, None, "administrator")
    assert await total(client) == 0

    user = await create_user(client, "anvandare", **with_permissions(GRUND))
    before = await get(client, location(user))
    response = await client.put(
        location(user),
        json=replacement(user, **{ESERVICES: {"hsaId": administrator, **granting(GRUND)}}),
    )
    assert_error(response, 409, None, "administrator")
    response = await client.patch(
        location(user),
        json=patch_body({"op": "replace", "path": HSA_ID, "value": administrator.lower()}),
    )
    assert_error(response, 409, None, "administrator")
    response = await client.patch(
        location(user),
        json=patch_body(
            {"op": "replace", "path": "displayName", "value": "Ändrad"},
            {"op": "replace", "value": {ESERVICES: {"hsaId": administrator}}},
        ),
    )
    assert_error(response, 409, None, "administrator")
    assert await get(client, location(user)) == before
    assert await user_names(client, f'{HSA_ID} eq "{administrator}"') == []

    # Another organisation's user may have that HSA-id.
    elsewhere = await create_user(
        goteborg, "admin", **with_permissions(GRUND, hsa_id=administrator)
    )
    assert ext(elsewhere)["hsaId"] == administrator


async def test_an_administrator_and_a_user_added_at_once_are_never_both(
    client: httpx.AsyncClient, engine: AsyncEngine, organisations: Organisations
) -> None:
    """The operator adds an administrator while the identity system writes a user with the
    same HSA-id (POST, Bulk, PUT, PATCH in turn), 48 times: at most one of them succeeds
    each time, and never both roles end up held."""
    async with engine.connect() as connection:
        tenant = await Operator(connection, "tests").tenant(organisations.stockholm.org_number)

    async def add_administrator(hsa_id: str) -> bool:
        try:
            async with engine.begin() as connection:
                await Operator(connection, "tests").add_administrator(
                    tenant, hsa_id, "Rut", "Racer", "rut.racer@stockholm.se"
                )
        except OperatorError:
            return False
        return True

    async def write_user(way: str, hsa_id: str, existing: dict[str, Any]) -> httpx.Response:
        body = user_body(f"racer-{hsa_id}", **with_permissions(GRUND, hsa_id=hsa_id))
        if way == "post":
            return await client.post("/Users", json=body)
        if way == "bulk":
            operation = {"method": "POST", "path": "/Users", "bulkId": "u", "data": body}
            request = {"schemas": [BULK_REQUEST], "Operations": [operation]}
            response = await client.post("/Bulk", json=request)
            status = int(response.json()["Operations"][0]["status"])
            return httpx.Response(status, json=response.json()["Operations"][0].get("response"))
        if way == "put":
            replaced = replacement(existing, **{ESERVICES: {"hsaId": hsa_id, **granting(GRUND)}})
            return await client.put(location(existing), json=replaced)
        operation = {"op": "replace", "path": HSA_ID, "value": hsa_id}
        return await client.patch(location(existing), json=patch_body(operation))

    both = []
    hsa_ids = []
    try:
        for round_number in range(48):
            way = ("post", "bulk", "put", "patch")[round_number % 4]
            existing = await create_user(
                client, f"before-{round_number}", **with_permissions(GRUND)
            )
            hsa_id = new_hsa_id()
            hsa_ids.append(hsa_id)
            admin_added, response = await asyncio.gather(
                add_administrator(hsa_id), write_user(way, hsa_id, existing)
            )
            assert response.status_code in (200, 201, 409), response.text
            if admin_added and response.status_code < 300:
                both.append((way, hsa_id))
            assert admin_added or response.status_code < 300, "neither got the HSA-id"
        assert both == [], f"both roles in {len(both)} of 48 rounds"
        for hsa_id in hsa_ids:
            users = await user_names(client, f'{HSA_ID} eq "{hsa_id}"')
            async with engine.connect() as connection:
                admins = await identities.administrators_of(connection, tenant.id)
            assert not (users and hsa_id in {admin.hsa_id for admin in admins})
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                delete(administrators).where(administrators.c.hsa_id.in_(hsa_ids))
            )


# -- 8. entitlements are read-only -------------------------------------------------------------


async def test_entitlements_are_read_only_in_the_published_schema(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"/Schemas/{CORE_USER}")
    assert response.status_code == 200, response.text
    attributes = {a["name"]: a for a in response.json()["attributes"]}
    assert attributes["entitlements"]["mutability"] == "readOnly"


async def test_entitlements_cannot_be_written(client: httpx.AsyncClient) -> None:
    body = user_body("anna", entitlements=[{"value": "egen-rattighet", "type": "x"}])
    response = await client.post("/Users", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    where = location(created)

    def written(document: dict[str, Any]) -> list[Any]:
        return [e for e in document.get("entitlements", []) if e.get("value") == "egen-rattighet"]

    assert written(created) == []
    assert written(await get(client, where)) == []

    before = await get(client, where)
    for operation in (
        {"op": "add", "path": "entitlements", "value": [{"value": "egen-rattighet"}]},
        {"op": "replace", "path": "entitlements", "value": [{"value": "egen-rattighet"}]},
        {"op": "add", "value": {"entitlements": [{"value": "egen-rattighet"}]}},
        {"op": "remove", "path": "entitlements"},
    ):
        response = await client.patch(where, json=patch_body(operation))
        assert_error(response, 400, "mutability")
    assert await get(client, where) == before

    response = await client.put(
        where, json={**replacement(created), "entitlements": [{"value": "egen-rattighet"}]}
    )
    assert response.status_code == 200, response.text
    assert written(response.json()) == []


async def test_a_write_that_completes_a_stale_permission_anew_is_made_in_its_transaction(
    app: Litestar, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """A permission stored before the catalogue renamed it is completed anew by the next
    write of its user. That changes what security events depend on (the permissions), so on
    PostgreSQL the write is not one statement alone: it is made in its transaction, which
    compares the audiences and tells the events (``ResourceService._written_alone``)."""
    user = await create_user(
        client,
        "inaktuell@kommun.se",
        **{ESERVICES: {"hsaId": new_hsa_id(), "permissions": [{"value": GRUND}]}},
    )
    (completed,) = user[ESERVICES]["permissions"]
    async with engine.begin() as connection:
        query = select(resources.c.data).where(resources.c.id == user["id"])
        data = (await connection.execute(query)).scalar_one()
        data[ESERVICES]["permissions"][0]["display"] = "Ett namn katalogen inte har längre"
        await connection.execute(
            update(resources).where(resources.c.id == user["id"]).values(data=data)
        )

    with captured(app.state.engine) as seen:
        response = await client.patch(
            location(user),
            json=patch_body({"op": "replace", "path": "name.givenName", "value": "Ny"}),
        )
    assert response.status_code == 200, response.text
    assert response.json()[ESERVICES]["permissions"] == [completed]
    # The audit record is a statement of the transaction, not part of the write's own.
    assert any(s.lstrip().startswith("INSERT INTO audit_log") for s in seen), seen
    stored = (await client.get(location(user))).json()
    assert stored[ESERVICES]["permissions"] == [completed]
    assert stored["name"]["givenName"] == "Ny"
