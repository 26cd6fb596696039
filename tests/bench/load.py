"""Build a benchmark database quickly: schema by Alembic, organisations and tokens through the
operator's own code, resources and memberships by bulk load (PostgreSQL COPY, SQLite
executemany) with the same search keys the API derives (``scim.service.search_keys``).

``verify`` proves the shortcut: users written through ``ResourceService`` must produce the
very rows the loader writes for the same request body.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import URL, delete, make_url, select, text
from sqlalchemy import create_engine as create_sync_engine

from extensions.catalogue import load_configured
from extensions.hooks import EServices
from extensions.organisations import Kind
from extensions.rules import Rules
from scim.hooks import Tenant as Agreements
from scim.operator import Operator
from scim.registry import Registry
from scim.service import Caller, ResourceService, search_keys
from scim.settings import Settings
from scim.storage import counts, database
from scim.storage.tables import members, resources
from tests.bench.data import (
    Organisation,
    People,
    big_group_size,
    group_body,
    organisations,
    surname_fragments,
)

COLUMNS = [column.name for column in resources.columns]
MEMBER_COLUMNS = ["tenant_id", "group_id", "member_id", "display"]
GROUPS_PER_TENANT = 5
CHUNK = 20_000


@dataclass
class Dataset:
    """What the load generator needs to know about the benchmarked organisation."""

    url: str
    org_number: str
    domain: str
    tenant_id: int
    token: str
    users: int
    tenants: int
    total_users: int
    big_group: str
    big_group_members: int
    user_ids: list[str] = field(default_factory=list)
    user_names: list[str] = field(default_factory=list)
    non_members: list[str] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    # When the rows were loaded: what the API creates later is newer (see ``reset``).
    loaded_at: str = ""

    def save(self, path: Path) -> None:
        path.write_bytes(msgspec.json.encode(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> Dataset:
        return cls(**msgspec.json.decode(path.read_bytes()))


def _asyncpg_options(url: URL, name: str | None = None) -> dict[str, Any]:
    return {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "database": name or url.database,
    }


async def recreate(url: str) -> None:
    """An empty database at ``url``: the PostgreSQL database dropped and created, or the
    SQLite file removed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
        return
    admin = await asyncpg.connect(**_asyncpg_options(parsed, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


# The resource types as the server has them, for the search keys it derives.
_KINDS = Registry(Settings(), EServices.from_settings(Settings())).by_name


def _row(tenant_id: int, resource_id: str, kind: str, document: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "tenant_id": tenant_id,
        "id": resource_id,
        "resource_type": kind,
        "created": now,
        "last_modified": now,
        "version": 1,
        **search_keys(document, _KINDS[kind].person(document)),
        "data": document,
    }


@dataclass
class _Tenant:
    organisation: Organisation
    tenant_id: int
    token: str | None = None


async def _tenants(url: str, orgs: list[Organisation]) -> list[_Tenant]:
    """Organisations, agreements, a system client each, and a token for the first."""
    engine = database.create_engine(url)
    try:
        await database.upgrade(engine)
        made: list[_Tenant] = []
        async with engine.begin() as connection:
            operator = Operator(connection, "bench")
            for org in orgs:
                tenant = await operator.add_tenant(org.org_number, org.name, org.kind.value)
                await operator.set_agreements(tenant, org.services)
                await operator.register_client(tenant, f"IdP {org.name}")
                made.append(_Tenant(org, tenant.id))
            _, made[0].token = await operator.issue_token(await operator.tenant(orgs[0].org_number))
        return made
    finally:
        await engine.dispose()


class _Builder:
    """Rows of one organisation: its users, a few groups, and on the first the big group."""

    def __init__(self, rules: Rules, big_group: int, seed: int) -> None:
        self.rules = rules
        self.big_group = big_group
        self.seed = seed

    def build(
        self, tenant: _Tenant, index: int
    ) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]], dict[str, Any]]:
        org = tenant.organisation
        rng = random.Random(self.seed * 1000 + index)
        users = [
            _row(tenant.tenant_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)), "User", d)
            for d in People(org, seed=self.seed * 1000 + index)
        ]
        agreements = Agreements(tenant.tenant_id, org.kind, frozenset(org.services))
        rows = list(users)
        links: list[tuple[Any, ...]] = []
        info: dict[str, Any] = {}
        for number in range(GROUPS_PER_TENANT + (1 if index == 0 else 0)):
            document = group_body(org, number)
            self.rules.prepare("Group", document, None, agreements)
            group_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if index == 0 and number == GROUPS_PER_TENANT:
                document["displayName"] = "Alla medarbetare"
                size = big_group_size(len(users), self.big_group)
                chosen = users[:size]
                info = {"big_group": group_id, "size": size, "rest": users[size:]}
            else:
                chosen = rng.sample(users, min(len(users), rng.randint(5, 200)))
            rows.append(_row(tenant.tenant_id, group_id, "Group", document))
            links.extend((tenant.tenant_id, group_id, user["id"], None) for user in chosen)
        return rows, links, info


def _records(rows: Iterable[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    encode = msgspec.json.encode
    for row in rows:
        yield tuple(encode(row[c]).decode() if c == "data" else row[c] for c in COLUMNS)


async def _copy_postgres(url: str, batches: Iterable[tuple[list[Any], list[Any]]]) -> None:
    """COPY with the secondary indexes dropped and rebuilt after, and foreign keys not checked
    row by row (the rows are consistent by construction): what makes a million rows quick."""
    connection = await asyncpg.connect(**_asyncpg_options(make_url(url)))
    try:
        # COPY is binary; jsonb's binary form is a version byte and the JSON text.
        await connection.set_type_codec(
            "jsonb",
            encoder=lambda v: b"\x01" + v.encode(),
            decoder=lambda v: v[1:].decode(),
            schema="pg_catalog",
            format="binary",
        )
        definitions = [
            r["indexdef"]
            for r in await connection.fetch(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "JOIN pg_class c ON c.relname = i.indexname "
                "WHERE i.tablename IN ('resources', 'members') "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)"
            )
        ]
        for definition in definitions:
            name = definition.split(" INDEX ", 1)[1].split(" ON ", 1)[0]
            await connection.execute(f"DROP INDEX {name}")
        await connection.execute("SET session_replication_role = replica")
        for rows, links in batches:
            await connection.copy_records_to_table(
                "resources", records=_records(rows), columns=COLUMNS
            )
            await connection.copy_records_to_table("members", records=links, columns=MEMBER_COLUMNS)
        await connection.execute("SET maintenance_work_mem = '512MB'")
        for definition in definitions:
            await connection.execute(definition)
        for statement in counts.RECOUNT:  # the triggers did not run
            await connection.execute(statement)
        # As a long-running server's database would be: statistics for the planner, and a
        # visibility map that lets counts and sorted pages read indexes alone (autovacuum
        # would get there in time). VACUUM runs outside a transaction: one at a time.
        for table in ("resources", "members"):
            await connection.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        await connection.close()


def _insert_sqlite(url: str, batches: Iterable[tuple[list[Any], list[Any]]]) -> None:
    sync_url = make_url(url).set(drivername="sqlite")
    engine = create_sync_engine(
        sync_url,
        json_serializer=lambda v: msgspec.json.encode(v).decode(),
    )
    try:
        with engine.begin() as connection:
            for rows, links in batches:
                connection.execute(resources.insert(), rows)
                connection.execute(
                    members.insert(),
                    [dict(zip(MEMBER_COLUMNS, link, strict=True)) for link in links],
                )
            connection.execute(text("ANALYZE"))
    finally:
        engine.dispose()


async def build(
    url: str, users: int, tenants: int, big_group: int, seed: int = 7, sample: int = 20_000
) -> Dataset:
    """Load ``users`` users into ``tenants`` organisations (the first is benchmarked)."""
    started = time.perf_counter()
    await recreate(url)
    orgs = organisations(tenants, users, seed)
    made = await _tenants(url, orgs)
    rules = Rules(load_configured(Settings()))
    builder = _Builder(rules, big_group, seed)
    info: dict[str, Any] = {}
    first_users: list[dict[str, Any]] = []

    def batches() -> Iterator[tuple[list[Any], list[Any]]]:
        pending: list[Any] = []
        pending_links: list[Any] = []
        for index, tenant in enumerate(made):
            rows, links, found = builder.build(tenant, index)
            if index == 0:
                info.update(found)
                first_users.extend(r for r in rows if r["resource_type"] == "User")
            pending.extend(rows)
            pending_links.extend(links)
            if len(pending) >= CHUNK:
                yield pending, pending_links
                pending, pending_links = [], []
        if pending:
            yield pending, pending_links

    if make_url(url).get_backend_name() == "sqlite":
        await asyncio.to_thread(_insert_sqlite, url, batches())
    else:
        await _copy_postgres(url, batches())
    loaded_at = datetime.now(UTC)
    rng = random.Random(seed)
    picked = rng.sample(first_users, min(sample, len(first_users)))
    rest = info["rest"][: max(sample, 1)]
    first = made[0]
    assert first.token is not None
    return Dataset(
        url=url,
        org_number=first.organisation.org_number,
        domain=first.organisation.domain,
        tenant_id=first.tenant_id,
        token=first.token,
        users=first.organisation.users,
        tenants=tenants,
        total_users=users,
        big_group=info["big_group"],
        big_group_members=info["size"],
        user_ids=[u["id"] for u in picked],
        user_names=[u["data"]["userName"] for u in picked],
        non_members=[u["id"] for u in rest],
        fragments=surname_fragments(rng, 200),
        load_seconds=time.perf_counter() - started,
        loaded_at=loaded_at.isoformat(),
    )


async def reset(dataset: Dataset) -> int:
    """Delete the resources the cases created (POST, Bulk), so that every server meets the
    dataset at its loaded size; their memberships go with them (ON DELETE CASCADE). The big
    group's members the ``member`` case added are taken out again (without it, a second run
    on the dataset would add members the group has). Then, on PostgreSQL, VACUUM what the
    cases wrote, as autovacuum does within its minute on a server's database (migration
    0016; the machine's own PostgreSQL runs without it)."""
    if not dataset.loaded_at:
        return 0
    engine = database.create_engine(dataset.url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(
                delete(resources).where(
                    resources.c.tenant_id == dataset.tenant_id,
                    resources.c.created > datetime.fromisoformat(dataset.loaded_at),
                )
            )
            for start in range(0, len(dataset.non_members), CHUNK):
                await connection.execute(
                    delete(members).where(
                        members.c.group_id == dataset.big_group,
                        members.c.member_id.in_(dataset.non_members[start : start + CHUNK]),
                    )
                )
        if engine.dialect.name == "postgresql":
            autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
            async with autocommit.connect() as connection:
                # The changes not folded yet too: every filtered count reads them for its
                # generation (``scim.storage.counts``), and each write left a dead one.
                for table in ("resources", "members", "resource_count_changes"):
                    await connection.execute(text(f"VACUUM (ANALYZE) {table}"))
        return int(result.rowcount or 0)
    finally:
        await engine.dispose()


async def verify(dataset: Dataset) -> None:
    """Rows written by the API equal the loader's rows for the same body, and loaded rows are
    found by the API's own search; AssertionError otherwise."""
    settings = Settings(database_url=dataset.url)
    engine = database.create_engine(dataset.url)
    domain = EServices.from_settings(settings)
    service = ResourceService(Registry(settings, domain), engine, settings)
    org = Organisation(dataset.org_number, "", Kind.kommun, dataset.domain, 0)
    async with engine.connect() as connection:
        services = await Operator(connection).agreements(dataset.tenant_id)
    tenant = Agreements(dataset.tenant_id, Kind.kommun.value, frozenset(services))
    caller = Caller(tenant, "http://localhost/scim/v2", "bench-verify")
    kind = service.registry.by_name["User"]
    try:
        people = People(org, seed=424242)
        for tag in ("verify1", "verify2"):
            body = people.body(tag=f"{tag}{uuid.uuid4().hex[:6]}")
            written = await service.create(caller, kind, dict(body), None)
            resource_id = written.location.rsplit("/", 1)[1]
            async with engine.connect() as connection:
                stored = (
                    await connection.execute(select(resources).where(resources.c.id == resource_id))
                ).one()
            expected = _row(dataset.tenant_id, resource_id, "User", body)
            for column in COLUMNS:
                if column in ("created", "last_modified"):
                    continue
                got = getattr(stored, column)
                assert got == expected[column], (
                    f"{column}: API {got!r} != loader {expected[column]!r}"
                )
            await service.delete(caller, kind, resource_id, None)
        name = dataset.user_names[0]
        request = service.parse_search([kind], {"filter": f'userName eq "{name}"'})
        found = await service.search(caller, [kind], request)
        assert found["totalResults"] == 1, found
        assert found["Resources"][0]["id"] == dataset.user_ids[0]
    finally:
        await engine.dispose()
