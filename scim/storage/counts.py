"""How many resources of some types an organisation holds, as the database keeps it with every
insert and delete (triggers of migration 0012): an unfiltered list's ``totalResults``
(RFC 7644 §3.4.2) is then read from a row or two, not counted over every resource.

On PostgreSQL a statement's change is first a row of ``resource_count_changes`` (writers
never wait for each other on a counter); ``fold`` moves them into ``resource_counts`` and
each worker calls it every ``FOLD_INTERVAL`` seconds (``keep_folded``). A count adds both in
one statement, so it sees the changes committed before it, folded or not.

A filtered list's count cannot be kept so; but the database also counts every write of an
organisation's resources and memberships (migration 0017), and that number, its
*generation*, tells a worker whether a count it made still holds: ``Known`` keeps this
worker's recent counts with the generation each was made at, and ``checked`` reads the
generation and counts again only if it changed, in one statement. A client paging through a
filter's matches (RFC 7644 §3.4.2.4) so has them counted once, not once per page.

A page's own statement reads the kept count (``statement``) or the generation
(``generation``) beside its rows, in the same snapshot: a page whose total is kept, or was
counted at that generation (``known``), needs no second statement.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from sqlalchemy import Select, Table, bindparam, case, func, null, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scim.storage import direct
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
    INSERT INTO resource_counts (tenant_id, resource_type, count, writes)
    SELECT tenant_id, resource_type, sum(change), count(*) FROM moved
    GROUP BY tenant_id, resource_type
    ON CONFLICT (tenant_id, resource_type) DO UPDATE
    SET count = resource_counts.count + excluded.count,
        writes = resource_counts.writes + excluded.writes
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


def generation() -> Any:
    """The organisation's writes so far: folded, and one per change row not folded yet."""
    tenant: Any = bindparam("tenant_id")
    folded = select(func.coalesce(func.sum(resource_counts.c.writes), 0)).where(
        resource_counts.c.tenant_id == tenant
    )
    pending = (
        select(func.count())
        .select_from(resource_count_changes)
        .where(resource_count_changes.c.tenant_id == tenant)
    )
    return folded.scalar_subquery() + pending.scalar_subquery()


def checked(count: Select[Any]) -> Select[Any]:
    """``count`` (one row, one column) beside the organisation's generation, made only if the
    generation is not ``known``: a CASE whose subquery both databases run only when the
    branch is taken."""
    # Made once for both uses: PostgreSQL would inline a CTE referenced once in FROM, and
    # so read the changes twice (InitPlans 2 and 4 of the plan, each as long as the other).
    made = select(generation().label("generation")).cte("generation")
    made = made.prefix_with("MATERIALIZED")
    unchanged = made.c.generation == bindparam("known")
    again = case((unchanged, null()), else_=count.scalar_subquery())
    return select(made.c.generation, again.label("count"))


class Known:
    """The filtered counts a worker made lately, each with the generation it was made at: at
    most ``size``, the least recently used forgotten first."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._counts: OrderedDict[Hashable, tuple[int, int]] = OrderedDict()

    def get(self, key: Hashable) -> tuple[int, int] | None:
        found = self._counts.get(key)
        if found is not None:
            self._counts.move_to_end(key)
        return found

    def put(self, key: Hashable, generation: int, count: int) -> None:
        self._counts[key] = (generation, count)
        self._counts.move_to_end(key)
        if len(self._counts) > self.size:
            self._counts.popitem(last=False)


# One per database (the engine of its reads): another database's generations are its own.
_KNOWN: weakref.WeakKeyDictionary[Engine, Known] = weakref.WeakKeyDictionary()


async def counted(
    source: direct.Source,
    statement: Select[Any],
    key: Hashable,
    parameters: dict[str, Any],
    sent: dict[str, Any] | None = None,
) -> int:
    """What a ``checked`` statement counts for ``parameters``, made again only if the
    organisation has been written since this worker counted it (``key`` and the parameters
    name the count; ``sent``: parameters of the statement that do not). Only reads outside
    any transaction are kept: a write's transaction sees its own writes, in a generation
    that may never be committed."""
    parameters_sent = parameters if sent is None else parameters | sent
    if not isinstance(source, AsyncEngine):
        row = await direct.first(source, statement, parameters_sent | {"known": -1})
        return int(row.count)
    known, named = _known(source), _named(key, parameters)
    entry = known.get(named) if named is not None else None
    generation = entry[0] if entry else -1
    row = await direct.first(source, statement, parameters_sent | {"known": generation})
    if row.count is None and entry is not None:
        return entry[1]
    if named is not None:
        known.put(named, row.generation, row.count)
    return int(row.count)


def known(
    source: direct.Source, key: Hashable, parameters: dict[str, Any], generation: int
) -> int | None:
    """The count ``counted`` made for ``key`` and ``parameters`` at ``generation`` (as a page
    read it), if this worker made one; None otherwise. Outside any transaction only, as
    ``counted`` keeps them."""
    if not isinstance(source, AsyncEngine) or (named := _named(key, parameters)) is None:
        return None
    entry = _known(source).get(named)
    return entry[1] if entry is not None and entry[0] == generation else None


def _known(source: AsyncEngine) -> Known:
    known = _KNOWN.get(source.sync_engine)
    if known is None:
        known = _KNOWN[source.sync_engine] = Known()
    return known


def _named(key: Hashable, parameters: dict[str, Any]) -> Hashable | None:
    """What names a count; None for a value that cannot be a key (a list of them): such a
    count is made every time."""
    named = (key, *parameters.items())
    try:
        hash(named)
    except TypeError:
        return None
    return named


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


# PostgreSQL: every organisation's resources counted afresh, for a load that bypassed the
# triggers (``session_replication_role = replica``, as the benchmark's loader does). The load
# was a write: every generation moves on, none goes back.
RECOUNT = (
    _FOLD.text,
    "UPDATE resource_counts SET count = 0, writes = writes + 1",
    "INSERT INTO resource_counts (tenant_id, resource_type, count, writes) "
    "SELECT tenant_id, resource_type, count(*), 1 FROM resources GROUP BY tenant_id, resource_type "
    "ON CONFLICT (tenant_id, resource_type) DO UPDATE SET count = excluded.count",
)
