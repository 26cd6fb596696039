"""The request counts every worker adds to, per rate-limit key and window (``rate_counts``)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from sqlalchemy import Delete, Insert, bindparam, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.storage import direct
from scim.storage.tables import rate_counts

# Windows before this one are dropped.
_DROP: Delete = delete(rate_counts).where(rate_counts.c.window < bindparam("oldest"))


async def add(
    engine: AsyncEngine, counted: Mapping[tuple[str, int], int], oldest: int | None
) -> dict[tuple[str, int], int]:
    """Add ``counted`` (key, window → requests) to the shared counts in one transaction, drop
    the windows before ``oldest`` (None: none); the sums, by key and window. Its statements
    are built once (``_adding``): a worker adds a few times a second, and building and
    compiling them anew cost more than the database's work."""
    adding = _adding(engine.dialect.name)
    sums: dict[tuple[str, int], int] = {}
    async with engine.begin() as connection:
        for (key, window), count in sorted(counted.items()):
            added = {"key": key, "window": window, "count": count}
            sums[(key, window)] = (await direct.first(connection, adding, added)).count
        if oldest is not None:
            await direct.write(connection, _DROP, {"oldest": oldest})
    return sums


@cache
def _adding(dialect: str) -> Insert:
    """A key's count in a window, added to what other workers added: one row per key and
    window, summed by the database."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    adding = insert(rate_counts).values(
        key=bindparam("key"), window=bindparam("window"), count=bindparam("count")
    )
    return adding.on_conflict_do_update(
        index_elements=[rate_counts.c.key, rate_counts.c.window],
        set_={"count": rate_counts.c.count + adding.excluded.count},
    ).returning(rate_counts.c.count)
