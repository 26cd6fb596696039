"""What the replays share: an organisation's identity system, and checks of its answers."""

from __future__ import annotations

from typing import Any

import httpx

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BEHORIGHETER = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:User"
BEHORIGHETER_GROUP = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:Group"


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The body of a response that has ``status``, as SCIM."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    if status == 204:
        assert response.content == b""
        return None
    assert response.headers["content-type"].startswith("application/scim+json")
    return response.json()


def refused(response: httpx.Response, status: int, scim_type: str | None = None) -> Any:
    body = ok(response, status)
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def listed(body: dict[str, Any]) -> list[dict[str, Any]]:
    assert body["schemas"] == [LIST]
    resources: list[dict[str, Any]] = body.get("Resources", [])
    assert body["totalResults"] >= len(resources)
    return resources
