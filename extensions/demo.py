"""Demo data: two municipalities and a region, with administrators, users, a group, and a
system client whose token ``scim serve --demo`` prints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from extensions.schema import GROUP_EXTENSION, USER_EXTENSION
from scim.hooks import Demo, Domain, Tenant
from scim.operator import Operator
from scim.registry import Registry
from scim.service import Caller, ResourceService
from scim.settings import Settings
from scim.storage.database import create_engine
from scim.storage.tables import tenants

ACTOR = "demo"

ORGANISATIONS: list[dict[str, Any]] = [
    {
        "org_number": "2120000142",
        "name": "Stockholms stad",
        "kind": "kommun",
        "services": ["ansok-om-statlig-ersattning", "se-och-andra-ansvar-for-ensamkommande"],
        "admin": ("SE2120000142-ADM1", "Admininra", "Stockholm", "admin@stockholm.se"),
        "users": [
            ("Anna", "Lindqvist", "SE2120000142-1001"),
            ("Erik", "Johansson", "SE2120000142-1002"),
            ("Åsa", "Öberg", "SE2120000142-1003"),
            ("Mohammed", "Ali", "SE2120000142-1004"),
            ("Sofia", "Nilsson", "SE2120000142-1005"),
        ],
        "permissions": {
            "SE2120000142-1001": [
                "ansok-om-statlig-ersattning:asylsokande-i-forskola",
                "ansok-om-statlig-ersattning:grundersattning",
            ],
            "SE2120000142-1004": [
                "se-och-andra-ansvar-for-ensamkommande:administrera-barn-utan-vardnadshavare"
            ],
        },
        # The first three users are members of "Handläggare".
        "group_permissions": ["ansok-om-statlig-ersattning:hemtjanst-for-nyanlanda"],
        "domain": "stockholm.se",
    },
    {
        "org_number": "2120001355",
        "name": "Göteborgs stad",
        "kind": "kommun",
        "services": ["ansok-om-statlig-ersattning"],
        "admin": ("SE2120001355-ADM1", "Admininra", "Göteborg", "admin@goteborg.se"),
        "users": [("Karin", "Berg", "SE2120001355-2001"), ("Jonas", "Ek", "SE2120001355-2002")],
        "permissions": {
            "SE2120001355-2001": ["ansok-om-statlig-ersattning:arlig-ersattning-fast"],
        },
        "group_permissions": [],
        "domain": "goteborg.se",
    },
    {
        "org_number": "2321000206",
        "name": "Region Västernorrland",
        "kind": "region",
        "services": ["e-tjanst-for-landsting"],
        "admin": ("SE2321000206-ADM1", "Admininra", "Västernorrland", "admin@rvn.se"),
        "users": [("Josef", "Svensson", "SE2321000206-3001")],
        "permissions": {
            "SE2321000206-3001": [
                "e-tjanst-for-landsting:se-asylsokande",
                "e-tjanst-for-landsting:skicka-in-ansokan-om-ersattning",
            ],
        },
        "group_permissions": [],
        "domain": "rvn.se",
    },
]


async def load(
    settings: Settings, domain: Domain, report: Callable[[str], None] = lambda _: None
) -> Demo:
    """Create the demo organisations unless present; always issue a fresh one-day token.
    ``report`` hears of each step (the CLI shows them as progress)."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            operator = Operator(connection, ACTOR, domain)
            present = (
                await connection.execute(
                    select(tenants.c.id).where(
                        tenants.c.org_number == ORGANISATIONS[0]["org_number"]
                    )
                )
            ).first()
            created: list[tuple[Tenant, dict[str, Any]]] = []
            if present is None:
                for organisation in ORGANISATIONS:
                    registered = await operator.add_tenant(
                        organisation["org_number"], organisation["name"], organisation["kind"]
                    )
                    await operator.set_agreements(registered, organisation["services"])
                    await operator.add_administrator(registered, *organisation["admin"])
                    await operator.register_client(registered, f"IdP {organisation['name']}")
                    agreed = frozenset(organisation["services"])
                    created.append((Tenant(registered.id, registered.kind, agreed), organisation))
            first = await operator.tenant(ORGANISATIONS[0]["org_number"])
            _, token = await operator.issue_token(first, days=1)
        service = ResourceService(Registry(settings, domain), engine, settings)
        for number, (tenant, organisation) in enumerate(created, 1):
            report(
                f"[{number}/{len(created)}] {organisation['name']}: "
                f"{len(organisation['users'])} users and a group"
            )
            await _users(service, settings, tenant, organisation)
        return Demo(bool(created), token, first.name)
    finally:
        await engine.dispose()


async def _users(
    service: ResourceService, settings: Settings, tenant: Tenant, organisation: dict[str, Any]
) -> None:
    caller = Caller(tenant, f"http://localhost{settings.base_path}", ACTOR)
    users = service.registry.by_name["User"]
    groups = service.registry.by_name["Group"]
    ids: list[str] = []
    for given, family, hsa_id in organisation["users"]:
        email = f"{given.lower()}.{family.lower()}@{organisation['domain']}"
        email = email.translate(str.maketrans("åäö", "aao"))
        written = await service.create(
            caller,
            users,
            {
                "schemas": [users.schema, USER_EXTENSION],
                "userName": email,
                USER_EXTENSION: {
                    "hsaId": hsa_id,
                    "permissions": [
                        {"value": value} for value in organisation["permissions"].get(hsa_id, [])
                    ],
                },
                "name": {"givenName": given, "familyName": family},
                "displayName": f"{given} {family}",
                "emails": [{"value": email, "type": "work", "primary": True}],
                "active": True,
            },
            service.plan(users, None, None),
        )
        assert written.document is not None
        ids.append(written.document["id"])
    await service.create(
        caller,
        groups,
        {
            "schemas": [groups.schema, GROUP_EXTENSION],
            "displayName": "Handläggare",
            GROUP_EXTENSION: {
                "permissions": [{"value": value} for value in organisation["group_permissions"]]
            },
            "members": [{"value": member_id} for member_id in ids[:3]],
        },
        service.plan(groups, None, None),
    )
