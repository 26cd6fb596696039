"""The served OpenAPI document, and schemathesis fuzzing every operation in it against the real
server on loopback: never a 5xx, and every answer of the status, content type and shape the
document declares."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from extensions import EServices
from scim.api.openapi import document
from scim.registry import Registry
from scim.settings import Settings
from tests.conftest import fresh_database
from tests.live import live_server, migrated_with_stockholm

CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)
CASES: list[int] = []


@dataclass(frozen=True)
class Served:
    url: str
    token: str


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with fresh_database() as url:
        token = asyncio.run(migrated_with_stockholm(url, ["ansok-om-statlig-ersattning"]))
        with live_server(Settings(database_url=url)) as root:
            yield Served(root, token)


def test_the_document_describes_every_resource_operation(served: Served) -> None:
    served_document = httpx.get(f"{served.url}/openapi.json").json()
    assert served_document == DOCUMENT
    assert served_document["openapi"] == "3.1.0"
    for path, methods in (
        ("/scim/v2/Users", {"get", "post"}),
        ("/scim/v2/Users/{id}", {"get", "put", "patch", "delete"}),
        ("/scim/v2/Groups/{id}", {"get", "put", "patch", "delete"}),
        ("/scim/v2/Bulk", {"post"}),
        ("/scim/v2/.search", {"post"}),
    ):
        assert methods <= set(served_document["paths"][path]), path
    user = served_document["components"]["schemas"]["User"]["properties"]
    assert "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:User" in user


# The document the server serves, built here (as the server builds it) so that pytest can
# collect one test per operation; the test below checks the served one is the same.
REGISTRY = Registry(Settings(), EServices.from_settings(Settings()))
DOCUMENT = json.loads(document(Settings(), REGISTRY))
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.phases.update(phases=["examples", "fuzzing"])


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_operation_survives_generated_requests(
    case: schemathesis.Case, served: Served
) -> None:
    response = case.call(
        base_url=served.url, headers={"Authorization": f"Bearer {served.token}"}, timeout=30
    )
    case.validate_response(response, checks=CHECKS)
    CASES.append(1)


def test_report_how_many_cases_ran() -> None:
    print(f"\nschemathesis: {len(CASES)} generated requests")
