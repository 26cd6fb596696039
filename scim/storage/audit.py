"""The audit log: every change through SCIM, the client or the operator CLI leaves a record,
written in the transaction of the change itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scim.storage import direct
from scim.storage.tables import administrators, audit_log, system_clients, tenants


def entry(
    *,
    tenant_id: int | None,
    actor: str,
    action: str,
    resource_type: str | None = None,
    resource_id: str | None = None,
    changes: Any = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One record as a row of ``audit_log`` (``record`` writes one, a batch many at once)."""
    return {
        "at": at or datetime.now(UTC),
        "tenant_id": tenant_id,
        "actor": actor,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "changes": changes,
    }


async def record(connection: AsyncConnection, **fields: Any) -> None:
    """Write one record (the fields of ``entry``) in the transaction of the change."""
    row = entry(**fields)
    await direct.write(connection, direct.inserting(audit_log, tuple(row)), row)


async def count(connection: AsyncConnection, tenant_id: int | None = None) -> int:
    """How many records ``export`` will yield."""
    statement = select(func.count()).select_from(audit_log)
    if tenant_id is not None:
        statement = statement.where(audit_log.c.tenant_id == tenant_id)
    return int((await connection.execute(statement)).scalar_one())


async def export(
    connection: AsyncConnection, tenant_id: int | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The records, oldest first, as JSON-ready dicts (one JSON line each in the CLI)."""
    statement = (
        select(audit_log, tenants.c.org_number)
        .select_from(audit_log.outerjoin(tenants, tenants.c.id == audit_log.c.tenant_id))
        .order_by(audit_log.c.id)
    )
    if tenant_id is not None:
        statement = statement.where(audit_log.c.tenant_id == tenant_id)
    result = await connection.stream(statement)
    async for row in result:
        at: datetime = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
        yield {
            "at": at.isoformat().replace("+00:00", "Z"),
            "organisation": row.org_number,
            "actor": row.actor,
            "action": row.action,
            "resourceType": row.resource_type,
            "resourceId": row.resource_id,
            "changes": row.changes,
        }


async def history(
    connection: AsyncConnection, tenant_id: int, resource_type: str, resource_id: str, limit: int
) -> list[dict[str, Any]]:
    """A resource's records in its organisation, newest first, with who acted by name:
    an administrator's, or the identity system's as the operator registered it."""
    statement = (
        select(
            audit_log.c.at,
            audit_log.c.actor,
            audit_log.c.action,
            audit_log.c.changes,
            administrators.c.given_name,
            administrators.c.family_name,
            system_clients.c.name.label("client_name"),
        )
        .select_from(
            audit_log.outerjoin(
                administrators,
                (administrators.c.hsa_id == audit_log.c.actor)
                & (administrators.c.tenant_id == audit_log.c.tenant_id),
            ).outerjoin(
                system_clients,
                (literal("client:") + system_clients.c.id == audit_log.c.actor)
                & (system_clients.c.tenant_id == audit_log.c.tenant_id),
            )
        )
        .where(
            audit_log.c.tenant_id == tenant_id,
            audit_log.c.resource_id == resource_id,
            audit_log.c.resource_type == resource_type,
        )
        .order_by(audit_log.c.id.desc())
        .limit(limit)
    )
    records = []
    for row in await connection.execute(statement):
        if row.given_name is not None:
            who = f"{row.given_name} {row.family_name}"
        else:
            who = row.client_name or row.actor
        at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
        records.append(
            {"at": at.isoformat(), "actor": row.actor, "who": who, "action": row.action}
            | {"changes": row.changes}
        )
    return records
