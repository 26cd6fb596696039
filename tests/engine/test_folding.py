"""Unique keys and case-insensitive searches compare text as people read it (NFKC and case
folding, ``scim.protocol.folding``), while what is stored is the value as sent."""

from __future__ import annotations

import asyncio
import unicodedata
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import GROUP_SCHEMA, PATCH_SCHEMA, api_client
from tests.engine.conftest import create_user, user_body

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"

NFD_ASA = unicodedata.normalize("NFD", "åsa")
FULL_WIDTH_ADMIN = "".join(chr(0xFF41 + ord(c) - ord("a")) for c in "admin")
LIGATURE_FILE = "\ufb01le"  # LATIN SMALL LIGATURE FI, then "le"

# Pairs that read the same; each was a second user before.
LOOK_ALIKES = [
    ("åsa", NFD_ASA),
    (NFD_ASA, "ÅSA"),
    ("straße", "STRASSE"),
    ("Strasse", "straße"),
    (FULL_WIDTH_ADMIN, "admin"),
    ("ADMIN", FULL_WIDTH_ADMIN),
    (LIGATURE_FILE, "FILE"),
    ("anna@example.se", "ANNA@EXAMPLE.SE"),
]


def assert_taken(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert ERROR in body["schemas"] and body["scimType"] == "uniqueness", body


async def user_names(client: httpx.AsyncClient, scim_filter: str) -> list[str]:
    response = await client.get("/Users", params={"filter": scim_filter})
    assert response.status_code == 200, response.text
    return sorted(user["userName"] for user in response.json()["Resources"])


@pytest.mark.parametrize(("first", "second"), LOOK_ALIKES)
async def test_a_user_name_that_reads_the_same_is_taken(
    client: httpx.AsyncClient, first: str, second: str
) -> None:
    created = await create_user(client, first)
    assert created["userName"] == first, "stored as sent"
    assert_taken(await client.post("/Users", json=user_body(second)))

    other = await create_user(client, "someone.else")
    where = f"/Users/{other['id']}"
    assert_taken(await client.put(where, json=user_body(second)))
    patch = {"op": "replace", "path": "userName", "value": second}
    assert_taken(await client.patch(where, json={"schemas": [PATCH_SCHEMA], "Operations": [patch]}))
    operation = {"method": "POST", "path": "/Users", "bulkId": "b", "data": user_body(second)}
    response = await client.post(
        "/Bulk", json={"schemas": [BULK_REQUEST], "Operations": [operation]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["Operations"][0]["status"] == "409"

    # Either spelling finds the one user, and reads it back as it was sent.
    for spelling in (first, second):
        assert await user_names(client, f'userName eq "{spelling}"') == [first]
    stored = await client.get(f"/Users/{created['id']}")
    assert stored.json()["userName"] == first


async def test_the_same_name_in_two_spellings_in_one_bulk_request(
    client: httpx.AsyncClient,
) -> None:
    operations = [
        {"method": "POST", "path": "/Users", "bulkId": str(n), "data": user_body(name)}
        for n, name in enumerate(("straße", "STRASSE", FULL_WIDTH_ADMIN, "Admin"))
    ]
    response = await client.post(
        "/Bulk", json={"schemas": [BULK_REQUEST], "Operations": operations}
    )
    statuses = [operation["status"] for operation in response.json()["Operations"]]
    assert statuses == ["201", "409", "201", "409"]


async def test_case_insensitive_search_folds_as_uniqueness_does(
    client: httpx.AsyncClient,
) -> None:
    fine = "\ufb01ne"
    for name in ("Åsa Öberg", "Straßenbahn", fine):
        await create_user(client, name.replace(" ", "."), displayName=name, externalId=name)
    assert await user_names(client, 'displayName sw "STRASS"') == ["Straßenbahn"]
    assert await user_names(client, 'userName co "FIN"') == [fine]
    nfd = unicodedata.normalize("NFD", "ÅSA")
    assert await user_names(client, f'displayName sw "{nfd}"') == ["Åsa.Öberg"]
    # A case-exact attribute is compared as sent.
    assert await user_names(client, 'externalId eq "STRASSENBAHN"') == []
    assert await user_names(client, 'externalId eq "Straßenbahn"') == ["Straßenbahn"]


async def test_a_group_display_name_search_folds(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Gatukontoret Straße"}
    )
    assert response.status_code == 201, response.text
    found = await client.get("/Groups", params={"filter": 'displayName ew "STRASSE"'})
    assert [g["displayName"] for g in found.json()["Resources"]] == ["Gatukontoret Straße"]


async def test_a_name_too_long_once_folded_is_400(client: httpx.AsyncClient) -> None:
    # U+FDFA folds to 18 characters: 20 of them are 360 characters as compared.
    response = await client.post("/Users", json=user_body("\ufdfa" * 20))
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidValue"
    assert "folded" in response.json()["detail"]


def _spellings(name: str) -> st.SearchStrategy[str]:
    """Ways of writing ``name`` that a person reads as the same name."""
    full_width = "".join(chr(ord(c) - 0x21 + 0xFF01) if "!" <= c <= "~" else c for c in name)
    return st.sampled_from(
        [
            name.upper(),
            name.swapcase(),
            unicodedata.normalize("NFD", name),
            unicodedata.normalize("NFC", name),
            full_width,
            name.replace("ss", "ß"),
        ]
    )


NAMES = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzåäöéüss.-"), min_size=3, max_size=12
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_no_two_users_read_the_same(client: httpx.AsyncClient, data: Any) -> None:
    name = data.draw(NAMES)
    spelling = data.draw(_spellings(name))
    first = await client.post("/Users", json=user_body(name))
    if first.status_code == 409:  # drawn before in this run
        return
    assert first.status_code == 201, first.text
    assert_taken(await client.post("/Users", json=user_body(spelling)))


async def test_look_alikes_created_at_once_have_one_winner(client: httpx.AsyncClient) -> None:
    """The unique index holds the folded key: racing creates of one name in six spellings
    leave one user, whichever request wins."""
    spellings = ["straße", "STRASSE", "Strasse", "STRAẞE", _full_width("strasse"), "strasse"]
    responses = await asyncio.gather(
        *(client.post("/Users", json=user_body(name)) for name in spellings)
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 5, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_taken(response)
    assert len(await user_names(client, 'userName eq "strasse"')) == 1


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) - 0x21 + 0xFF01) if "!" <= c <= "~" else c for c in text)


async def test_a_group_display_name_is_taken_once_per_organisation(
    client: httpx.AsyncClient, app: Any, organisations: Any
) -> None:
    """Microsoft Entra ID finds groups by displayName: two groups of one name (as people
    read it) in an organisation would be one group to it."""

    def group(name: str) -> dict[str, Any]:
        return {"schemas": [GROUP_SCHEMA], "displayName": name}

    first = await client.post("/Groups", json=group("Handläggare"))
    assert first.status_code == 201, first.text
    for name in ("handläggare", "HANDLÄGGARE", unicodedata.normalize("NFD", "Handläggare")):
        assert_taken(await client.post("/Groups", json=group(name)))
    other = (await client.post("/Groups", json=group("Chefer"))).json()
    where = f"/Groups/{other['id']}"
    assert_taken(await client.put(where, json=group("HANDLÄGGARE")))
    rename = {"op": "replace", "path": "displayName", "value": "handläggare"}
    response = await client.patch(where, json={"schemas": [PATCH_SCHEMA], "Operations": [rename]})
    assert_taken(response)
    assert "displayName" in response.json()["detail"]
    operations = [
        {"method": "POST", "path": "/Groups", "bulkId": str(n), "data": group(name)}
        for n, name in enumerate(("Nya", "NYA", "Handläggare"))
    ]
    response = await client.post(
        "/Bulk", json={"schemas": [BULK_REQUEST], "Operations": operations}
    )
    assert [op["status"] for op in response.json()["Operations"]] == ["201", "409", "409"]
    # A user may share a group's name, and another organisation may have a group of it.
    user = await client.post("/Users", json=user_body("handlaggare", displayName="Handläggare"))
    assert user.status_code == 201, user.text
    async with api_client(app, organisations.goteborg.token) as goteborg:
        elsewhere = await goteborg.post("/Groups", json=group("Handläggare"))
        assert elsewhere.status_code == 201, elsewhere.text
