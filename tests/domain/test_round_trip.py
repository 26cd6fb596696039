"""A resource read in full (GET without ``attributes``) and sent back unchanged with PUT is
answered 200 with the same resource, version included: what the server writes, it takes.
Okta updates this way (GET, change, PUT), and so does any client that keeps what it read."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import (
    ENSAMKOMMANDE,
    ENTERPRISE,
    ESERVICES,
    ESERVICES_GROUP,
    GROUP_SCHEMA,
    STATLIG,
    USER_SCHEMA,
    new_hsa_id,
)

SERIAL = itertools.count(1)
# What Stockholm (the test organisation) may grant: its agreements' permissions.
GRANTABLE = [
    f"{STATLIG}:grundersattning",
    f"{STATLIG}:asylsokande-i-forskola",
    f"{STATLIG}:hemtjanst-for-nyanlanda",
    f"{ENSAMKOMMANDE}:administrera-barn-utan-vardnadshavare",
]
TEXT = st.from_regex(r"[A-Za-zÅÄÖåäöé][A-Za-zÅÄÖåäöé .'-]{0,18}[A-Za-zÅÄÖåäöé]", fullmatch=True)
LOCAL = st.from_regex(r"[a-z][a-z0-9.]{0,10}[a-z0-9]", fullmatch=True).filter(
    lambda local: ".." not in local
)
DOMAINS = st.sampled_from(["stockholm.se", "skola.stockholm.se", "okta.local", "intranet"])
TYPES = st.sampled_from(["work", "home", "other"])


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def emails(draw: st.DrawFn) -> list[dict[str, Any]]:
    found = []
    for number in range(draw(st.integers(0, 3))):
        email: dict[str, Any] = {"value": f"{draw(LOCAL)}{number}@{draw(DOMAINS)}"}
        if draw(st.booleans()):
            email["type"] = draw(TYPES)
        found.append(email)
    if found and draw(st.booleans()):
        found[draw(st.integers(0, len(found) - 1))]["primary"] = True
    return found


@st.composite
def users(draw: st.DrawFn) -> dict[str, Any]:
    serial = next(SERIAL)
    body: dict[str, Any] = {
        "schemas": [USER_SCHEMA, ESERVICES],
        "userName": f"rt{serial}.{draw(LOCAL)}",
        ESERVICES: {"hsaId": new_hsa_id()},
    }
    permissions = draw(st.lists(st.sampled_from(GRANTABLE), unique=True, max_size=3))
    if permissions:
        body[ESERVICES]["permissions"] = [{"value": value} for value in permissions]
    name = {
        key: value
        for key in ("givenName", "familyName", "middleName", "honorificPrefix", "formatted")
        if (value := draw(_optional(TEXT))) is not None
    }
    if name:
        body["name"] = name
    for key in ("displayName", "nickName", "title", "userType"):
        if (value := draw(_optional(TEXT))) is not None:
            body[key] = value
    for key, values in (
        ("preferredLanguage", ["sv-SE", "en"]),
        ("locale", ["sv-SE", "fi-FI"]),
        ("timezone", ["Europe/Stockholm"]),
        ("externalId", [f"ext-{serial}", f"00u{serial}x"]),
    ):
        if draw(st.booleans()):
            body[key] = draw(st.sampled_from(values))
    if draw(st.booleans()):
        body["active"] = draw(st.booleans())
    if found := draw(emails()):
        body["emails"] = found
    if draw(st.booleans()):
        body["phoneNumbers"] = [{"value": "+46 8 508 290 00", "type": draw(TYPES)}]
    if draw(st.booleans()):
        address = {"type": "work", "locality": draw(TEXT), "country": "SE"}
        if draw(st.booleans()):
            address["postalCode"] = "105 35"
        body["addresses"] = [address]
    enterprise = {
        key: value
        for key in ("employeeNumber", "department", "costCenter", "organization", "division")
        if (value := draw(_optional(TEXT))) is not None
    }
    if draw(st.booleans()):
        # Resolved to an existing user's id when sent (``_resolved``).
        enterprise["manager"] = {"value": draw(st.integers(0, 9))}
    if enterprise:
        body["schemas"].append(ENTERPRISE)
        body[ENTERPRISE] = enterprise
    return body


@st.composite
def groups(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA],
        "displayName": f"{draw(TEXT)} {next(SERIAL)}",
    }
    chosen = draw(st.lists(st.integers(0, 9), unique=True, max_size=4))
    if chosen:
        body["members"] = [{"value": slot} for slot in chosen]
    if draw(st.booleans()):
        body["externalId"] = f"grp-{next(SERIAL)}"
    permissions = draw(st.lists(st.sampled_from(GRANTABLE), unique=True, max_size=2))
    if permissions:
        body["schemas"].append(ESERVICES_GROUP)
        body[ESERVICES_GROUP] = {"permissions": [{"value": value} for value in permissions]}
    return body


def _resolved(body: dict[str, Any], user_ids: list[str]) -> dict[str, Any]:
    """The body with each member and manager slot made the id of an existing user (or
    dropped while there is none)."""
    if "members" in body:
        chosen = {user_ids[slot["value"] % len(user_ids)] for slot in body["members"]}
        body["members"] = [{"value": user_id} for user_id in sorted(chosen) if user_ids]
    manager = body.get(ENTERPRISE, {}).pop("manager", None)
    if manager is not None and user_ids:
        body[ENTERPRISE]["manager"] = {"value": user_ids[manager["value"] % len(user_ids)]}
    return body


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_a_resource_read_in_full_is_taken_back_unchanged(
    client: httpx.AsyncClient, data: Any
) -> None:
    if data.draw(st.booleans(), label="a group"):
        endpoint, body = "/Groups", data.draw(groups())
    else:
        endpoint, body = "/Users", data.draw(users())
    listed = (await client.get("/Users", params={"count": 10})).json().get("Resources", [])
    body = _resolved(body, [user["id"] for user in listed])
    created = await client.post(endpoint, json=body)
    assert created.status_code == 201, created.text
    location = f"{endpoint}/{created.json()['id']}"
    read = (await client.get(location)).json()

    response = await client.put(location, json=read)
    assert response.status_code == 200, response.text
    assert response.json() == read
    assert (await client.get(location)).json() == read
