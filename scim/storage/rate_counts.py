"""The request counts every worker adds to, per rate-limit key and window (``rate_counts``)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.storage.tables import rate_counts


async def add(
    engine: AsyncEngine, counted: Mapping[tuple[str, int], int], oldest: int
) -> dict[tuple[str, int], int]:
    """Add ``counted`` (key, window → requests) to the shared counts in one transaction, drop
    the windows before ``oldest``; the sums, by key and window."""
    insert = postgresql_insert if engine.dialect.name == "postgresql" else sqlite_insert
    sums: dict[tuple[str, int], int] = {}
    async with engine.begin() as connection:
        for (key, window), count in sorted(counted.items()):
            adding = insert(rate_counts).values(key=key, window=window, count=count)
            summed = adding.on_conflict_do_update(
                index_elements=[rate_counts.c.key, rate_counts.c.window],
                set_={"count": rate_counts.c.count + adding.excluded.count},
            ).returning(rate_counts.c.count)
            sums[(key, window)] = (await connection.execute(summed)).scalar_one()
        await connection.execute(delete(rate_counts).where(rate_counts.c.window < oldest))
    return sums
