"""The tables of security events: receivers, the outbox and each receiver's deliveries.

An event is written once (``security_events``) and, in the same statement's transaction,
given a delivery row for every receiver of its audience and organisation. Delivery rows are
states, not a position in a log: an event committed late is never skipped.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from scim.hooks import Tenant
from scim.storage import identities, listening
from scim.storage.database import json_dumps
from scim.storage.tables import (
    event_deliveries,
    event_state,
    receivers,
    security_events,
    tenants,
)

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"

# Every event of a transaction, for every receiver that hears it; those of the
# transaction's earlier writes (a Bulk writes in rounds) have theirs already.
_HEARD_BY = (
    select(receivers.c.id, security_events.c.seq)
    .join(
        receivers,
        and_(
            receivers.c.audience == security_events.c.audience,
            or_(
                receivers.c.tenant_id.is_(None),
                receivers.c.tenant_id == security_events.c.tenant_id,
            ),
        ),
    )
    .where(security_events.c.txn == bindparam("txn"))
)
_FAN_OUT = {
    name: dialect_insert(event_deliveries)
    .from_select(["receiver_id", "seq"], _HEARD_BY)
    .on_conflict_do_nothing()
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


# Who hears which audiences: of every organisation (tenant_id NULL) or of one.
_LISTENERS = (
    select(receivers.c.audience, receivers.c.tenant_id)
    .where(receivers.c.audience.in_(bindparam("audiences", expanding=True)))
    .distinct()
)


def hearing(tenant_id: Any) -> ColumnElement[bool]:
    """Whether a receiver hears the events of organisation ``tenant_id``: it hears those of
    every organisation (tenant_id NULL) or of that one."""
    return or_(receivers.c.tenant_id.is_(None), receivers.c.tenant_id == tenant_id)


# The audiences some receiver hears in one organisation's events.
_HEARD_IN = select(receivers.c.audience).where(hearing(bindparam("tenant_id"))).distinct()


async def heard_in(connection: AsyncConnection, tenant_id: int) -> frozenset[str]:
    """The audiences some receiver hears in ``tenant_id``'s events, as the transaction of
    ``connection`` sees the receivers."""
    rows = await connection.execute(_HEARD_IN, {"tenant_id": tenant_id})
    return frozenset(rows.scalars())


async def write(
    connection: AsyncConnection,
    txn: str,
    events: Sequence[dict[str, Any]],
    heard: Collection[str] | None = None,
) -> int:
    """Store a transaction's events (``scim.events.changes.Outbox``) that some receiver hears,
    and their deliveries; how many. ``heard``: the audiences heard, when the events are of
    one organisation and ``heard_in`` has been read for it in this transaction."""
    if not events:
        return 0
    if heard is not None:
        events = [event for event in events if event["audience"] in heard]
    else:
        audiences = sorted({event["audience"] for event in events})
        listeners = {
            (row.audience, row.tenant_id)
            for row in await connection.execute(_LISTENERS, {"audiences": audiences})
        }
        events = [
            event
            for event in events
            if (event["audience"], None) in listeners
            or (event["audience"], event["tenant_id"]) in listeners
        ]
    if not events:
        return 0
    if connection.dialect.name == "postgresql" and len(events) > 1:
        await _copy(connection, events)
    else:
        await connection.execute(insert(security_events), list(events))
    await connection.execute(_FAN_OUT[connection.dialect.name], {"txn": txn})
    await notify(connection)
    return len(events)


# PostgreSQL's channel on which every worker hears that events are due (at commit).
CHANNEL = "scim_events"


async def notify(connection: AsyncConnection) -> None:
    """Tell every worker, once this transaction commits, that events are due
    (``scim.events.delivery``); SQLite has one process, which its commits wake."""
    await listening.at_commit(connection, CHANNEL)


async def _copy(connection: AsyncConnection, events: Sequence[dict[str, Any]]) -> None:
    """Many events through COPY (as ``Repository.insert_rows``): a Bulk makes thousands."""
    columns = list(events[0])
    records = [
        tuple(json_dumps(row[c]) if c == "attributes" else row[c] for c in columns)
        for row in events
    ]
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None and driver.is_in_transaction(), "COPY outside the transaction"
    await driver.copy_records_to_table("security_events", records=records, columns=columns)


# -- receivers ------------------------------------------------------------------------


async def add_receiver(connection: AsyncConnection, **values: Any) -> None:
    await connection.execute(insert(receivers).values(**values))


async def any_receiver(connection: AsyncConnection) -> bool:
    return (await connection.execute(select(receivers.c.id).limit(1))).first() is not None


async def remove_receiver(connection: AsyncConnection, receiver_id: str) -> bool:
    """Remove a receiver and what is still to be delivered to it."""
    await connection.execute(
        delete(event_deliveries).where(event_deliveries.c.receiver_id == receiver_id)
    )
    result = await connection.execute(delete(receivers).where(receivers.c.id == receiver_id))
    return bool(result.rowcount)


async def receiver_by_token(connection: AsyncConnection, token_hash: str) -> Row[Any] | None:
    statement = select(receivers).where(
        receivers.c.token_hash == token_hash, receivers.c.push_url.is_(None)
    )
    return (await connection.execute(statement)).first()


def _count(state: str) -> Any:
    return (
        select(func.count())
        .select_from(event_deliveries)
        .where(event_deliveries.c.receiver_id == receivers.c.id, event_deliveries.c.state == state)
        .scalar_subquery()
    )


async def receiver_states(connection: AsyncConnection) -> list[Row[Any]]:
    """Every receiver with its organisation (if one), the number of its deliveries pending
    and dead, and when the oldest pending event happened (its lag)."""
    oldest = (
        select(func.min(security_events.c.at))
        .select_from(event_deliveries.join(security_events))
        .where(
            event_deliveries.c.receiver_id == receivers.c.id, event_deliveries.c.state == PENDING
        )
        .scalar_subquery()
    )
    statement = (
        select(
            receivers,
            tenants.c.org_number,
            _count(PENDING).label("pending"),
            _count(DEAD).label("dead"),
            _count(DELIVERED).label("delivered"),
            oldest.label("oldest_pending"),
        )
        .outerjoin(tenants, tenants.c.id == receivers.c.tenant_id)
        .order_by(receivers.c.created, receivers.c.id)
    )
    return list((await connection.execute(statement)).all())


async def replay(connection: AsyncConnection, receiver_id: str) -> int | None:
    """The receiver's dead deliveries made pending again: delivered anew, in order; how
    many (None: no such receiver)."""
    known = await connection.execute(
        update(receivers)
        .where(receivers.c.id == receiver_id)
        .values(failures=0, retry_at=None, last_error=None)
    )
    if not known.rowcount:
        return None
    result = await connection.execute(
        update(event_deliveries)
        .where(event_deliveries.c.receiver_id == receiver_id, event_deliveries.c.state == DEAD)
        .values(state=PENDING, attempts=0, sent_at=None, error=None)
    )
    await notify(connection)
    return int(result.rowcount or 0)


# -- delivery -------------------------------------------------------------------------


def _has_pending() -> Any:
    return exists().where(
        event_deliveries.c.receiver_id == receivers.c.id, event_deliveries.c.state == PENDING
    )


def _free(owner: str, now: datetime) -> ColumnElement[bool]:
    """Leased by no worker, or by this one: a lease it could not give back (the database was
    away) is taken up again at once, not after it runs out."""
    return or_(
        receivers.c.lease_until.is_(None),
        receivers.c.lease_until < now,
        receivers.c.lease_owner == owner,
    )


def _due(owner: str, now: datetime) -> Select[Any]:
    """The push receiver with deliveries due that ``owner`` may lease, first to try first."""
    return (
        select(receivers.c.id)
        .where(
            receivers.c.push_url.is_not(None),
            _free(owner, now),
            or_(receivers.c.retry_at.is_(None), receivers.c.retry_at <= now),
            _has_pending(),
        )
        .order_by(receivers.c.retry_at.nulls_first(), receivers.c.id)
        .limit(1)
    )


async def any_due(connection: AsyncConnection, owner: str, now: datetime) -> bool:
    """Whether ``lease`` would find a receiver: asked first, as a read, so that an idle
    worker does not begin a write (SQLite's lock) every time it looks."""
    return (await connection.execute(_due(owner, now))).first() is not None


async def lease(
    connection: AsyncConnection, owner: str, now: datetime, until: datetime
) -> Row[Any] | None:
    """A push receiver with deliveries due that no worker holds, leased to ``owner``: one
    worker delivers to a receiver at a time, in order. PostgreSQL's SKIP LOCKED lets workers
    on every host look at once without waiting for each other."""
    due = _due(owner, now).with_for_update(skip_locked=True).scalar_subquery()
    statement = (
        update(receivers)
        .where(receivers.c.id == due, _free(owner, now))
        .values(lease_owner=owner, lease_until=until)
        .returning(receivers)
    )
    leased: Row[Any] | None = (await connection.execute(statement)).first()
    return leased


async def renew(connection: AsyncConnection, receiver_id: str, owner: str, until: datetime) -> bool:
    result = await connection.execute(
        update(receivers)
        .where(receivers.c.id == receiver_id, receivers.c.lease_owner == owner)
        .values(lease_until=until)
    )
    return bool(result.rowcount)


async def release(
    connection: AsyncConnection,
    receiver_id: str,
    owner: str,
    *,
    failures: int = 0,
    retry_at: datetime | None = None,
    error: str | None = None,
) -> None:
    """Give the lease back, with the receiver's state after this round of pushes."""
    values: dict[str, Any] = {"lease_owner": None, "lease_until": None, "failures": failures}
    values["retry_at"] = retry_at
    if error is not None or failures == 0:
        values["last_error"] = error
    await connection.execute(
        update(receivers)
        .where(receivers.c.id == receiver_id, receivers.c.lease_owner == owner)
        .values(**values)
    )


async def hand_back(connection: AsyncConnection, owner: str) -> None:
    """Give back every lease ``owner`` still holds, as it stops: its own release may have been
    cut short by the stop, and its receivers would wait until the lease ran out."""
    await connection.execute(
        update(receivers)
        .where(receivers.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


async def due(
    connection: AsyncConnection,
    receiver_id: str,
    limit: int,
    *,
    sent_before: datetime | None = None,
) -> list[Row[Any]]:
    """A receiver's pending deliveries in event order, with the event and its organisation;
    with ``sent_before``, only those not handed out since then (poll re-delivery)."""
    conditions = [
        event_deliveries.c.receiver_id == receiver_id,
        event_deliveries.c.state == PENDING,
    ]
    if sent_before is not None:
        conditions.append(
            or_(event_deliveries.c.sent_at.is_(None), event_deliveries.c.sent_at < sent_before)
        )
    statement = (
        select(security_events, event_deliveries.c.attempts, tenants.c.org_number)
        .select_from(
            event_deliveries.join(security_events).outerjoin(
                tenants, tenants.c.id == security_events.c.tenant_id
            )
        )
        .where(*conditions)
        .order_by(event_deliveries.c.seq)
        .limit(limit)
    )
    return list((await connection.execute(statement)).all())


async def pending_count(connection: AsyncConnection, receiver_id: str) -> int:
    statement = select(func.count()).where(
        event_deliveries.c.receiver_id == receiver_id, event_deliveries.c.state == PENDING
    )
    return int((await connection.execute(statement)).scalar_one())


async def settle(
    connection: AsyncConnection,
    receiver_id: str,
    seqs: Sequence[int],
    state: str,
    now: datetime,
    error: str | None = None,
) -> int:
    """Pending deliveries of the receiver made ``state`` (delivered, or dead with ``error``)."""
    settled = 0
    for start in range(0, len(seqs), 5000):
        result = await connection.execute(
            update(event_deliveries)
            .where(
                event_deliveries.c.receiver_id == receiver_id,
                event_deliveries.c.seq.in_(seqs[start : start + 5000]),
                event_deliveries.c.state == PENDING,
            )
            .values(state=state, delivered_at=now, error=error and error[:500])
        )
        settled += int(result.rowcount or 0)
    return settled


async def attempted(
    connection: AsyncConnection, receiver_id: str, seqs: Sequence[int], now: datetime
) -> None:
    """Deliveries sent (pushed and failed, or handed to a poll): one attempt more."""
    if not seqs:
        return
    await connection.execute(
        update(event_deliveries)
        .where(event_deliveries.c.receiver_id == receiver_id, event_deliveries.c.seq.in_(seqs))
        .values(attempts=event_deliveries.c.attempts + 1, sent_at=now)
    )


async def expire(connection: AsyncConnection, receiver_id: str, before: datetime) -> int:
    """Pending deliveries of events older than ``before`` given up on (dead)."""
    old = select(security_events.c.seq).where(security_events.c.at < before).scalar_subquery()
    result = await connection.execute(
        update(event_deliveries)
        .where(
            event_deliveries.c.receiver_id == receiver_id,
            event_deliveries.c.state == PENDING,
            event_deliveries.c.seq.in_(old),
        )
        .values(state=DEAD, error="not delivered in time: given up")
    )
    return int(result.rowcount or 0)


async def prune(connection: AsyncConnection, before: datetime) -> None:
    """Delivered deliveries, and events no delivery waits for, older than ``before``."""
    old = select(security_events.c.seq).where(security_events.c.at < before)
    await connection.execute(
        delete(event_deliveries).where(
            event_deliveries.c.state == DELIVERED, event_deliveries.c.seq.in_(old.scalar_subquery())
        )
    )
    waiting = exists().where(event_deliveries.c.seq == security_events.c.seq)
    await connection.execute(delete(security_events).where(security_events.c.at < before, ~waiting))


async def pending_total(connection: AsyncConnection) -> int:
    statement = select(func.count()).where(event_deliveries.c.state == PENDING)
    return int((await connection.execute(statement)).scalar_one())


# -- what was last told ------------------------------------------------------------------


async def locked_state(connection: AsyncConnection, name: str) -> str | None:
    """The stored value of ``name``, its row locked until the transaction ends (SQLite's
    BEGIN IMMEDIATE has locked the database already)."""
    statement = select(event_state.c.value).where(event_state.c.name == name)
    if connection.dialect.name == "postgresql":
        # The row may not be there yet: a lock on the table's name serialises its first write.
        await connection.execute(
            select(func.pg_advisory_xact_lock(func.hashtext(f"scim.event_state.{name}")))
        )
    value: str | None = (await connection.execute(statement)).scalar()
    return value


async def store_state(connection: AsyncConnection, name: str, value: str, new: bool) -> None:
    if new:
        await connection.execute(insert(event_state).values(name=name, value=value))
    else:
        await connection.execute(
            update(event_state).where(event_state.c.name == name).values(value=value)
        )


async def tenant(connection: AsyncConnection, tenant_id: int) -> Tenant | None:
    """An organisation as the domain sees it: its kind and agreements."""
    kind = (
        await connection.execute(select(tenants.c.kind).where(tenants.c.id == tenant_id))
    ).scalar()
    if kind is None:
        return None
    return Tenant(tenant_id, kind, frozenset(await identities.agreements_of(connection, tenant_id)))
