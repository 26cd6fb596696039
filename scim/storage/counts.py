"""How many resources of some types an organisation holds, as the database keeps it with every
insert and delete (triggers of migration 0012): an unfiltered list's ``totalResults``
(RFC 7644 §3.4.2) is then read from a row or two, not counted over every resource.

On PostgreSQL a statement's change is first a row of ``resource_count_changes`` (writers
never wait for each other on a counter); ``fold`` moves them into ``resource_counts`` and
each worker calls it every ``FOLD_INTERVAL`` seconds (``keep_folded``). A count adds both in
one statement, so it sees the changes committed before it, folded or not.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from sqlalchemy import Select, Table, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scim.storage.tables import resource_count_changes, resource_counts

logger = logging.getLogger("scim.counts")

FOLD_INTERVAL = 2.0
# pg_try_advisory_xact_lock's key: one worker folds at a time (two would take the counter
# rows in different orders).
_FOLDING = 0x5C1A_C0_07

_FOLD = text(
    """
    WITH moved AS (
        DELETE FROM resource_count_changes RETURNING tenant_id, resource_type, change
    )
    INSERT INTO resource_counts (tenant_id, resource_type, count)
    SELECT tenant_id, resource_type, sum(change) FROM moved GROUP BY tenant_id, resource_type
    ON CONFLICT (tenant_id, resource_type)
    DO UPDATE SET count = resource_counts.count + excluded.count
    """
)


@functools.cache
def statement(kind_names: tuple[str, ...]) -> Select[Any]:
    """The number of an organisation's (``tenant_id``) resources of these types: one
    statement for each set of types, built once."""

    def total(table: Table, column: str) -> Any:
        kind = table.c.resource_type
        return (
            select(func.coalesce(func.sum(table.c[column]), 0))
            .where(
                table.c.tenant_id == bindparam("tenant_id"),
                kind == kind_names[0] if len(kind_names) == 1 else kind.in_(kind_names),
            )
            .scalar_subquery()
        )

    counted = total(resource_counts, "count") + total(resource_count_changes, "change")
    return select(counted.label("count"))


async def fold(connection: AsyncConnection) -> None:
    """PostgreSQL: move the changes written so far into the counts, unless another worker is
    doing it now."""
    locked = await connection.execute(select(func.pg_try_advisory_xact_lock(_FOLDING)))
    if locked.scalar_one():
        await connection.execute(_FOLD)


async def keep_folded(engine: AsyncEngine) -> None:
    """Fold every ``FOLD_INTERVAL`` seconds until cancelled (PostgreSQL only)."""
    if engine.dialect.name != "postgresql":
        return
    while True:
        await asyncio.sleep(FOLD_INTERVAL)
        try:
            async with engine.begin() as connection:
                await fold(connection)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("the resource counts were not folded; trying again", exc_info=True)


# Every organisation's resources counted afresh, for a load that bypassed the triggers
# (``session_replication_role = replica``, as the benchmark's loader does).
RECOUNT = (
    "DELETE FROM resource_count_changes",
    "DELETE FROM resource_counts",
    "INSERT INTO resource_counts (tenant_id, resource_type, count) "
    "SELECT tenant_id, resource_type, count(*) FROM resources GROUP BY tenant_id, resource_type",
)
