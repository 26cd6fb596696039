"""The administrators the operator registered, as the browser client's login reads them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scim.storage.tables import administrators, tenants


def _administrators() -> Select[Any]:
    """Administrators with their organisation's ``organisation`` (name), ``kind`` and
    ``org_number``."""
    return select(
        administrators,
        tenants.c.name.label("organisation"),
        tenants.c.kind,
        tenants.c.org_number,
    ).join(tenants, tenants.c.id == administrators.c.tenant_id)


async def administrator(
    connection: AsyncConnection, hsa_id: str, tenant_id: int | None = None
) -> Row[Any] | None:
    """The administrator with this id (in this organisation, if given), or None."""
    statement = _administrators().where(administrators.c.hsa_id == hsa_id)
    if tenant_id is not None:
        statement = statement.where(administrators.c.tenant_id == tenant_id)
    row: Row[Any] | None = (await connection.execute(statement)).first()
    return row


async def every_administrator(connection: AsyncConnection) -> list[Row[Any]]:
    """All administrators, by organisation and name (the demo login lists them)."""
    statement = _administrators().order_by(
        tenants.c.name, administrators.c.family_name, administrators.c.given_name
    )
    return list((await connection.execute(statement)).all())
