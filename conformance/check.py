"""Run scim2-tester's ``check_server`` against a URL.

scim2-tester invents attribute values from the schemas a server publishes. This server's
e-service extension takes values it cannot invent: HSA-ids of a fixed form, unique in the
organisation, and permissions from the catalogue that the organisation may grant. When the
server publishes that extension, the tester is given its models with those values as
examples, which it draws from (``GET /catalogue`` says what the organisation may grant).
"""

from __future__ import annotations

import itertools
import secrets
from typing import Annotated, Any

import httpx2
from pydantic import Field
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import (
    EnterpriseUser,
    Group,
    Required,
    ResourceType,
    ScimProvider,
    Uniqueness,
)
from scim2_tester import CheckResult, Status, check_server

from extensions.schema import (
    USER_EXTENSION,
    EServiceUser,
    Permission,
    User,
)
from scim.registry import POLICY

PASSING = {Status.SUCCESS}


class _FreshHsaIds(list[str]):
    """An ``examples`` list that yields a new HSA-id each time one is drawn from it."""

    def __init__(self) -> None:
        super().__init__(["SE0000000000-0"])
        self._run = secrets.token_hex(3).upper()
        self._serial = itertools.count(1)

    def __getitem__(self, index: Any) -> Any:
        return f"SE2120000000-C{self._run}{next(self._serial)}"


def _provider(grantable: list[str]) -> ScimProvider:
    """The server's own models, with values the tester can use."""

    class GrantablePermission(Permission):
        value: Annotated[str | None, Required.true] = Field(None, examples=grantable)

    class TestedUser(EServiceUser):
        hsa_id: Annotated[str | None, Required.true, Uniqueness.server] = Field(
            None, examples=_FreshHsaIds()
        )
        permissions: list[GrantablePermission] | None = None  # type: ignore[assignment]

    return ScimProvider(
        # Group permissions are left out: scim2-tester adds every optional path to one
        # resource and expects each add to return only what it added, but adding the Group
        # extension and then its permissions appends to what the first add wrote (RFC 7644
        # §3.5.2.1). tests/test_permissions.py covers them.
        models=[User, EnterpriseUser, TestedUser, Group],
        resource_types=[
            ResourceType.from_resource(
                User.__class_getitem__(EnterpriseUser | Annotated[TestedUser, Required.true])
            ),
            ResourceType.from_resource(Group),
        ],
        policy=POLICY,
    )


def _described(http: httpx2.Client) -> ScimProvider | None:
    """This server's models, if it is this server: it publishes the e-service extension."""
    schemas = http.get("Schemas").json().get("Resources", [])
    if USER_EXTENSION not in {schema.get("id") for schema in schemas}:
        return None
    catalogue = http.get(str(http.base_url.join("/catalogue")))
    grantable = catalogue.json().get("grantable", []) if catalogue.status_code == 200 else []
    if not grantable:
        raise SystemExit(
            "The organisation of these credentials may grant no permission: give it an "
            "agreement (scim tenant agreements) before checking conformance"
        )
    return _provider(grantable)


def run(url: str, *, token: str | None = None, **httpx_options: Any) -> list[CheckResult]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx2.Client(base_url=url.rstrip("/") + "/", headers=headers, **httpx_options) as http:
        provider = _described(http)
        client = SyncSCIMClient(http, provider=provider) if provider else SyncSCIMClient(http)
        results: list[CheckResult] = check_server(client)
    return results


def failures(results: list[CheckResult]) -> list[str]:
    """The checks that did not pass, one line each."""
    return [
        f"{result.status.name} {result.resource_type} {result.title}: {result.reason}"
        for result in results
        if result.status not in PASSING
    ]
