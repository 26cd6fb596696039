"""Binary values (RFC 7643 §2.3.6): base64 as RFC 4648 §4 writes it, or refused whole."""

from __future__ import annotations

import httpx
import pytest

from tests.engine.conftest import create_user, user_body

PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CERTIFICATE = "MIIDQTCCAimgAwIBAgITBmyfz5m/jAo54vB4ikPmljZbyjANBgkqhkiG9w0BAQsF"
# Characters outside the alphabet: pydantic's lenient decoding would skip them, and store
# "" or "QUJD" for what the client sent.
NOT_BASE64 = ["!!!", "QUJD!!", "QUJD\nRA==", "QUJD RA==", "QUJDRA", "ÅÄÖ="]


@pytest.mark.parametrize("value", NOT_BASE64)
async def test_a_user_with_a_certificate_that_is_not_base64_is_refused(
    client: httpx.AsyncClient, value: str
) -> None:
    body = user_body("anna", x509Certificates=[{"value": value}])
    response = await client.post("/Users", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["scimType"] == "invalidValue"
    assert "x509Certificates" in error["detail"] and "base64" in error["detail"]
    found = await client.get("/Users", params={"filter": 'userName eq "anna"'})
    assert found.json()["totalResults"] == 0


@pytest.mark.parametrize("value", NOT_BASE64[:2])
async def test_patch_and_put_refuse_it_and_change_nothing(
    client: httpx.AsyncClient, value: str
) -> None:
    user = await create_user(client, "anna", x509Certificates=[{"value": CERTIFICATE}])
    path = f"/Users/{user['id']}"
    operations = [
        {"op": "add", "path": "x509Certificates", "value": [{"value": value}]},
        {"op": "replace", "path": "x509Certificates", "value": [{"value": value}]},
        {"op": "replace", "value": {"x509Certificates": [{"value": value}]}},
    ]
    for operation in operations:
        body = {"schemas": [PATCH_SCHEMA], "Operations": [operation]}
        response = await client.patch(path, json=body)
        assert response.status_code == 400, (operation, response.text)
        assert response.json()["scimType"] == "invalidValue"
    replaced = user_body("anna", x509Certificates=[{"value": value}])
    response = await client.put(path, json=replaced)
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidValue"
    stored = (await client.get(path)).json()
    assert stored["meta"]["version"] == user["meta"]["version"]
    assert stored["x509Certificates"] == [{"value": CERTIFICATE}]


async def test_a_base64_certificate_is_stored_as_sent(client: httpx.AsyncClient) -> None:
    values = [CERTIFICATE, "QUJDRA==", "QUJD", ""]
    user = await create_user(
        client, "anna", x509Certificates=[{"value": value} for value in values]
    )
    stored = (await client.get(f"/Users/{user['id']}")).json()
    assert [item.get("value", "") for item in stored["x509Certificates"]] == values


async def test_the_schema_still_calls_it_binary(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")).json()
    (certificates,) = [a for a in schema["attributes"] if a["name"] == "x509Certificates"]
    (value,) = [a for a in certificates["subAttributes"] if a["name"] == "value"]
    assert value["type"] == "binary" and value["caseExact"] is True
    assert value.get("description") == "The value of an X.509 certificate."
