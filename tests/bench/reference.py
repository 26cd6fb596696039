"""python-scim's scim2-server (from PyPI) as the benchmark's reference: its ASGI application
over its in-memory storage, served by the same uvicorn as this server, with the RFC 7643
schemas it ships (it does not know this project's e-service extension).

Run by the benchmark as ``uvicorn tests.bench.reference:create_app --factory`` with
BENCH_REFERENCE_TOKEN set; the benchmark loads its users through its own Bulk endpoint.
"""

from __future__ import annotations

import os
import secrets
import urllib.request
from typing import Any

import msgspec
from scim2_models import ScimProvider, UnauthorizedException
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage
from scim2_server.requests import ScimRequest
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

from tests.bench.data import GROUP_SCHEMA, Organisation, People, big_group_size

BASE_PATH = "/v2"
BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class _BearerApplication(ASGIApplication):
    """Accepts one static bearer token, as ``scim2-server --bearer-token`` does."""

    token = ""

    def check_auth(self, request: ScimRequest) -> None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token != self.token:
            raise UnauthorizedException


def create_app() -> ASGIApplication:
    config = load_default_service_provider_config()
    config.authentication_schemes = [BEARER_TOKEN_SCHEME]
    # Room for a Bulk request of 1,000 users, as this server accepts (4 MiB).
    if config.bulk is not None:
        config.bulk.max_payload_size = 4 * 1024 * 1024
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    application = _BearerApplication(
        AsyncInMemoryStorage(), provider, ScimService(provider, secret=secrets.token_urlsafe(32))
    )
    application.token = os.environ["BENCH_REFERENCE_TOKEN"]
    return application


def _call(url: str, token: str, method: str, body: object) -> Any:
    request = urllib.request.Request(
        url,
        data=msgspec.json.encode(body),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = response.read()
        return msgspec.json.decode(answer) if answer else None


def load(
    root: str, token: str, org: Organisation, big_group: int, seed: int = 7
) -> tuple[list[str], list[str], str, list[str]]:
    """Users through the reference's own Bulk endpoint, and its big group by PATCH.

    Returns the ids and userNames of the users, the big group's id, and the users not in it.
    """
    ids: list[str] = []
    names: list[str] = []
    people = iter(People(org, seed=seed, extension=False))
    remaining = org.users
    while remaining:
        batch = [next(people) for _ in range(min(1000, remaining))]
        remaining -= len(batch)
        operations = [
            {"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": user}
            for i, user in enumerate(batch)
        ]
        answer = _call(
            f"{root}{BASE_PATH}/Bulk",
            token,
            "POST",
            {"schemas": [BULK_SCHEMA], "Operations": operations},
        )
        for operation, user in zip(answer["Operations"], batch, strict=True):
            assert str(operation["status"]).startswith("201"), operation
            ids.append(operation["location"].rsplit("/", 1)[1])
            names.append(user["userName"])
    size = big_group_size(len(ids), big_group)
    group = _call(
        f"{root}{BASE_PATH}/Groups",
        token,
        "POST",
        {"schemas": [GROUP_SCHEMA], "displayName": "Alla medarbetare"},
    )
    for start in range(0, size, 1000):
        members = [{"value": i} for i in ids[start : min(size, start + 1000)]]
        _call(
            f"{root}{BASE_PATH}/Groups/{group['id']}",
            token,
            "PATCH",
            {
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "add", "path": "members", "value": members}],
            },
        )
    return ids, names, group["id"], ids[size:]
