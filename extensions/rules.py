"""The rules of the e-service extension, each written once.

Granting: HSA-ids are checked and written in upper case. A permission may be granted only
if the catalogue lists it, it is not retired, it is offered to the organisation's kind and
the organisation has an agreement for its e-service. What a user or group already holds is
kept as it is, even once it could no longer be granted: nothing is dropped silently.

Effective permissions: what a user may use now is what it holds directly or through its
groups *and* could be granted today (``Rules.usable``). The rendered attribute
(``Rules.effective``) and the SQL that filters on it (``Rules.effective_sql``) both read
that one set, so a filter never selects a user whose returned permissions lack the value.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Any

from scim2_models import InvalidValueException
from scim2_models.path import AttributeBinding
from sqlalchemy import ColumnElement, FromClause, and_, case, exists, literal, null, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from extensions.catalogue import Catalogue
from extensions.hsa import normalise_hsa_id
from extensions.organisations import Kind
from extensions.schema import GROUP_EXTENSION, USER_EXTENSION
from scim.hooks import Tenant
from scim.storage.filters import Either, Many, Scalar, elements, item_model
from scim.storage.json_sql import JsonSql
from scim.storage.tables import members, resources, tenants

EXTENSIONS = {"User": USER_EXTENSION, "Group": GROUP_EXTENSION}


def granted(document: dict[str, Any] | None, kind_name: str) -> set[str]:
    """The permission values a stored document holds."""
    if not document:
        return set()
    extension = document.get(EXTENSIONS[kind_name]) or {}
    return {
        item["value"]
        for item in extension.get("permissions") or []
        if isinstance(item, dict) and isinstance(item.get("value"), str)
    }


class Rules:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.usable = lru_cache(maxsize=1024)(self._usable)

    def _usable(self, kind: str, agreements: frozenset[str]) -> dict[str, str]:
        """The permissions an organisation of ``kind`` with ``agreements`` may grant, and so
        its staff may use, now: value → the permission's name (``Catalogue.grantable``)."""
        return {
            f"{service.id}:{permission.id}": permission.name
            for service in self.catalogue.services
            for permission in service.permissions
            if self.catalogue.grantable(service.id, permission.id, Kind(kind), agreements) is None
        }

    def usable_for(self, tenant: Tenant) -> dict[str, str]:
        return self.usable(tenant.kind, tenant.agreements)

    def prepare(
        self,
        kind_name: str,
        document: dict[str, Any],
        previous: dict[str, Any] | None,
        tenant: Tenant,
    ) -> None:
        """Check the extension of ``document`` and complete it in place (400 invalidValue)."""
        urn = EXTENSIONS.get(kind_name)
        if urn is None:
            return
        extension = document.get(urn)
        if not isinstance(extension, dict):
            return
        # Derived on every read, never stored.
        extension.pop("effectivePermissions", None)
        if kind_name == "User" and isinstance(extension.get("hsaId"), str):
            try:
                extension["hsaId"] = normalise_hsa_id(extension["hsaId"])
            except ValueError as error:
                raise InvalidValueException(detail=f"hsaId: {error}") from error
        held = granted(previous, kind_name)
        permissions = extension.get("permissions")
        if permissions is None:
            return
        completed: dict[str, dict[str, Any]] = {}
        for item in permissions:
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, str):
                raise InvalidValueException(detail="permissions: each value is a string")
            completed[value] = self._complete(value, value in held, tenant)
        if completed:
            extension["permissions"] = list(completed.values())
        else:
            extension.pop("permissions")

    def effective(
        self,
        own: list[dict[str, Any]],
        inherited: Sequence[tuple[str, list[dict[str, Any]]]],
        tenant: Tenant,
    ) -> list[dict[str, Any]]:
        """What a user may use now: its own permissions, then its groups' (source: the group
        id), each once, and only those ``usable`` in the organisation: a permission kept
        after its agreement ended or it was retired is held, not effective."""
        usable = self.usable_for(tenant)
        effective: dict[str, dict[str, Any]] = {}
        sources = [("direct", own), *inherited]
        for source, items in sources:
            for item in items:
                value = item.get("value") if isinstance(item, dict) else None
                if not isinstance(value, str) or value in effective or value not in usable:
                    continue
                service_id, _, permission_id = value.partition(":")
                effective[value] = {
                    "value": value,
                    "service": service_id,
                    "permission": permission_id,
                    "display": usable[value],
                    "source": source,
                }
        return list(effective.values())

    def effective_sql(
        self, json: JsonSql, binding: AttributeBinding, tenant: Tenant, names: dict[str, str]
    ) -> Either:
        """``effective`` in SQL: the values a user holds directly or through a group that are
        ``usable``, each compared by the sub-attribute ``names`` maps the filtered one to
        (``effectivePermissions`` itself, or ``entitlements`` mirroring it)."""
        usable = self.usable_for(tenant)
        own = json.elements(resources.c.data, (USER_EXTENSION, "permissions"))
        granting = resources.alias("granting")
        inherited = json.elements(granting.c.data, (GROUP_EXTENSION, "permissions"))
        membership = members.join(granting, granting.c.id == members.c.group_id)

        def part(
            rows: FromClause, froms: FromClause, correlate: Any, source: ColumnElement[Any]
        ) -> Many:
            stored = elements(json, rows, binding)
            value = json.element_text(rows.c.value, "value")
            computed: dict[str, ColumnElement[Any]] = {
                "source": source,
                # The catalogue's name now, as ``effective`` renders it.
                "display": case(usable, value=value, else_=null()) if usable else null(),
            }

            def compare(key: str | None, item: AttributeBinding | None) -> Scalar:
                name = names.get((key or "value").lower())
                if name is None:
                    return Scalar(null(), "string", True)
                if name in computed:
                    return Scalar(computed[name], "string", name != "display")
                return stored(name, item)

            usable_now = value.in_(sorted(usable)) if usable else literal(False)
            return Many(froms, and_(correlate, usable_now), compare, item_model(binding))

        return Either(
            (
                part(own, own, literal(True), literal("direct")),
                part(
                    inherited,
                    # The group's permissions are read from the group joined before them (an
                    # implicit LATERAL in both databases), hence the join on true.
                    membership.join(inherited, true()),
                    and_(
                        members.c.member_id == resources.c.id,
                        members.c.tenant_id == resources.c.tenant_id,
                    ),
                    granting.c.id,
                ),
            )
        )

    def _complete(self, value: str, held: bool, tenant: Tenant) -> dict[str, Any]:
        service_id, separator, permission_id = value.partition(":")
        if not separator or not service_id or not permission_id:
            raise InvalidValueException(
                detail=f"permissions: {value!r} is not '<e-service id>:<permission id>'"
            )
        if not held:
            reason = self.catalogue.grantable(
                service_id, permission_id, Kind(tenant.kind), tenant.agreements
            )
            if reason is not None:
                raise InvalidValueException(detail=f"permissions: {value!r}: {reason}")
        permission = self.catalogue.permission(service_id, permission_id)
        item: dict[str, Any] = {
            "value": value,
            "service": service_id,
            "permission": permission_id,
        }
        if permission is not None:
            item["display"] = permission.name
        return item


async def holders(connection: AsyncConnection, value: str) -> list[dict[str, Any]]:
    """Who holds a permission (``<e-service>:<permission>``) directly, users and groups, in
    every organisation: what the operator checks before and after retiring one."""
    json = JsonSql(connection.dialect.name)
    held = []
    for kind, urn in EXTENSIONS.items():
        items = json.elements(resources.c.data, (urn, "permissions"))
        holds = exists(
            select(literal(1))
            .select_from(items)
            .where(json.element_text(items.c.value, "value") == value)
        )
        rows = await connection.execute(
            select(resources.c.id, resources.c.display, tenants.c.org_number)
            .join(tenants, tenants.c.id == resources.c.tenant_id)
            .where(resources.c.resource_type == kind, holds)
            .order_by(tenants.c.org_number, resources.c.display)
        )
        held += [
            {"org_number": r.org_number, "type": kind, "id": r.id, "display": r.display}
            for r in rows
        ]
    return held


async def holding(connection: AsyncConnection, values: Collection[str]) -> dict[int, set[str]]:
    """The users (ids, by organisation id) holding any of ``values`` (``<e-service>:<permission>``)
    directly or through a group: those whose effective permissions a catalogue change of
    those values may change."""
    json = JsonSql(connection.dialect.name)
    found: dict[int, set[str]] = {}
    if not values:
        return found
    wanted = sorted(values)
    for kind, urn in EXTENSIONS.items():
        items = json.elements(resources.c.data, (urn, "permissions"))
        holds = exists(
            select(literal(1))
            .select_from(items)
            .where(json.element_text(items.c.value, "value").in_(wanted))
        )
        holders = select(resources.c.tenant_id, resources.c.id).where(
            resources.c.resource_type == kind, holds
        )
        if kind == "Group":
            held = holders.subquery()
            member = resources.alias("member")
            holders = (
                select(members.c.tenant_id, members.c.member_id)
                .join(held, held.c.id == members.c.group_id)
                .join(member, member.c.id == members.c.member_id)
                .where(member.c.resource_type == "User")
            )
        for tenant_id, user_id in await connection.execute(holders):
            found.setdefault(tenant_id, set()).add(user_id)
    return found
