"""Discovery (RFC 7644 §4, RFC 7643 §5-7), SCIM errors for unknown routes, and the
agreement between the schemas the server publishes and the ones it validates with."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from extensions.catalogue import load
from scim.settings import Settings
from tests.conftest import (
    ENTERPRISE,
    ESERVICES,
    ESERVICES_GROUP,
    GROUP_SCHEMA,
    SCIM,
    USER_SCHEMA,
    create_user,
    user_body,
)

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
BASE = "http://scim.test/scim/v2"


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(SCIM)
    body: dict[str, Any] = response.json()
    return body


def assert_scim_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM)
    body: dict[str, Any] = response.json()
    assert ERROR_SCHEMA in body["schemas"]
    assert body["status"] == str(status)
    return body


def attribute(schema: dict[str, Any], name: str) -> dict[str, Any]:
    found = [a for a in schema["attributes"] if a["name"].lower() == name.lower()]
    assert len(found) == 1, name
    return found[0]


# -- /ServiceProviderConfig ---------------------------------------------------------


async def test_service_provider_config(client: httpx.AsyncClient, settings: Settings) -> None:
    config = await get_json(client, "/ServiceProviderConfig")
    assert config["schemas"] == [SPC_SCHEMA]
    assert config["patch"] == {"supported": True}
    assert config["filter"]["supported"] is True
    assert config["filter"]["maxResults"] == settings.max_page_size
    assert config["sort"] == {"supported": True}
    assert config["etag"] == {"supported": True}
    assert config["changePassword"]["supported"] is False
    bulk = config["bulk"]
    assert isinstance(bulk["supported"], bool)
    assert bulk["maxOperations"] == settings.max_bulk_operations
    assert bulk["maxPayloadSize"] == settings.max_payload_size
    pagination = config["pagination"]
    assert pagination["cursor"] is True
    assert pagination["index"] is True
    assert pagination["defaultPaginationMethod"] in ("index", "cursor")
    assert pagination["defaultPageSize"] == settings.default_page_size
    assert pagination["maxPageSize"] == settings.max_page_size
    schemes = config["authenticationSchemes"]
    assert schemes, "RFC 7643 §5: authenticationSchemes is REQUIRED"
    for scheme in schemes:
        assert scheme["type"]
        assert scheme["name"]
        assert scheme["description"]
    assert config["meta"]["resourceType"] == "ServiceProviderConfig"
    assert config["meta"]["location"] == f"{BASE}/ServiceProviderConfig"


async def test_service_provider_config_answers_what_the_server_does(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """What is advertised holds: sorting and paging work, and pages stay under maxResults."""
    config = await get_json(client, "/ServiceProviderConfig")
    for index in range(3):
        await create_user(client, f"spc{index}@x.se")
    listing = await get_json(
        client, "/Users", sortBy="userName", count=config["filter"]["maxResults"] + 50
    )
    assert listing["itemsPerPage"] <= config["filter"]["maxResults"]
    assert [r["userName"] for r in listing["Resources"]] == ["spc0@x.se", "spc1@x.se", "spc2@x.se"]
    first = await get_json(client, "/Users", cursor="", count=2)
    assert "nextCursor" in first


# -- /ResourceTypes -----------------------------------------------------------------


async def test_resource_types(client: httpx.AsyncClient) -> None:
    listing = await get_json(client, "/ResourceTypes")
    assert listing["schemas"] == [LIST_SCHEMA]
    assert listing["totalResults"] == len(listing["Resources"]) == 2
    by_name = {item["name"]: item for item in listing["Resources"]}
    assert set(by_name) == {"User", "Group"}

    user = by_name["User"]
    assert user["schemas"] == [RESOURCE_TYPE_SCHEMA]
    assert user["id"] == "User"
    assert user["endpoint"] == "/Users"
    assert user["schema"] == USER_SCHEMA
    assert user["schemaExtensions"] == [
        {"schema": ENTERPRISE, "required": False},
        {"schema": ESERVICES, "required": True},
    ]

    group = by_name["Group"]
    assert group["id"] == "Group"
    assert group["endpoint"] == "/Groups"
    assert group["schema"] == GROUP_SCHEMA
    assert group["schemaExtensions"] == [{"schema": ESERVICES_GROUP, "required": False}]

    for item in listing["Resources"]:
        assert item["meta"]["resourceType"] == "ResourceType"
        assert item["meta"]["location"] == f"{BASE}/ResourceTypes/{item['id']}"


async def test_resource_type_by_id(client: httpx.AsyncClient) -> None:
    listing = await get_json(client, "/ResourceTypes")
    for item in listing["Resources"]:
        single = await get_json(client, f"/ResourceTypes/{item['id']}")
        assert single == item
    user = await get_json(client, "/ResourceTypes/User")
    assert user["schema"] == USER_SCHEMA
    assert user["schemaExtensions"][0]["schema"] == ENTERPRISE
    assert_scim_error(await client.get("/ResourceTypes/Nope"), 404)


async def test_resource_type_endpoints_are_served(client: httpx.AsyncClient) -> None:
    listing = await get_json(client, "/ResourceTypes")
    for item in listing["Resources"]:
        served = await get_json(client, item["endpoint"])
        assert served["schemas"] == [LIST_SCHEMA]


# -- /Schemas -----------------------------------------------------------------------


async def test_schemas(client: httpx.AsyncClient) -> None:
    listing = await get_json(client, "/Schemas")
    assert listing["schemas"] == [LIST_SCHEMA]
    ids = [item["id"] for item in listing["Resources"]]
    assert sorted(ids) == sorted(
        [USER_SCHEMA, ENTERPRISE, ESERVICES, GROUP_SCHEMA, ESERVICES_GROUP]
    )
    assert listing["totalResults"] == 5
    for item in listing["Resources"]:
        assert item["schemas"] == [SCHEMA_SCHEMA]
        assert item["name"]
        assert item["attributes"]
        assert item["meta"]["resourceType"] == "Schema"
        assert item["meta"]["location"] == f"{BASE}/Schemas/{item['id']}"
        for attr in item["attributes"]:
            assert {"name", "type", "multiValued", "required", "mutability", "returned"} <= set(
                attr
            )


async def test_schema_by_urn(client: httpx.AsyncClient) -> None:
    listing = await get_json(client, "/Schemas")
    for item in listing["Resources"]:
        single = await get_json(client, f"/Schemas/{item['id']}")
        assert single == item
    user = await get_json(client, f"/Schemas/{USER_SCHEMA}")
    assert user["id"] == USER_SCHEMA
    assert user["name"] == "User"
    enterprise = await get_json(client, f"/Schemas/{ENTERPRISE}")
    assert {a["name"] for a in enterprise["attributes"]} >= {
        "employeeNumber",
        "costCenter",
        "organization",
        "division",
        "department",
        "manager",
    }
    group = await get_json(client, f"/Schemas/{GROUP_SCHEMA}")
    members = attribute(group, "members")
    assert members["multiValued"] is True
    assert {s["name"] for s in members["subAttributes"]} >= {"value", "$ref", "type", "display"}


async def test_unknown_schema_is_a_scim_404(client: httpx.AsyncClient) -> None:
    body = assert_scim_error(await client.get("/Schemas/urn:unknown"), 404)
    assert body["detail"]
    assert_scim_error(await client.get(f"/Schemas/{USER_SCHEMA}:userName"), 404)


async def test_user_schema_attributes(client: httpx.AsyncClient) -> None:
    user = await get_json(client, f"/Schemas/{USER_SCHEMA}")
    user_name = attribute(user, "userName")
    assert user_name["required"] is True
    assert user_name["caseExact"] is False
    assert user_name["uniqueness"] == "server"
    password = attribute(user, "password")
    assert password["returned"] == "never"
    assert password["mutability"] == "writeOnly"
    groups = attribute(user, "groups")
    assert groups["mutability"] == "readOnly"
    assert groups["multiValued"] is True
    emails = attribute(user, "emails")
    assert emails["multiValued"] is True
    assert {s["name"] for s in emails["subAttributes"]} >= {"value", "type", "primary"}
    # id, externalId and meta are common attributes (RFC 7643 §3.1), not User ones.
    assert not [a for a in user["attributes"] if a["name"] in ("id", "meta")]


# -- the published schemas are the ones validation uses -------------------------------


async def test_required_attributes_are_required(client: httpx.AsyncClient) -> None:
    user_schema = await get_json(client, f"/Schemas/{USER_SCHEMA}")
    required = [a["name"] for a in user_schema["attributes"] if a["required"]]
    assert required == ["userName"]
    response = await client.post("/Users", json={"schemas": [USER_SCHEMA], "displayName": "X"})
    body = assert_scim_error(response, 400)
    assert body.get("scimType") == "invalidValue"
    assert "userName" in body["detail"]

    group_schema = await get_json(client, f"/Schemas/{GROUP_SCHEMA}")
    assert [a["name"] for a in group_schema["attributes"] if a["required"]] == ["displayName"]
    response = await client.post("/Groups", json={"schemas": [GROUP_SCHEMA], "members": []})
    assert_scim_error(response, 400)
    # PUT replaces the whole resource: the required attribute is required there too.
    user = await create_user(client, "required@x.se")
    response = await client.put(
        f"/Users/{user['id']}", json={"schemas": [USER_SCHEMA], "displayName": "X"}
    )
    assert_scim_error(response, 400)


async def test_case_insensitive_uniqueness_as_published(client: httpx.AsyncClient) -> None:
    # userName: caseExact false, uniqueness server.
    await create_user(client, "Unique@x.se")
    response = await client.post("/Users", json=user_body("unique@X.SE"))
    body = assert_scim_error(response, 409)
    assert body.get("scimType") == "uniqueness"


async def test_attributes_outside_the_schemas_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/Users", json=user_body("x@x.se", favouriteColour="red"))
    assert_scim_error(response, 400)
    response = await client.post(
        "/Users",
        json=user_body("y@x.se", schemas=[USER_SCHEMA, ENTERPRISE], **{ENTERPRISE: {"nope": 1}}),
    )
    assert_scim_error(response, 400)


async def test_published_extension_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/Users",
        json=user_body(
            "ext@x.se", schemas=[USER_SCHEMA, ENTERPRISE], **{ENTERPRISE: {"department": "IT"}}
        ),
    )
    assert response.status_code == 201, response.text
    assert response.json()[ENTERPRISE] == {"department": "IT"}


async def test_read_only_and_never_returned_attributes_behave_as_published(
    client: httpx.AsyncClient,
) -> None:
    user_schema = await get_json(client, f"/Schemas/{USER_SCHEMA}")
    never = [a["name"] for a in user_schema["attributes"] if a["returned"] == "never"]
    assert never == ["password"]
    response = await client.post("/Users", json=user_body("pw@x.se", password="s3cret-Pass"))
    assert response.status_code == 201
    for name in never:
        assert name not in response.json()
        assert name not in (await get_json(client, f"/Users/{response.json()['id']}"))
    # groups is readOnly: a client-sent value is ignored (RFC 7643 §2.2).
    response = await client.post(
        "/Users", json=user_body("ro@x.se", groups=[{"value": "not-a-group"}])
    )
    assert response.status_code == 201, response.text
    assert "groups" not in response.json()


# -- errors on unknown routes and methods -----------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/Nope", "/Users/x/y", "/Users/x/y/z", "/ServiceProviderConfig/x", "/Users/does-not-exist"],
)
async def test_unknown_routes_are_scim_404(client: httpx.AsyncClient, path: str) -> None:
    body = assert_scim_error(await client.get(path), 404)
    assert body["detail"]


async def test_unknown_route_for_writes_is_scim_404(client: httpx.AsyncClient) -> None:
    assert_scim_error(await client.post("/Nope", json={"schemas": [USER_SCHEMA]}), 404)
    assert_scim_error(await client.delete("/Nope/x"), 404)


async def test_unsupported_methods_on_discovery_are_scim_errors(
    client: httpx.AsyncClient,
) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = await client.request(method, "/ServiceProviderConfig", json={})
        assert_scim_error(response, 405)
        response = await client.request(method, f"/Schemas/{USER_SCHEMA}", json={})
        assert response.status_code in (404, 405)
        assert_scim_error(response, response.status_code)


# -- discovery query parameters (RFC 7644 §4) -------------------------------------------


async def test_discovery_ignores_paging_and_sorting(client: httpx.AsyncClient) -> None:
    everything = await get_json(client, "/Schemas")
    paged = await get_json(client, "/Schemas", startIndex=2, count=1, sortBy="name")
    assert paged["Resources"] == everything["Resources"]
    assert paged["totalResults"] == 5
    types = await get_json(client, "/ResourceTypes", count=1)
    assert len(types["Resources"]) == 2


@pytest.mark.parametrize("path", ["/Schemas", "/ResourceTypes", "/ServiceProviderConfig"])
async def test_discovery_refuses_a_filter(client: httpx.AsyncClient, path: str) -> None:
    # RFC 7644 §4: "If a "filter" is provided, the service provider SHOULD respond
    # with HTTP status code 403 (Forbidden)", so that no client takes every
    # resource for a match.
    response = await client.get(path, params={"filter": 'id eq "urn:nope"'})
    assert_scim_error(response, 403)


# -- content type and meta ----------------------------------------------------------------


async def test_discovery_resources_carry_meta_and_resolve(client: httpx.AsyncClient) -> None:
    documents = [await get_json(client, "/ServiceProviderConfig")]
    for path in ("/ResourceTypes", "/Schemas"):
        documents += (await get_json(client, path))["Resources"]
    assert len(documents) == 8
    for document in documents:
        meta = document["meta"]
        assert meta["resourceType"] in ("ServiceProviderConfig", "ResourceType", "Schema")
        assert meta["location"].startswith(f"{BASE}/")
        response = await client.get(meta["location"])
        assert response.status_code == 200, meta["location"]
        assert response.headers["content-type"].startswith(SCIM)
        assert response.json() == document


async def test_responses_are_application_scim_json(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "ct@x.se")
    responses = [
        await client.get("/ServiceProviderConfig"),
        await client.get("/ResourceTypes"),
        await client.get("/Schemas"),
        await client.get(f"/Users/{user['id']}"),
        await client.get("/Users"),
        await client.get("/Nope"),
        await client.get("/Schemas/urn:unknown"),
        await client.post("/Users", json={"schemas": [USER_SCHEMA]}),
    ]
    for response in responses:
        assert response.headers["content-type"].split(";")[0].strip() == SCIM, response.url


async def test_the_extension_schema_lists_the_catalogue_permissions(
    client: httpx.AsyncClient,
) -> None:
    for urn in (ESERVICES, ESERVICES_GROUP):
        schema = await get_json(client, f"/Schemas/{urn}")
        permissions = next(a for a in schema["attributes"] if a["name"] == "permissions")
        value = next(s for s in permissions["subAttributes"] if s["name"] == "value")
        assert "ansok-om-statlig-ersattning:grundersattning" in value["canonicalValues"]
        assert "e-tjanst-for-landsting:se-asylsokande" in value["canonicalValues"]
        catalogue = load()
        current = [
            f"{service.id}:{permission.id}"
            for service in catalogue.services
            for permission in service.permissions
            if not permission.retired
        ]
        assert value["canonicalValues"] == current
