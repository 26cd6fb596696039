"""Request bodies nested deeper than any SCIM request are refused as such (400 invalidSyntax)
before anything walks them, however deep and wherever they go."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.api.http import MAX_DEPTH, _deeper_than
from tests.conftest import USER_SCHEMA
from tests.engine.test_resources import count_resources

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def nested(depth: int, leaf: str) -> str:
    return "[" * depth + leaf + "]" * depth


def test_the_limit_counts_objects_and_arrays() -> None:
    assert not _deeper_than({"a": nested_value(MAX_DEPTH - 1)}, MAX_DEPTH)
    assert _deeper_than({"a": nested_value(MAX_DEPTH)}, MAX_DEPTH)
    assert _deeper_than({"a": [{"b": [{"c": [1]}]}]}, 5)
    assert not _deeper_than({"a": [{"b": [{"c": [1]}]}]}, 6)


def nested_value(depth: int) -> object:
    value: object = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 400, 5000])
# What the server walks recursively once a body is read: Bulk references, U+0000, passwords.
@pytest.mark.parametrize("leaf", ['"bulkId:a"', '"\\u0000"', '{"password": "x"}', "1"])
async def test_a_body_nested_too_deep_is_invalid_syntax(
    client: httpx.AsyncClient, engine: AsyncEngine, depth: int, leaf: str
) -> None:
    user = (
        f'{{"schemas": ["{USER_SCHEMA}"], "userName": "deep", "nickName": {nested(depth, leaf)}}}'
    )
    bodies = {
        "/Users": user,
        "/Users/.search": f'{{"filter": "userName pr", "x": {nested(depth, leaf)}}}',
        "/Bulk": f'{{"schemas": ["{BULK}"], "Operations": [{{"method": "POST", '
        f'"path": "/Users", "bulkId": "b", "data": {user}}}]}}',
    }
    for path, body in bodies.items():
        response = await client.post(path, content=body)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["scimType"] == "invalidSyntax", response.text
        assert str(MAX_DEPTH) in response.json()["detail"]
    operation = f'{{"op": "add", "value": {nested(depth, leaf)}}}'
    patch = f'{{"schemas": ["{PATCH}"], "Operations": [{operation}]}}'
    response = await client.patch("/Users/unknown", content=patch)
    assert response.status_code == 400 and response.json()["scimType"] == "invalidSyntax"
    assert await count_resources(engine) == 0
