"""A little demo data, so that a newcomer sees users and a group at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from scim.app import DEFAULT_TENANT
from scim.registry import Registry
from scim.service import Caller, ResourceService
from scim.settings import Settings
from scim.storage.database import create_engine
from scim.storage.tables import resources

USERS = [
    ("Anna", "Lindqvist", "anna.lindqvist@stockholm.se"),
    ("Erik", "Johansson", "erik.johansson@stockholm.se"),
    ("Åsa", "Öberg", "asa.oberg@stockholm.se"),
    ("Mohammed", "Ali", "mohammed.ali@stockholm.se"),
    ("Sofia", "Nilsson", "sofia.nilsson@stockholm.se"),
]


async def load(settings: Settings) -> int:
    """Create the demo users and group unless the default tenant has resources already."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            existing = (
                await connection.execute(
                    select(func.count()).where(resources.c.tenant_id == DEFAULT_TENANT)
                )
            ).scalar_one()
        if existing:
            return 0
        service = ResourceService(Registry(settings), engine, settings)
        caller = Caller(DEFAULT_TENANT, f"http://localhost{settings.base_path}")
        users = service.registry.by_name["User"]
        groups = service.registry.by_name["Group"]
        plan = service.plan(users, None, None)
        ids: list[str] = []
        for given, family, email in USERS:
            body: dict[str, Any] = {
                "schemas": [users.schema],
                "userName": email,
                "name": {"givenName": given, "familyName": family},
                "displayName": f"{given} {family}",
                "emails": [{"value": email, "type": "work", "primary": True}],
                "active": True,
            }
            written = await service.create(caller, users, body, plan)
            assert written.document is not None
            ids.append(written.document["id"])
        await service.create(
            caller,
            groups,
            {
                "schemas": [groups.schema],
                "displayName": "Handläggare ersättningar",
                "members": [{"value": member_id} for member_id in ids[:3]],
            },
            service.plan(groups, None, None),
        )
        return len(ids) + 1
    finally:
        await engine.dispose()
