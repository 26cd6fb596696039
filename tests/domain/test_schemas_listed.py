"""RFC 7643 §3: ``schemas`` names the schemas of the attributes present, with the e-service
extension beside the enterprise one."""

from __future__ import annotations

import httpx

from tests.conftest import ENTERPRISE, ESERVICES, USER_SCHEMA, create_user


async def test_schemas_lists_only_the_extensions_returned(client: httpx.AsyncClient) -> None:
    user = await create_user(
        client,
        "bjensen@example.com",
        schemas=[USER_SCHEMA, ENTERPRISE],
        **{ENTERPRISE: {"department": "Tour Operations"}},
    )
    assert user["schemas"] == [USER_SCHEMA, ENTERPRISE, ESERVICES]
    location = f"/Users/{user['id']}"

    async def schemas(**params: str) -> list[str]:
        response = await client.get(location, params=params)
        assert response.status_code == 200, response.text
        listed: list[str] = response.json()["schemas"]
        return listed

    assert await schemas() == [USER_SCHEMA, ENTERPRISE, ESERVICES]
    assert await schemas(attributes="userName") == [USER_SCHEMA]
    assert await schemas(excludedAttributes=ENTERPRISE) == [USER_SCHEMA, ESERVICES]
    assert await schemas(excludedAttributes=ESERVICES) == [USER_SCHEMA, ENTERPRISE]
    assert await schemas(attributes=f"{ESERVICES}:hsaId") == [USER_SCHEMA, ESERVICES]
