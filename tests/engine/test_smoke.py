"""The shortest path through the API: create, read, list, delete."""

from __future__ import annotations

import httpx

from tests.engine.conftest import create_user


async def test_create_read_list_delete(client: httpx.AsyncClient) -> None:
    user = await create_user(
        client, "anna@example.se", name={"givenName": "Anna", "familyName": "Ek"}
    )
    read = await client.get(f"/Users/{user['id']}")
    assert read.status_code == 200
    assert read.json()["userName"] == "anna@example.se"
    listing = (await client.get("/Users")).json()
    assert listing["totalResults"] == 1
    assert (await client.delete(f"/Users/{user['id']}")).status_code == 204
    assert (await client.get(f"/Users/{user['id']}")).status_code == 404
