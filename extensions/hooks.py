"""The e-service domain on the engine's interface (``scim.hooks.Domain``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from litestar.types import ControllerRouterHandler
from scim2_models.path import AttributeBinding
from sqlalchemy.ext.asyncio import AsyncConnection

from extensions import demo
from extensions.api import catalogue_router
from extensions.catalogue import (
    Catalogue,
    EService,
    Permission,
    PermissionGroup,
    load_configured,
)
from extensions.hsa import normalise_hsa_id
from extensions.organisations import Kind, normalise_org_number
from extensions.rules import Rules, holders, holding
from extensions.schema import (
    GROUP_EXTENSION,
    USER_EXTENSION,
    EServiceGroup,
    EServiceUser,
    User,
)
from scim.hooks import Command, Demo, Domain, Related, SchemaExtension, Tenant
from scim.settings import Settings
from scim.storage.filters import Target
from scim.storage.json_sql import JsonSql

# How a filter's sub-attribute of effectivePermissions, and of the entitlements that
# mirror them, maps to the effective permission's.
_EFFECTIVE = {name: name for name in ("value", "service", "permission", "display", "source")}
_ENTITLEMENTS = {"value": "value", "display": "display", "type": "service"}


async def _holders(_: Domain, connection: AsyncConnection, value: str) -> list[str]:
    return [
        f"{held['org_number']}  {held['type']:<5}  {held['id']}  {held['display']}"
        for held in await holders(connection, value)
    ]


class EServices(Domain):
    """HSA-ids and e-service permissions on users and groups, granted within what the
    organisation's kind and agreements allow (``extensions.rules``)."""

    schema_extensions = (
        SchemaExtension("User", EServiceUser, required=True),
        SchemaExtension("Group", EServiceGroup),
    )
    models = {"User": User}
    person_key = (USER_EXTENSION, "hsaId")
    # A user's effective permissions (and the entitlements mirroring them) come from its
    # groups' permissions too.
    related = (
        Related(
            "User",
            fields=(("permissions", (GROUP_EXTENSION, "permissions")),),
            computed=(("entitlements", None), ("effectivePermissions", USER_EXTENSION)),
        ),
    )
    me_attributes = (
        f"{USER_EXTENSION}:hsaId",
        f"{USER_EXTENSION}:permissions",
        f"{USER_EXTENSION}:effectivePermissions.value",
        f"{USER_EXTENSION}:effectivePermissions.display",
        f"{USER_EXTENSION}:effectivePermissions.service",
        f"{USER_EXTENSION}:effectivePermissions.source",
    )

    # What a user may do in an e-service is its effective permissions there.
    audience_inputs = ((USER_EXTENSION, "permissions"),)

    commands = (
        Command(
            "catalogue",
            "the e-service catalogue",
            "holders",
            "who holds a permission",
            "SERVICE:PERMISSION",
            _holders,
        ),
    )

    tenant_kinds = tuple(kind.value for kind in Kind)

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.rules = Rules(catalogue)

    @classmethod
    def from_settings(cls, settings: Settings) -> EServices:
        """With the catalogue ``SCIM_CATALOGUE`` names, else the shipped one."""
        return cls(load_configured(settings))

    async def load_demo(self, settings: Settings, report: Callable[[str], None]) -> Demo:
        return await demo.load(settings, self, report)

    def prepare(
        self,
        resource_type: str,
        document: dict[str, Any],
        previous: dict[str, Any] | None,
        tenant: Tenant,
    ) -> None:
        self.rules.prepare(resource_type, document, previous, tenant)

    def attribute(
        self,
        resource_type: str,
        path: tuple[str, ...],
        binding: AttributeBinding,
        json: JsonSql,
        tenant: Tenant,
    ) -> Target | None:
        if resource_type != "User":
            return None
        if path[:2] == (USER_EXTENSION, "effectivePermissions"):
            return self.rules.effective_sql(json, binding, tenant, _EFFECTIVE)
        if path[0] == "entitlements":
            return self.rules.effective_sql(json, binding, tenant, _ENTITLEMENTS)
        return None

    def render(
        self,
        resource_type: str,
        document: dict[str, Any],
        related: Sequence[tuple[str, dict[str, Any]]],
        tenant: Tenant,
    ) -> None:
        """A user's effective permissions, and entitlements mirroring them (read-only)."""
        own = (document.get(USER_EXTENSION) or {}).get("permissions") or []
        inherited = [(group_id, fields["permissions"] or []) for group_id, fields in related]
        effective = self.rules.effective(own, inherited, tenant)
        if effective:
            document.setdefault(USER_EXTENSION, {})["effectivePermissions"] = effective
            document["entitlements"] = [
                {"value": item["value"], "display": item["display"], "type": item["service"]}
                for item in effective
            ]

    def audiences(
        self,
        document: dict[str, Any],
        related: Sequence[tuple[str, dict[str, Any]]],
        tenant: Tenant,
    ) -> dict[str, frozenset[str]]:
        """Each e-service's receivers hear of the users whose effective permissions in it
        change: the permissions (values) the user may use there."""
        own = (document.get(USER_EXTENSION) or {}).get("permissions") or []
        inherited = [(group_id, fields.get("permissions") or []) for group_id, fields in related]
        by_service: dict[str, set[str]] = {}
        for item in self.rules.effective(own, inherited, tenant):
            by_service.setdefault(item["service"], set()).add(item["value"])
        return {service: frozenset(values) for service, values in by_service.items()}

    def audience_state(self) -> str:
        """The catalogue as far as it decides effective permissions: which permissions there
        are, to whom each e-service is offered, which are retired."""
        return json.dumps(
            [
                {
                    "id": service.id,
                    "offered_to": service.offered_to.value,
                    "permissions": [[p.id, p.name, p.retired] for p in service.permissions],
                }
                for service in self.catalogue.services
            ],
            ensure_ascii=False,
            sort_keys=True,
        )

    async def concerns(
        self, connection: AsyncConnection, previous: str
    ) -> tuple[Domain, Mapping[int, set[str]]]:
        """The domain under the catalogue as it was, and the holders of every permission
        whose use that change may have changed (retired, back, gone, offered to others)."""
        earlier = EServices(_catalogue_of(previous))

        def decided(catalogue: Catalogue) -> dict[str, tuple[str, bool]]:
            return {
                f"{service.id}:{permission.id}": (service.offered_to.value, permission.retired)
                for service in catalogue.services
                for permission in service.permissions
            }

        before, after = decided(earlier.catalogue), decided(self.catalogue)
        changed = {
            value for value in before.keys() | after.keys() if before.get(value) != after.get(value)
        }
        return earlier, await holding(connection, changed)

    def audience(self, value: str) -> str:
        """Receivers hear an e-service of the catalogue."""
        services = [service.id for service in self.catalogue.services]
        if value.strip() not in services:
            raise ValueError(f"no e-service {value!r}; the catalogue has {', '.join(services)}")
        return value.strip()

    def describe(self, schema: dict[str, Any]) -> None:
        """The catalogue's permissions as the canonical values of ``permissions.value``, so
        that a client reading /Schemas sees what can be granted at all (``GET /catalogue``
        says what the caller's organisation may grant)."""
        if schema["id"] not in (USER_EXTENSION, GROUP_EXTENSION):
            return
        values = [
            f"{service.id}:{permission.id}"
            for service in self.catalogue.services
            for permission in service.permissions
            if not permission.retired
        ]
        for attribute in schema.get("attributes", []):
            if attribute["name"] == "permissions":
                for sub in attribute.get("subAttributes", []):
                    if sub["name"] == "value":
                        sub["canonicalValues"] = values

    def routes(self) -> Sequence[ControllerRouterHandler]:
        return [catalogue_router(self)]

    def tenant_number(self, number: str, kind: str | None) -> str:
        return normalise_org_number(number, Kind(kind) if kind is not None else None)

    def person_id(self, value: str) -> str:
        return normalise_hsa_id(value)


def _catalogue_of(state: str) -> Catalogue:
    """A catalogue as ``EServices.audience_state`` wrote it down: what decides use."""
    return Catalogue(
        tuple(
            EService(
                id=service["id"],
                name=service["id"],
                description="",
                offered_to=Kind(service["offered_to"]),
                groups=(
                    PermissionGroup(
                        None,
                        tuple(
                            Permission(pid, name, retired)
                            for pid, name, retired in service["permissions"]
                        ),
                    ),
                ),
            )
            for service in json.loads(state)
        )
    )
