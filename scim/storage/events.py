"""The tables of security events: receivers, the outbox and each receiver's deliveries.

An event is written once (``security_events``) and, in the same statement's transaction,
given a delivery row for every receiver of its audience and organisation. Delivery rows are
states, not a position in a log: an event committed late is never skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scim.storage.database import json_dumps
from scim.storage.tables import event_deliveries, receivers, security_events

# Every event of a transaction, for every receiver that hears it.
_FAN_OUT = insert(event_deliveries).from_select(
    ["receiver_id", "seq"],
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
    .order_by(security_events.c.seq),
)


async def write(connection: AsyncConnection, txn: str, events: Sequence[dict[str, Any]]) -> None:
    """Store a transaction's events (``scim.events.changes.Outbox``) and their deliveries."""
    if not events:
        return
    if connection.dialect.name == "postgresql" and len(events) > 1:
        await _copy(connection, events)
    else:
        await connection.execute(insert(security_events), list(events))
    await connection.execute(_FAN_OUT, {"txn": txn})


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


def _now_param(now: datetime) -> dict[str, datetime]:
    return {"now": now}
