"""Filtering on effective permissions agrees with reading them, whatever the catalogue, the
grants, the retirements, the agreements and the group memberships.

A world is made under one catalogue and set of agreements, then read under another: some
permissions retired, renamed or dropped with their e-service, some agreements ended. Each
filter an administrator's "Filtrera behörigheter" or an identity system could send on a
permission (``effectivePermissions[value eq …]``, by its name, as given directly, and the
``entitlements`` mirroring them) must select exactly the users whose returned
``effectivePermissions`` hold it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from extensions.catalogue import Catalogue, EService, Permission, PermissionGroup
from extensions.hooks import EServices
from extensions.organisations import Kind
from scim.hooks import Tenant
from scim.registry import Registry
from scim.service import Caller, ResourceService
from scim.settings import Settings
from scim.storage.tables import members, resources
from tests.conftest import ESERVICES, ESERVICES_GROUP, GROUP_SCHEMA, Organisations, user_body

EFFECTIVE = f"{ESERVICES}:effectivePermissions"


@dataclass(frozen=True)
class World:
    before: Catalogue
    after: Catalogue
    agreements_after: frozenset[str]
    users: list[list[str]]  # the permission values each user is given directly
    groups: list[tuple[list[str], list[int]]]  # each group's values and member indexes


def _service(number: int, kind: Kind, permissions: int) -> EService:
    service_id = f"tjanst-{number}"
    listed = tuple(
        Permission(f"behorighet-{index}", f"Behörighet {number}.{index}")
        for index in range(permissions)
    )
    return EService(service_id, f"Tjänst {number}", "", kind, (PermissionGroup(None, listed),))


@st.composite
def worlds(draw: st.DrawFn) -> World:
    kinds = draw(st.lists(st.sampled_from([Kind.kommun, Kind.region]), min_size=1, max_size=3))
    sizes = draw(st.lists(st.integers(1, 3), min_size=len(kinds), max_size=len(kinds)))
    services = [
        _service(n, kind, size) for n, (kind, size) in enumerate(zip(kinds, sizes, strict=True))
    ]
    before = Catalogue(tuple(services))
    grantable = [
        f"{s.id}:{p.id}" for s in services if s.offered_to == Kind.kommun for p in s.permissions
    ]
    values = st.lists(st.sampled_from(grantable), unique=True) if grantable else st.just([])
    users = draw(st.lists(values, min_size=1, max_size=5))
    indexes = st.lists(st.integers(0, len(users) - 1), unique=True)
    groups = draw(st.lists(st.tuples(values, indexes), max_size=3))
    # Afterwards: permissions retired or renamed, e-services dropped, agreements ended.
    changed = []
    for service in services:
        if draw(st.booleans()) and draw(st.booleans()):
            continue  # no longer in the catalogue at all
        permissions = tuple(
            Permission(
                p.id,
                p.name + (" (ny)" if draw(st.booleans()) else ""),
                retired=draw(st.booleans()) and draw(st.booleans()),
            )
            for p in service.permissions
        )
        changed.append(
            EService(
                service.id,
                service.name,
                "",
                service.offered_to,
                (PermissionGroup(None, permissions),),
            )
        )
    if not changed:
        changed.append(services[0])
    agreements_after = frozenset(
        draw(st.lists(st.sampled_from([s.id for s in services]), unique=True))
    )
    return World(before, Catalogue(tuple(changed)), agreements_after, users, groups)


def _service_for(settings_: Settings, engine: AsyncEngine, catalogue: Catalogue) -> ResourceService:
    return ResourceService(Registry(settings_, EServices(catalogue)), engine, settings_)


async def _ids(service: ResourceService, caller: Caller, expression: str) -> set[str]:
    kind = service.registry.by_name["User"]
    request = service.parse_search(
        [kind], {"filter": expression, "attributes": ["id"], "count": 100}
    )
    listed = await service.search(caller, [kind], request)
    assert listed["totalResults"] == len(listed["Resources"])
    return {resource["id"] for resource in listed["Resources"]}


@pytest.fixture
def grounds(engine: AsyncEngine, settings: Settings, organisations: Organisations) -> Any:
    return engine, settings, organisations.stockholm.id


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
async def test_filtering_on_effective_permissions_agrees_with_reading_them(
    grounds: Any, world: World
) -> None:
    engine, settings_, tenant_id = grounds
    async with engine.begin() as connection:
        await connection.execute(delete(members).where(members.c.tenant_id == tenant_id))
        await connection.execute(delete(resources).where(resources.c.tenant_id == tenant_id))
    every_service = frozenset(service.id for service in world.before.services)
    writer = _service_for(settings_, engine, world.before)
    granting = Caller(Tenant(tenant_id, "kommun", every_service), "http://scim.test", "tests")
    users = writer.registry.by_name["User"]
    groups = writer.registry.by_name["Group"]
    ids = []
    for number, values in enumerate(world.users):
        body = user_body(f"person{number}@example.se")
        body[ESERVICES]["permissions"] = [{"value": value} for value in values]
        written = await writer.create(granting, users, body, None)
        ids.append(written.location.rsplit("/", 1)[1])
    for number, (values, indexes) in enumerate(world.groups):
        body = {
            "schemas": [GROUP_SCHEMA, ESERVICES_GROUP],
            "displayName": f"Grupp {number}",
            "members": [{"value": ids[index]} for index in indexes],
            ESERVICES_GROUP: {"permissions": [{"value": value} for value in values]},
        }
        await writer.create(granting, groups, body, None)

    reader = _service_for(settings_, engine, world.after)
    caller = Caller(Tenant(tenant_id, "kommun", world.agreements_after), "http://scim.test", "t")
    plan = reader.plan(
        users, [f"{EFFECTIVE}.{name}" for name in ("value", "display", "source")], None
    )
    read: dict[str, list[dict[str, Any]]] = {}
    for user_id in ids:
        document, _ = await reader.get(caller, users, user_id, plan)
        read[user_id] = document.get(ESERVICES, {}).get("effectivePermissions", [])

    candidates = {
        f"{service.id}:{permission.id}"
        for catalogue in (world.before, world.after)
        for service in catalogue.services
        for permission in service.permissions
    }
    names = {item["display"] for items in read.values() for item in items}
    for value in sorted(candidates):
        holding = {uid for uid, items in read.items() if any(i["value"] == value for i in items)}
        assert await _ids(reader, caller, f'{EFFECTIVE}[value eq "{value}"]') == holding, value
        assert await _ids(reader, caller, f'entitlements[value eq "{value}"]') == holding, value
        direct = {
            uid
            for uid, items in read.items()
            if any(i["value"] == value and i["source"] == "direct" for i in items)
        }
        expression = f'{EFFECTIVE}[value eq "{value}" and source eq "direct"]'
        assert await _ids(reader, caller, expression) == direct, value
    for name in sorted(names):
        holding = {uid for uid, items in read.items() if any(i["display"] == name for i in items)}
        assert await _ids(reader, caller, f'{EFFECTIVE}[display eq "{name}"]') == holding, name
    anything = {uid for uid, items in read.items() if items}
    assert await _ids(reader, caller, f"{EFFECTIVE} pr") == anything
