"""Tenant-scoped reads and writes of resources and memberships.

Every statement carries the tenant id; a caller holding a repository for one
tenant cannot name another tenant's rows.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Hashable, Iterable, Iterator, Sequence
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

import asyncpg
import msgspec
from sqlalchemy import (
    ARRAY,
    CTE,
    ColumnElement,
    CompoundSelect,
    Delete,
    FromClause,
    Insert,
    Integer,
    Row,
    Select,
    String,
    Table,
    Update,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import JSON

from scim.protocol.membership import Member
from scim.recent import Recent
from scim.storage import counts, direct, events, filters, kept, trigrams
from scim.storage.database import json_dumps
from scim.storage.json_sql import JsonSql
from scim.storage.tables import administrators, audit_log, members, receivers, resources

# What is read of each related resource besides id and display: name → path in its data
# (``scim.hooks.Related``).
Fields = tuple[tuple[str, tuple[str, ...]], ...]


class BatchConflict(Exception):
    """Rows written together hit a unique key or a foreign key: a concurrent write took a key,
    or removed a member, since it was looked up. Which row did is not known."""


class UniquenessConflict(BatchConflict):
    """A write hit a unique key of ``resources``: ``key`` names its column."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.key = _unique_key(message)


# The unique keys ``Repository.taken`` looks up before a write; others only the index checks.
PROBED_KEYS = ("user_name_key", "hsa_id_key")

# The unique indexes of ``resources`` by name (PostgreSQL's words) and their key column.
_UNIQUE_INDEXES = {
    "uq_resources_user_name": "user_name_key",
    "uq_resources_hsa_id": "hsa_id_key",
    "uq_resources_group_display_name": "display_name_key",
}
_POSTGRES_UNIQUE = re.compile(r'unique constraint "(\w+)"')
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?:[\w.]+, )*resources\.(\w+)")


def _unique_key(message: str) -> str | None:
    """The key column a driver's message says a write hit."""
    if found := _POSTGRES_UNIQUE.search(message):
        return _UNIQUE_INDEXES.get(found.group(1))
    if found := _SQLITE_UNIQUE.search(message):
        return found.group(1)
    return None


class MemberGone(BatchConflict):
    """A member added was deleted by a concurrent request after it was looked up."""


def _conflict(error: Exception) -> BatchConflict:
    """A failed key or reference as the conflict it is: SQLSTATE 23505 (PostgreSQL) or
    SQLite's own words say which unique key."""
    cause = getattr(error, "orig", None) or error
    state = getattr(cause, "sqlstate", None) or getattr(cause.__cause__, "sqlstate", None)
    if state == "23505" or "UNIQUE constraint failed" in str(cause):
        return UniquenessConflict(str(error))
    return BatchConflict(str(error))


class Repository:
    """An organisation's resources on ``source``: a connection, or for a request that only
    reads (``get``, ``search``, ``count``), the engine of ``database.reads``, whose pool
    lends each read a connection (``scim.storage.direct``)."""

    def __init__(
        self,
        source: direct.Source,
        tenant_id: int,
        base_url: str = "",
    ) -> None:
        self.source = source
        self.tenant_id = tenant_id
        self.base_url = base_url
        self.json = JsonSql(source.dialect.name)
        self.postgres = self.json.postgres

    @property
    def connection(self) -> AsyncConnection:
        """The connection everything but ``get``, ``search`` and ``count`` needs."""
        assert isinstance(self.source, AsyncConnection), "a repository of reads only"
        return self.source

    # -- reads ----------------------------------------------------------------

    async def get(
        self,
        kind_name: str,
        resource_id: str,
        *,
        relations: Fields | None = None,
        for_update: bool = False,
    ) -> Row[Any] | None:
        """A resource, with its members (Group) or groups (User) and their ``relations``
        fields unless that is None."""
        if "\x00" in resource_id:
            return None  # PostgreSQL's text cannot hold U+0000: no id holds it
        statement = _get_statement(
            kind_name, relations, for_update and self.postgres, self.postgres
        )
        parameters = {"tenant_id": self.tenant_id, "id": resource_id, "base_url": self.base_url}
        row: Row[Any] | None = await direct.first(self.source, statement, parameters)
        return row

    async def search(
        self,
        kind_names: Sequence[str],
        where: ColumnElement[bool] | None,
        order_by: Sequence[ColumnElement[Any]],
        offset: int,
        limit: int,
        relations: Sequence[tuple[str, Fields]] = (),
        sort_key: ColumnElement[Any] | None = None,
        count_total: bool = True,
        shapes: tuple[kept.Shape | None, kept.Shape | None] = (None, None),
    ) -> tuple[list[Row[Any]], int | None]:
        """One page of rows and the number of all matches: None without ``count_total``, or
        for a page past the end. The page's statement is kept per shape (``scim.storage.kept``)
        and read by the driver itself (``scim.storage.direct``); ``shapes``: the page's and
        the count's, where the caller knows them (a search's shape, ``ResourceService``).

        The count is a query of its own, and only when the page does not tell it: counting in
        the page's query (``count(*) OVER ()``) would make the database find and sort every
        match before it could return the first ones. What the page's statement reads beside
        its rows (``scim.storage.counts``) tells it for an unfiltered search (the kept count)
        and for a filter counted before at the organisation's generation, which it reads.
        """
        page_shape, count_shape = shapes
        if limit == 0:
            return [], await self.count(kind_names, where, count_shape)
        shape = page_shape or kept.shape(where, sort_key, *order_by)
        # SQLite's planner weighs a bound LIMIT as unknown: a pattern page's are written in,
        # as its patterns are (``direct`` writes them into the statement kept).
        patterns = _of_patterns(where, self.postgres)
        narrowing = await self._narrowing(where, shape) if patterns else None
        places = () if narrowing is None else narrowing.places
        total = None
        if count_total and where is None:
            total = _kept_total(tuple(kind_names))
        elif count_total and (count_shape := count_shape or kept.shape(where)) is not None:
            total = _GENERATION
        parameters = {"tenant_id": self.tenant_id, "base_url": self.base_url}
        if narrowing is not None:
            parameters |= narrowing.parameters
        if shape is None:
            # Built for this request alone: SQLAlchemy compiles it (``direct`` would, again).
            bound = _written_in if patterns else int
            statement = _page(
                kind_names,
                None if where is None else _narrow(where, places),
                order_by,
                relations,
                sort_key,
                self.postgres,
                ids_first=self.postgres or patterns,
                offset=bound(offset),
                limit=bound(limit),
                total=total,
            )
            rows = list((await direct.execute(self.source, statement, parameters)).all())
        else:
            told = None if total is None else total.name
            key = ("page", shape.key, tuple(kind_names), tuple(relations), self.postgres, told)
            named = shape.named

            def build() -> Select[Any]:
                return _page(
                    kind_names,
                    None if where is None else _narrow(named(where), places),
                    [named(term) for term in order_by],
                    relations,
                    None if sort_key is None else named(sort_key),
                    self.postgres,
                    ids_first=self.postgres or patterns,
                    offset=_bound("offset", patterns),
                    limit=_bound("limit", patterns),
                    total=total,
                )

            statement = _KEPT.get((key, places), build)
            parameters |= shape.values | {"offset": offset, "limit": limit}
            rows = list(await direct.rows(self.source, statement, parameters))
        if not count_total:
            return rows, None
        if not rows:
            return [], 0 if offset == 0 else None
        if offset == 0 and len(rows) < limit:
            return rows, len(rows)  # the whole result is on this page
        if total is not None and where is None:
            return rows, int(rows[0].total)
        if total is not None and count_shape is not None:
            counted = {"tenant_id": self.tenant_id} | count_shape.values
            count_key = _count_key(count_shape, kind_names)
            known = counts.known(self.source, count_key, counted, rows[0].generation)
            if known is not None:
                return rows, known
        return rows, await self._counted(kind_names, where, count_shape, narrowing)

    async def count(
        self,
        kind_names: Sequence[str],
        where: ColumnElement[bool] | None,
        shape: kept.Shape | None = None,
    ) -> int:
        """The organisation's resources of these types that match ``where`` (of ``shape``,
        where the caller knows it): all of them as the database keeps their number
        (``scim.storage.counts``), else counted."""
        shape = shape or kept.shape(where)
        patterns = _of_patterns(where, self.postgres)
        narrowing = await self._narrowing(where, shape) if patterns else None
        return await self._counted(kind_names, where, shape, narrowing)

    async def _narrowing(
        self, where: ColumnElement[bool] | None, shape: kept.Shape | None
    ) -> trigrams.Narrowing | None:
        """SQLite's search of patterns (``_of_patterns``): which of ``where``'s read their
        rows from the names' trigrams (``scim.storage.trigrams``), their values this
        request's (``shape``'s, where it has one); None: none does."""
        assert where is not None
        if shape is None:
            return await trigrams.narrowing(self.source, where)
        names, values = shape.names, shape.values

        def value(bind: BindParameter[Any]) -> Any:
            name = names.get(id(bind))
            return bind.value if name is None else values[name]

        return await trigrams.narrowing(self.source, where, value)

    async def _counted(
        self,
        kind_names: Sequence[str],
        where: ColumnElement[bool] | None,
        shape: kept.Shape | None = None,
        narrowing: trigrams.Narrowing | None = None,
    ) -> int:
        """``count`` of a condition, its patterns narrowed as ``narrowing`` says. A count
        does not depend on the narrowing: a shape's are kept as one (``counts.counted``)."""
        parameters: dict[str, Any] = {"tenant_id": self.tenant_id}
        places: tuple[int, ...] = ()
        sent = None
        if narrowing is not None:
            places, sent = narrowing.places, narrowing.parameters
        if where is None:
            statement = counts.statement(tuple(kind_names))
        elif shape is None:
            statement = _count(kind_names, _narrow(where, places))
            counted = await direct.execute(self.source, statement, parameters | (sent or {}))
            return int(counted.scalar_one())
        else:
            key = _count_key(shape, kind_names)
            named = shape.named
            statement = _KEPT.get(
                (key, places),
                lambda: counts.checked(_count(kind_names, _narrow(named(where), places))),
            )
            parameters |= shape.values
            return await counts.counted(self.source, statement, key, parameters, sent=sent)
        row = await direct.first(self.source, statement, parameters)
        return int(row[0])

    async def is_administrator(self, hsa_id: str) -> bool:
        parameters = {"tenant_id": self.tenant_id, "hsa_id": hsa_id}
        return await direct.first(self.connection, _IS_ADMINISTRATOR, parameters) is not None

    async def existing(self, ids: Iterable[str]) -> dict[str, Any]:
        """Which of these ids name a resource of this tenant, with their type and display."""
        found: dict[str, Any] = {}
        for wanted in _chunks(list(set(ids))):
            parameters = {"tenant_id": self.tenant_id, "ids": wanted}
            rows = (await self.connection.execute(_EXISTING, parameters)).all()
            found.update((row.id, row) for row in rows)
        return found

    async def taken(
        self, user_name_keys: Collection[str], hsa_id_keys: Collection[str]
    ) -> tuple[set[str], set[str]]:
        """Which of these userName and HSA-id keys resources of this tenant already hold
        (the unique keys of ``tables.resources``), for many writes in one round trip."""
        if not user_name_keys and not hsa_id_keys:
            return set(), set()
        parameters: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "user_names": list(user_name_keys),
            "hsa_ids": list(hsa_id_keys),
        }
        if self.postgres:
            parameters["user_names_tenants"] = [self.tenant_id] * len(user_name_keys)
            parameters["hsa_ids_tenants"] = [self.tenant_id] * len(hsa_id_keys)
        found: dict[str, set[str]] = {"user_name_key": set(), "hsa_id_key": set()}
        for row in await self.connection.execute(_taken_statement(self.postgres), parameters):
            found[row.column].add(row.key)
        return found["user_name_key"], found["hsa_id_key"]

    async def administrators(self, hsa_ids: Collection[str]) -> set[str]:
        """Which of these HSA-ids are administrators of this tenant (``is_administrator`` for
        many in one round trip)."""
        if not hsa_ids:
            return set()
        if len(hsa_ids) == 1:
            # A plain comparison: an expanding IN is rendered anew for every execution.
            (hsa_id,) = hsa_ids
            return {hsa_id} if await self.is_administrator(hsa_id) else set()
        parameters = {"tenant_id": self.tenant_id, "hsa_ids": list(hsa_ids)}
        return set((await self.connection.execute(_ADMINISTRATORS, parameters)).scalars())

    async def members_of(self, group_id: str) -> set[Member]:
        """A group's members, with the display a client sent for each: None where there is
        none, or it is the member's own."""
        member = resources.alias("member")
        own = case((members.c.display == member.c.display, None), else_=members.c.display)
        statement = (
            select(members.c.member_id, own.label("display"))
            .join(member, member.c.id == members.c.member_id)
            .where(members.c.tenant_id == self.tenant_id, members.c.group_id == group_id)
        )
        return {(row.member_id, row.display) for row in await self.connection.execute(statement)}

    async def member_ids(
        self, group_id: str, rows: FromClause, where: ColumnElement[bool]
    ) -> list[str]:
        """The members of a group that a condition over ``rows`` (``member_selection``) selects."""
        statement = (
            select(members.c.member_id)
            .select_from(rows)
            .where(members.c.tenant_id == self.tenant_id, members.c.group_id == group_id, where)
        )
        return list((await self.connection.execute(statement)).scalars())

    async def users_related(
        self, user_ids: Iterable[str], fields: Fields
    ) -> dict[str, tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]]:
        """Users of this tenant among ``user_ids``: their stored documents, and each group
        they are in with its ``fields`` (as ``render`` gets them)."""
        found: dict[str, tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]] = {}
        statement = _users_related_statement(fields, self.postgres)
        for wanted in _chunks(list(set(user_ids))):
            parameters = {"tenant_id": self.tenant_id, "ids": wanted, "base_url": ""}
            for row in await self.connection.execute(statement, parameters):
                found[row.id] = (row.data, _related(row.relations, fields))
        return found

    async def users(self, after: str, limit: int) -> list[str]:
        """Ids of this tenant's users, in id order, after ``after``: a page of them all."""
        statement = (
            select(resources.c.id)
            .where(
                resources.c.tenant_id == self.tenant_id,
                resources.c.resource_type == "User",
                resources.c.id > after,
            )
            .order_by(resources.c.id)
            .limit(limit)
        )
        return list((await self.connection.execute(statement)).scalars())

    async def member_list(self, group_id: str) -> list[str]:
        """The ids of a group's members."""
        statement = select(members.c.member_id).where(
            members.c.tenant_id == self.tenant_id, members.c.group_id == group_id
        )
        return list((await self.connection.execute(statement)).scalars())

    async def plan_for_parameters(self) -> None:
        """PostgreSQL: plan each statement of this transaction for its own parameters and
        the table as it is, not once for all (a prepared statement's generic plan).

        A generic plan is kept while the table grows. Made while a first sync has written
        little, it reads the tenant's every row through any index that starts with
        ``tenant_id`` (all looked equally good then) instead of probing the unique index:
        the lookups of ``taken`` grew slower with every request of the sync.
        """
        if self.postgres:
            await self.connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")

    # -- writes ---------------------------------------------------------------

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert new resources of this tenant, all at once (``insert_rows``)."""
        tenant = {"tenant_id": self.tenant_id}
        await self.insert_rows(resources, [{**tenant, **row} for row in rows])

    async def insert_memberships(self, rows: Iterable[tuple[str, str, str | None]]) -> None:
        """Members of groups that are new in this transaction, so none can be there yet
        (unlike ``add_members``)."""
        tenant = self.tenant_id
        await self.insert_rows(
            members,
            [
                {"tenant_id": tenant, "group_id": group, "member_id": member, "display": display}
                for group, member, display in rows
            ],
        )

    async def insert_audit(self, entries: Sequence[dict[str, Any]]) -> None:
        """Audit records (``audit.entry``) of the changes of this transaction, all at once."""
        await self.insert_rows(audit_log, entries)

    async def insert_rows(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """New rows of ``table`` (each with the same columns), in one go: PostgreSQL's COPY,
        elsewhere one statement run for all. UniquenessConflict if a unique key fails,
        BatchConflict if a reference does."""
        if not rows:
            return
        try:
            # COPY first asks for the table's columns: one row goes faster as an INSERT.
            if self.postgres and len(rows) > 1:
                await self._copy(table, rows)
            elif len(rows) == 1:
                row = rows[0]
                await direct.write(self.connection, direct.inserting(table, tuple(row)), row)
            else:
                await self.connection.execute(insert(table), rows)
        except (IntegrityError, asyncpg.IntegrityConstraintViolationError) as error:
            raise _conflict(error) from error

    async def _copy(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """COPY through the transaction's own asyncpg connection: no statement to parse and
        plan, binary rows; for many rows the cheapest way in, for the server and PostgreSQL."""
        columns = list(rows[0])
        json_columns = {column.name for column in table.c if isinstance(column.type, JSON)}
        encoded = [column in json_columns for column in columns]
        records = [
            tuple(
                json_dumps(row[column]) if is_json else row[column]
                for column, is_json in zip(columns, encoded, strict=True)
            )
            for row in rows
        ]
        driver = (await self.connection.get_raw_connection()).driver_connection
        # SQLAlchemy begins the transaction with its first statement; COPY must be inside it.
        assert driver is not None and driver.is_in_transaction(), "COPY outside the transaction"
        await driver.copy_records_to_table(table.name, records=records, columns=columns)

    def _expected(self, resource_id: str, version: int) -> dict[str, Any]:
        """The parameters of ``_update`` that name the row and the version it must have."""
        return {
            "in_tenant": self.tenant_id,
            "resource_id": resource_id,
            "expected_version": version,
        }

    async def update(self, resource_id: str, version: int, values: dict[str, Any]) -> bool:
        """Write ``values`` if the row still has ``version``; False if someone else wrote first."""
        parameters = {**values, **self._expected(resource_id, version)}
        try:
            written = await direct.write(self.connection, _update(tuple(values)), parameters)
        except IntegrityError as error:
            raise UniquenessConflict(str(error.orig)) from error
        return bool(written)

    async def update_recorded(
        self, resource_id: str, version: int, values: dict[str, Any], record: dict[str, Any]
    ) -> bool:
        """PostgreSQL: ``update`` and its audit record (``audit.entry``) in one statement, on
        the engine of ``database.reads``: the statement is its own transaction, one round
        trip where a transaction takes four (BEGIN, UPDATE, INSERT, COMMIT). False, and
        nothing written, if someone else wrote first."""
        parameters = {
            **values,
            **{f"record_{name}": value for name, value in record.items()},
            **self._expected(resource_id, version),
        }
        statement = _update_recorded(tuple(values), tuple(record))
        try:
            written = await direct.first(self.source, statement, parameters)
        except IntegrityError as error:
            raise UniquenessConflict(str(error.orig)) from error
        return bool(written.written)

    async def insert_recorded(
        self,
        row: dict[str, Any],
        record: dict[str, Any],
        person: str | None,
        audiences: Sequence[str],
    ) -> bool:
        """PostgreSQL: a new resource of this tenant (``row``) and its audit record
        (``audit.entry``) in one statement, on the engine of ``database.reads``: its own
        transaction, one round trip where a transaction takes five or more. Written only if
        no administrator of this tenant has the ``person`` key, and no receiver hears the
        ``audiences`` of events the write would make in this tenant: False, and nothing
        written, where the write is the transaction's to make (which refuses it, or writes
        the events). UniquenessConflict if a unique key is taken.

        Administrator and user stay exclusive roles (``identities.hold_users``): the INSERT
        holds its ROW EXCLUSIVE lock on ``resources`` before PostgreSQL takes the snapshot
        in which the statement looks for the administrator, as a check after the write
        does."""
        parameters = {
            "tenant_id": self.tenant_id,
            **row,
            **{f"record_{name}": value for name, value in record.items()},
            "hsa_id": person,
            "audiences": list(audiences),
        }
        statement = _insert_recorded(tuple(row), tuple(record))
        try:
            written = await direct.first(self.source, statement, parameters)
        except IntegrityError as error:
            raise _conflict(error) from error
        return bool(written.written)

    async def touch(self, resource_id: str, version: int, now: datetime) -> bool:
        return await self.update(
            resource_id, version, {"version": version + 1, "last_modified": now}
        )

    async def delete(self, kind_name: str, resource_id: str) -> bool:
        result = await self.connection.execute(
            delete(resources).where(
                resources.c.tenant_id == self.tenant_id,
                resources.c.resource_type == kind_name,
                resources.c.id == resource_id,
            )
        )
        return bool(result.rowcount)

    async def add_members(self, group_id: str, new_members: Iterable[Member]) -> int:
        """Add members, given as (id, display sent by the client or None); existing ones stay."""
        rows = [
            {
                "tenant_id": self.tenant_id,
                "group_id": group_id,
                "member_id": member_id,
                "display": display,
            }
            for member_id, display in dict(new_members).items()
        ]
        if not rows:
            return 0  # an empty executemany would be one execution without parameters
        # The same statement for any number of rows, so it is compiled once: SQLAlchemy
        # sends them as INSERTs of many VALUES (1,000 rows each, within the drivers' limits
        # on parameters), and RETURNING tells which were new.
        try:
            result = await self.connection.execute(_ADD_MEMBERS[self.postgres], rows)
        except IntegrityError as error:  # the group is locked: a member's row went away
            raise MemberGone(str(error)) from error
        return len(result.all())

    async def add_members_recorded(
        self, group_id: str, new_members: Sequence[Member], record: dict[str, Any]
    ) -> int | None:
        """PostgreSQL: ``add_members``, the group's next version (if any member was new) and
        its audit record in one statement (``_members_recorded``)."""
        parameters = {
            "member_ids": [member_id for member_id, _ in new_members],
            "displays": [display for _, display in new_members],
        }
        return await self._members_recorded(group_id, True, parameters, record)

    async def remove_members_recorded(
        self, group_id: str, member_ids: Sequence[str], record: dict[str, Any]
    ) -> int | None:
        """PostgreSQL: ``remove_members``, the group's next version (if any was a member) and
        its audit record in one statement (``_members_recorded``)."""
        return await self._members_recorded(group_id, False, {"member_ids": member_ids}, record)

    async def _members_recorded(
        self, group_id: str, adding: bool, parameters: dict[str, Any], record: dict[str, Any]
    ) -> int | None:
        """A change of a group's members, its next version and its audit record in one
        statement, on the engine of ``database.reads``: its own transaction, which holds the
        group's lock only while it runs and commits. The group's version after it; None,
        and nothing written, where the write is the transaction's to make: there is no such
        group, or a receiver hears this tenant's events (the transaction tells them whose
        permissions changed)."""
        parameters = {
            **parameters,
            "in_tenant": self.tenant_id,
            "in_group": group_id,
            "now": record["at"],
            **{f"record_{name}": value for name, value in record.items()},
        }
        statement = _members_recorded(adding, tuple(record))
        try:
            written = await direct.first(self.source, statement, parameters)
        except IntegrityError as error:  # a member's row went away since it was checked
            raise MemberGone(str(error)) from error
        if written.found is None or written.heard:
            return None
        return int(written.version if written.version is not None else written.found)

    async def remove_members(self, group_id: str, member_ids: Iterable[str] | None) -> int:
        """Remove these members, or every member when ``member_ids`` is None."""
        statement = delete(members).where(
            members.c.tenant_id == self.tenant_id, members.c.group_id == group_id
        )
        if member_ids is None:
            return int((await self.connection.execute(statement)).rowcount or 0)
        removed = 0
        for ids in _chunks(list(set(member_ids))):
            result = await self.connection.execute(statement.where(members.c.member_id.in_(ids)))
            removed += int(result.rowcount or 0)
        return removed


T = TypeVar("T")

# Bound parameters per statement stay well below what the drivers take (32766 in SQLite,
# 32767 in asyncpg): ids per IN list.
_IDS_PER_STATEMENT = 10000
_ADD_MEMBERS = {
    postgres: insert.on_conflict_do_nothing().returning(members.c.member_id)
    for postgres, insert in ((True, pg_insert(members)), (False, sqlite_insert(members)))
}


def _chunks(items: list[T], size: int = _IDS_PER_STATEMENT) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _written_in(number: int) -> ColumnElement[int]:
    return literal(number, Integer(), literal_execute=True)


def _bound(name: str, written_in: bool) -> BindParameter[int]:
    """A page's bound as its kept statement takes it: written in by the driver (SQLite's
    pattern pages, ``_written_in``), else a parameter the database types (a 64-bit one on
    PostgreSQL, where an INTEGER one would refuse an offset past 2^31)."""
    if written_in:
        return bindparam(name, type_=Integer(), literal_execute=True)
    return bindparam(name)


def _of_kinds(kind_names: Sequence[str]) -> ColumnElement[bool]:
    if len(kind_names) == 1:
        return resources.c.resource_type == kind_names[0]
    return resources.c.resource_type.in_(kind_names)


def _per_kind(kinds: Sequence[tuple[str, Fields]], postgres: bool) -> ColumnElement[Any]:
    if len(kinds) == 1:
        return relations(*kinds[0], postgres)
    return case(
        *(
            (resources.c.resource_type == name, relations(name, fields, postgres))
            for name, fields in kinds
        ),
        else_=None,
    )


def _page(
    kind_names: Sequence[str],
    where: ColumnElement[bool] | None,
    order_by: Sequence[ColumnElement[Any]],
    relations: Sequence[tuple[str, Fields]],
    sort_key: ColumnElement[Any] | None,
    postgres: bool,
    *,
    ids_first: bool,
    offset: int | ColumnElement[int],
    limit: int | ColumnElement[int],
    total: ColumnElement[Any] | None = None,
) -> Select[Any]:
    """A page of the organisation's resources of these types that match ``where``, in
    ``order_by``, from ``offset``, at most ``limit``; with each one's relations and sort
    key if asked, and ``total`` (one value for the whole page) beside them.

    ``ids_first``: the page's ids are found first and only their rows read, where the
    database would otherwise do more for the rows it passes over. PostgreSQL computes the
    select list of every row an index gives it in order, the offset's too, and a row's
    relations are a subquery (page 6 of 100 users sorted by surname at 1M: 14 ms, page 201:
    320-415 ms; ids first: 6.6 and 43-49 ms). SQLite sorts whole rows: a page of ``co``,
    ``sw`` or ``ew`` matches is found in the key's index (``filters.Rarely``).
    """
    scope = [resources.c.tenant_id == bindparam("tenant_id"), _of_kinds(kind_names)]
    if where is not None:
        scope.append(where)
    columns: list[Any] = [*_READ]
    if relations:
        columns.append(_per_kind(relations, postgres).label("relations"))
    if sort_key is not None:
        columns.append(sort_key.label("sort_key"))
    if total is not None:
        columns.append(total)
    if not ids_first:
        return select(*columns).where(*scope).order_by(*order_by).offset(offset).limit(limit)
    ids = select(resources.c.id).where(*scope).order_by(*order_by)
    ids = ids.offset(offset).limit(limit).correlate(None)
    return select(*columns).where(resources.c.id.in_(ids)).order_by(*order_by)


@cache
def _kept_total(kind_names: tuple[str, ...]) -> ColumnElement[int]:
    """An unfiltered page's total: the count the database keeps (``counts.statement``)."""
    return counts.statement(kind_names).scalar_subquery().label("total")


# A filtered page's generation: whether a count made before still holds (``counts.known``).
_GENERATION: ColumnElement[int] = counts.generation().label("generation")


def _count_key(shape: kept.Shape, kind_names: Sequence[str]) -> Hashable:
    return ("count", shape.key, tuple(kind_names))


def _count(kind_names: Sequence[str], where: ColumnElement[bool]) -> Select[Any]:
    scope = [resources.c.tenant_id == bindparam("tenant_id"), _of_kinds(kind_names), where]
    return select(func.count().label("count")).select_from(resources).where(*scope)


# Search statements by shape (``scim.storage.kept``).
_KEPT = Recent(256)

# Statements are built once: building SQLAlchemy expressions costs more than running them.

_EXISTING = select(resources.c.id, resources.c.resource_type, resources.c.display).where(
    resources.c.tenant_id == bindparam("tenant_id"),
    resources.c.id.in_(bindparam("ids", expanding=True)),
)
_ADMINISTRATORS = select(administrators.c.hsa_id).where(
    administrators.c.tenant_id == bindparam("tenant_id"),
    administrators.c.hsa_id.in_(bindparam("hsa_ids", expanding=True)),
)


def _of_patterns(where: ColumnElement[bool] | None, postgres: bool) -> bool:
    """Whether this is SQLite's search of ``co``, ``sw`` or ``ew`` matches: its rare
    fragments are read from the names' trigrams (``scim.storage.trigrams``), and its page's
    bounds are written in."""
    return not postgres and filters.matches_patterns(where)


def _narrow(where: ColumnElement[bool], places: tuple[int, ...]) -> ColumnElement[bool]:
    return trigrams.narrow(where, places) if places else where


@cache
def _update(columns: tuple[str, ...]) -> Update:
    """An update of these columns of a resource if it still has the expected version; built
    once per set of columns (building it cost a PATCH more than SQLAlchemy's execution)."""
    return (
        update(resources)
        .where(
            # Not the columns' own names: those stand for the values set.
            resources.c.tenant_id == bindparam("in_tenant"),
            resources.c.id == bindparam("resource_id"),
            resources.c.version == bindparam("expected_version"),
        )
        .values({name: bindparam(name, type_=resources.c[name].type) for name in columns})
    )


_IS_ADMINISTRATOR = select(administrators.c.id).where(
    administrators.c.tenant_id == bindparam("tenant_id"),
    administrators.c.hsa_id == bindparam("hsa_id"),
)


def _recorded(written: Insert | Update, recorded: tuple[str, ...]) -> Select[Any]:
    """A write of one resource and the INSERT of its audit record (its columns bound as
    ``record_{name}``) for the row it wrote, if it wrote one: data-modifying CTEs, which
    PostgreSQL runs once each, to completion. The number of rows written."""
    done = written.returning(resources.c.id).cte("written")
    logged = _logged(done, recorded)
    return select(func.count().label("written")).select_from(done).add_cte(logged)


def _logged(done: CTE, recorded: tuple[str, ...]) -> CTE:
    """The INSERT of an audit record (its columns bound as ``record_{name}``) for each row
    of ``done``: one, or none where nothing was written."""
    record = select(
        *(bindparam(f"record_{name}", type_=audit_log.c[name].type) for name in recorded)
    ).select_from(done)
    return insert(audit_log).from_select(list(recorded), record).cte("logged")


@cache
def _members_recorded(adding: bool, recorded: tuple[str, ...]) -> Select[Any]:
    """``Repository._members_recorded``: the members ``member_ids`` (with ``displays``)
    added, or removed. The group's row is locked first (``grp``), so that these writes queue
    behind a transaction's on the group, as its own do, instead of meeting it halfway (a
    member's unique key against the group's lock: a deadlock). The CTEs see one snapshot;
    the UPDATE sees the row ``grp`` locked, as READ COMMITTED does. No parameter has a
    column's name: in an INSERT or UPDATE that stands for its value."""
    tenant = bindparam("in_tenant", type_=Integer)
    group = (
        select(resources.c.id, resources.c.version)
        .where(
            resources.c.tenant_id == tenant,
            resources.c.resource_type == "Group",
            resources.c.id == bindparam("in_group"),
        )
        .with_for_update(key_share=True)
        .cte("grp")
    )
    heard = select(receivers.c.id).where(events.hearing(tenant)).exists()
    ids = bindparam("member_ids", type_=ARRAY(String))
    changed: Insert | Delete
    if adding:
        new = (
            func.unnest(ids, bindparam("displays", type_=ARRAY(String)))
            .table_valued("member_id", "display")
            .render_derived("new")
        )
        rows = (
            select(tenant, group.c.id, new.c.member_id, new.c.display)
            .select_from(group.join(new, true()))
            .where(~heard)
        )
        changed = (
            pg_insert(members)
            .from_select(["tenant_id", "group_id", "member_id", "display"], rows)
            .on_conflict_do_nothing()
        )
    else:
        changed = delete(members).where(
            members.c.tenant_id == tenant,
            members.c.group_id == select(group.c.id).scalar_subquery(),
            members.c.member_id == func.any(ids),
            ~heard,
        )
    done = changed.returning(members.c.member_id).cte("changed")
    bumped = (
        update(resources)
        .where(
            resources.c.tenant_id == tenant,
            resources.c.id == bindparam("in_group"),
            select(done.c.member_id).exists(),
        )
        .values(
            version=resources.c.version + 1,
            last_modified=bindparam("now", type_=resources.c.last_modified.type),
        )
        .returning(resources.c.id, resources.c.version)
        .cte("bumped")
    )
    return select(
        select(group.c.version).scalar_subquery().label("found"),
        select(bumped.c.version).scalar_subquery().label("version"),
        heard.label("heard"),
    ).add_cte(done, bumped, _logged(bumped, recorded))


@cache
def _update_recorded(columns: tuple[str, ...], recorded: tuple[str, ...]) -> Select[Any]:
    """``Repository.update_recorded``."""
    return _recorded(_update(columns), recorded)


@cache
def _insert_recorded(columns: tuple[str, ...], recorded: tuple[str, ...]) -> Select[Any]:
    """``Repository.insert_recorded``: the row's values, selected where no administrator
    has its person key and no receiver hears the audiences in its tenant."""
    heard = select(receivers.c.id).where(
        receivers.c.audience == func.any(bindparam("audiences", type_=ARRAY(String))),
        events.hearing(bindparam("tenant_id")),
    )
    values = select(
        bindparam("tenant_id", type_=Integer),
        *(bindparam(name, type_=resources.c[name].type) for name in columns),
    ).where(~_IS_ADMINISTRATOR.exists(), ~heard.exists())
    inserted = insert(resources).from_select(["tenant_id", *columns], values)
    return _recorded(inserted, recorded)


@cache
def relations(kind_name: str, fields: Fields, postgres: bool) -> ColumnElement[Any]:
    """The JSON array of a row's members (Group) or groups (User), built in SQL, with the
    ``fields`` of each related resource.

    ``$ref`` is made from the ``base_url`` parameter of the statement.
    """
    json = JsonSql("postgresql" if postgres else "sqlite")
    related = resources.alias("related")
    base_url = bindparam("base_url", type_=String)
    if kind_name == "Group":
        endpoint = case(
            (related.c.resource_type == "User", literal("/Users/")), else_=literal("/Groups/")
        )
        pairs: tuple[Any, ...] = (
            "value",
            related.c.id,
            "$ref",
            base_url + endpoint + related.c.id,
            "type",
            related.c.resource_type,
            "display",
            func.coalesce(members.c.display, related.c.display),
        )
        join_on, correlate = members.c.member_id, members.c.group_id
    else:
        pairs = (
            "value",
            related.c.id,
            "$ref",
            base_url + literal("/Groups/") + related.c.id,
            "display",
            related.c.display,
            "type",
            literal("direct"),
        )
        join_on, correlate = members.c.group_id, members.c.member_id
    for name, path in fields:
        pairs += (name, related.c.data[path])
    return (
        select(json.aggregate(*pairs))
        .select_from(members.join(related, related.c.id == join_on))
        .where(correlate == resources.c.id, members.c.tenant_id == resources.c.tenant_id)
        .scalar_subquery()
    )


def _related(value: Any, fields: Fields) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(value, str | bytes):
        value = msgspec.json.decode(value)
    return [
        (entry["value"], {name: entry.get(name) for name, _ in fields}) for entry in value or []
    ]


@cache
def _users_related_statement(fields: Fields, postgres: bool) -> Select[Any]:
    return select(
        resources.c.id, resources.c.data, relations("User", fields, postgres).label("relations")
    ).where(
        resources.c.tenant_id == bindparam("tenant_id"),
        resources.c.resource_type == "User",
        resources.c.id.in_(bindparam("ids", expanding=True)),
    )


@cache
def _taken_statement(postgres: bool) -> CompoundSelect[Any]:
    """The keys among ``:user_names`` and ``:hsa_ids`` that resources of ``:tenant_id`` hold,
    each looked up in its unique index.

    Planners are kept from the other plan they like, reading every row of the tenant
    through an index that starts with ``tenant_id``. PostgreSQL picks that plan when its
    statistics say the tenant has (almost) no rows, which is so during a first sync: of
    a new organisation, or into a new database. On PostgreSQL each key is therefore
    probed by itself, LIMIT keeping the probe from being made a join, and the tenant
    comes with each key as a column (``:tenants``), so that the estimate is that of any
    tenant, not the statistics of this one. SQLite uses the index for a plain IN on one
    column, not for an OR of two.
    """
    branches = []
    for column, parameter in (("user_name_key", "user_names"), ("hsa_id_key", "hsa_ids")):
        held = resources.c[column]
        if postgres:
            wanted = (
                func.unnest(
                    bindparam(parameter, type_=ARRAY(String)),
                    bindparam(f"{parameter}_tenants", type_=ARRAY(Integer)),
                )
                .table_valued("key", "tenant_id")
                .render_derived(f"wanted_{parameter}")
            )
            probe = (
                select(held)
                .where(resources.c.tenant_id == wanted.c.tenant_id, held == wanted.c.key)
                .limit(1)
                .lateral()
            )
            branch = select(probe.c[column]).select_from(wanted.join(probe, true()))
        else:
            tenant = resources.c.tenant_id == bindparam("tenant_id")
            branch = select(held).where(tenant, held.in_(bindparam(parameter, expanding=True)))
        branches.append(
            branch.with_only_columns(
                literal(column).label("column"), branch.selected_columns[0].label("key")
            )
        )
    return union_all(*branches)


# What a read gives of a resource: what is shown of it and what a write checks. Its search
# keys are the database's to match and order by, not to send: a page of 100 users would
# decode 1,200 values more.
_READ = (
    resources.c.id,
    resources.c.resource_type,
    resources.c.created,
    resources.c.last_modified,
    resources.c.version,
    resources.c.data,
)


@cache
def _get_statement(
    kind_name: str, related: Fields | None, for_update: bool, postgres: bool
) -> Select[Any]:
    columns: list[Any] = [*_READ]
    if related is not None:
        columns.append(relations(kind_name, related, postgres).label("relations"))
    statement = select(*columns).where(
        resources.c.tenant_id == bindparam("tenant_id"),
        resources.c.resource_type == kind_name,
        resources.c.id == bindparam("id"),
    )
    if for_update:
        statement = statement.with_for_update(of=resources)
    return statement
