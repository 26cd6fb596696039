"""Who may call, as the operator registered them: administrators, system clients and their
tokens, browser sessions, and users by the person key their certificates carry. Each row
read for authentication comes with its organisation's ``org_kind`` and ``org_agreements``
(comma-separated), so that one query tells both who calls and for which organisation."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scim.protocol.folding import fold
from scim.storage.tables import (
    administrators,
    agreements,
    resources,
    sessions,
    system_clients,
    tenants,
    tokens,
)


def _organisation(tenant_id: ColumnElement[Any], postgres: bool) -> tuple[Any, Any]:
    """The kind and agreements of a row's organisation, read with the row itself."""
    concatenate = func.string_agg if postgres else func.group_concat
    listed = (
        select(concatenate(agreements.c.service_id, ","))
        .where(agreements.c.tenant_id == tenant_id)
        .correlate_except(agreements)
        .scalar_subquery()
    )
    kind = (
        select(tenants.c.kind)
        .where(tenants.c.id == tenant_id)
        .correlate_except(tenants)
        .scalar_subquery()
    )
    return kind.label("org_kind"), listed.label("org_agreements")


def _postgres(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


# -- system clients and tokens ------------------------------------------------------------


@cache
def _token_statement(postgres: bool) -> Select[Any]:
    # Built once: on every request, building it would cost more than running it.
    return (
        select(
            system_clients.c.id,
            system_clients.c.tenant_id,
            system_clients.c.name,
            tokens.c.expires,
            tokens.c.revoked,
            *_organisation(system_clients.c.tenant_id, postgres),
        )
        .select_from(tokens.join(system_clients, system_clients.c.id == tokens.c.client_id))
        .where(tokens.c.token_hash == bindparam("hash"))
    )


async def client_by_token(connection: AsyncConnection, token_hash: str) -> Row[Any] | None:
    """The system client holding the token with this hash, and the token's dates."""
    result = await connection.execute(_token_statement(_postgres(connection)), {"hash": token_hash})
    row: Row[Any] | None = result.first()
    return row


async def clients_by_certificate(
    connection: AsyncConnection, fingerprint: str, person: str | None
) -> list[Row[Any]]:
    """The system clients pinned to this certificate fingerprint or registered by the id in
    its subject, with their organisation's ``organisation`` (name)."""
    matches = [system_clients.c.fingerprint == fingerprint]
    if person:
        matches.append(system_clients.c.hsa_id == person)
    statement = (
        select(
            system_clients,
            tenants.c.name.label("organisation"),
            *_organisation(system_clients.c.tenant_id, _postgres(connection)),
        )
        .join(tenants, tenants.c.id == system_clients.c.tenant_id)
        .where(and_(or_(*matches)))
    )
    return list((await connection.execute(statement)).all())


# -- administrators and users -------------------------------------------------------------


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
    """The administrator with this id (in this organisation, if given), or None; with the
    organisation's kind and agreements for authentication."""
    statement = _administrators().add_columns(
        *_organisation(administrators.c.tenant_id, _postgres(connection))
    )
    statement = statement.where(administrators.c.hsa_id == hsa_id)
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


async def users_by_person(connection: AsyncConnection, person: str) -> list[Row[Any]]:
    """The Users whose person key is ``person``, in any organisation, with its name."""
    statement: Select[Any] = (
        select(
            resources.c.id,
            resources.c.tenant_id,
            resources.c.display,
            tenants.c.name.label("organisation"),
            *_organisation(resources.c.tenant_id, _postgres(connection)),
        )
        .join(tenants, tenants.c.id == resources.c.tenant_id)
        .where(resources.c.resource_type == "User", resources.c.hsa_id_key == fold(person))
    )
    return list((await connection.execute(statement)).all())


# -- browser sessions ---------------------------------------------------------------------


async def insert_session(
    connection: AsyncConnection,
    id_hash: str,
    administrator_id: str,
    csrf_token: str,
    created: datetime,
    expires: datetime,
) -> None:
    """A new session; the ended sessions of anyone are cleared out."""
    await connection.execute(delete(sessions).where(sessions.c.expires <= created))
    await connection.execute(
        insert(sessions).values(
            id_hash=id_hash,
            administrator_id=administrator_id,
            csrf_token=csrf_token,
            created=created,
            expires=expires,
        )
    )


async def session(connection: AsyncConnection, id_hash: str) -> Row[Any] | None:
    """The session with this hash, whether or not it has ended: its columns, its
    administrator's ``tenant_id``, ``hsa_id``, ``given_name`` and ``family_name``, the
    organisation's ``organisation`` (name) and ``kind``, ``org_kind`` and ``org_agreements``."""
    statement = (
        select(
            sessions,
            administrators.c.tenant_id,
            administrators.c.hsa_id,
            administrators.c.given_name,
            administrators.c.family_name,
            tenants.c.name.label("organisation"),
            tenants.c.kind,
            *_organisation(administrators.c.tenant_id, _postgres(connection)),
        )
        .select_from(
            sessions.join(administrators, administrators.c.id == sessions.c.administrator_id).join(
                tenants, tenants.c.id == administrators.c.tenant_id
            )
        )
        .where(sessions.c.id_hash == id_hash)
    )
    row: Row[Any] | None = (await connection.execute(statement)).first()
    return row


async def move_session_deadline(
    connection: AsyncConnection, id_hash: str, expires: datetime
) -> None:
    await connection.execute(
        update(sessions).where(sessions.c.id_hash == id_hash).values(expires=expires)
    )


async def delete_session(connection: AsyncConnection, id_hash: str) -> bool:
    result = await connection.execute(delete(sessions).where(sessions.c.id_hash == id_hash))
    return bool(result.rowcount)


# -- what the operator registers ----------------------------------------------------------


async def insert_tenant(
    connection: AsyncConnection, org_number: str, name: str, kind: str, created: datetime
) -> int:
    result = await connection.execute(
        insert(tenants)
        .values(org_number=org_number, name=name, kind=kind, created=created)
        .returning(tenants.c.id)
    )
    tenant_id: int = result.scalar_one()
    return tenant_id


async def tenant_by_number(connection: AsyncConnection, org_number: str) -> Row[Any] | None:
    statement = select(tenants).where(tenants.c.org_number == org_number)
    row: Row[Any] | None = (await connection.execute(statement)).first()
    return row


async def tenants_listed(connection: AsyncConnection) -> list[Row[Any]]:
    """Every organisation, by number, with how many ``admins`` it has."""
    counts = (
        select(administrators.c.tenant_id, func.count().label("admins"))
        .group_by(administrators.c.tenant_id)
        .subquery()
    )
    statement = (
        select(tenants, func.coalesce(counts.c.admins, 0).label("admins"))
        .select_from(tenants.outerjoin(counts, counts.c.tenant_id == tenants.c.id))
        .order_by(tenants.c.org_number)
    )
    return list((await connection.execute(statement)).all())


async def agreements_of(connection: AsyncConnection, tenant_id: int) -> list[str]:
    statement = (
        select(agreements.c.service_id)
        .where(agreements.c.tenant_id == tenant_id)
        .order_by(agreements.c.service_id)
    )
    return list((await connection.execute(statement)).scalars())


async def replace_agreements(
    connection: AsyncConnection, tenant_id: int, services: list[str]
) -> None:
    await connection.execute(delete(agreements).where(agreements.c.tenant_id == tenant_id))
    if services:
        await connection.execute(
            insert(agreements), [{"tenant_id": tenant_id, "service_id": s} for s in services]
        )


async def hold_users(connection: AsyncConnection) -> None:
    """Keep users from being written until this transaction ends, and wait for those being
    written now: the administrator's side of the rule that administrator and user are
    exclusive roles.

    A write of a user checks for an administrator of that name *after* writing the user
    (``ResourceService``), while its write holds the table's ROW EXCLUSIVE lock; this SHARE
    lock conflicts with that one. So whichever transaction comes second sees the other's
    row: an administrator added first is found by the user's check, and a user written first
    is found by the administrator's (``user_of``). SQLite needs none: its transactions begin
    IMMEDIATE and so run one at a time. Administrators are added rarely, by the operator, and
    the lock is held for two short statements.
    """
    if connection.dialect.name == "postgresql":
        await connection.execute(text("LOCK TABLE resources IN SHARE MODE"))


async def user_of(connection: AsyncConnection, tenant_id: int, person: str) -> str | None:
    """The id of the organisation's User whose person key is ``person``, if any."""
    statement = select(resources.c.id).where(
        resources.c.tenant_id == tenant_id,
        resources.c.resource_type == "User",
        resources.c.hsa_id_key == fold(person),
    )
    found: str | None = (await connection.execute(statement)).scalar()
    return found


async def _insert_new(connection: AsyncConnection, table: Table, values: dict[str, Any]) -> bool:
    """False if a unique key of the row is taken (the transaction is then spoilt: the caller
    gives up)."""
    try:
        await connection.execute(insert(table).values(**values))
    except IntegrityError:
        return False
    return True


async def insert_administrator(connection: AsyncConnection, **values: Any) -> bool:
    """False if the id is already an administrator's."""
    return await _insert_new(connection, administrators, values)


async def administrators_count(connection: AsyncConnection, tenant_id: int) -> int:
    statement = select(func.count()).where(administrators.c.tenant_id == tenant_id)
    return int((await connection.execute(statement)).scalar_one())


async def delete_administrator(connection: AsyncConnection, tenant_id: int, hsa_id: str) -> bool:
    result = await connection.execute(
        delete(administrators).where(
            administrators.c.tenant_id == tenant_id, administrators.c.hsa_id == hsa_id
        )
    )
    return bool(result.rowcount)


async def administrators_of(connection: AsyncConnection, tenant_id: int) -> list[Row[Any]]:
    statement = (
        select(administrators)
        .where(administrators.c.tenant_id == tenant_id)
        .order_by(administrators.c.family_name, administrators.c.given_name)
    )
    return list((await connection.execute(statement)).all())


async def insert_client(connection: AsyncConnection, **values: Any) -> bool:
    """False if its HSA-id or fingerprint is already registered."""
    return await _insert_new(connection, system_clients, values)


async def clients_of(connection: AsyncConnection, tenant_id: int) -> list[Row[Any]]:
    statement = (
        select(system_clients)
        .where(system_clients.c.tenant_id == tenant_id)
        .order_by(system_clients.c.created)
    )
    return list((await connection.execute(statement)).all())


async def client_owner(connection: AsyncConnection, client_id: str) -> int | None:
    statement = select(system_clients.c.tenant_id).where(system_clients.c.id == client_id)
    owner: int | None = (await connection.execute(statement)).scalar()
    return owner


async def insert_token(connection: AsyncConnection, **values: Any) -> None:
    await connection.execute(insert(tokens).values(**values))


async def revoke_token(
    connection: AsyncConnection, tenant_id: int, token_id: str, now: datetime
) -> bool:
    """False unless the token is the organisation's and not revoked yet."""
    owned = select(system_clients.c.id).where(system_clients.c.tenant_id == tenant_id)
    result = await connection.execute(
        update(tokens)
        .where(tokens.c.id == token_id, tokens.c.client_id.in_(owned), tokens.c.revoked.is_(None))
        .values(revoked=now)
    )
    return bool(result.rowcount)


async def tokens_of(connection: AsyncConnection, tenant_id: int) -> list[Row[Any]]:
    statement = (
        select(tokens, system_clients.c.name)
        .select_from(tokens.join(system_clients, system_clients.c.id == tokens.c.client_id))
        .where(system_clients.c.tenant_id == tenant_id)
        .order_by(tokens.c.created)
    )
    return list((await connection.execute(statement)).all())
