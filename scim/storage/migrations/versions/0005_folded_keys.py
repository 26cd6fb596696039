"""Search keys compare as people read them: NFKC and case folding, not lower().

Every key is computed anew from the stored document. Where a new key is already held by
another resource of the organisation (two userNames that only now compare equal), the
resource that would take it second keeps its old key, and the migration names it: it
still answers to its name, and its next write is refused as a duplicate until it is
renamed.

Revision ID: 0005
Revises: 0004
"""

import logging
import unicodedata
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_resources = sa.table(
    "resources",
    sa.column("tenant_id", sa.Integer),
    sa.column("id", sa.String),
    sa.column("resource_type", sa.String),
    sa.column("created", sa.DateTime(timezone=True)),
    sa.column("user_name_key", sa.String),
    sa.column("display_name_key", sa.String),
    sa.column("family_name_key", sa.String),
    sa.column("given_name_key", sa.String),
    sa.column("hsa_id_key", sa.String),
    sa.column("data", sa.JSON().with_variant(JSONB(), "postgresql")),
)
_UNIQUE = ("user_name_key", "hsa_id_key")
_LENGTHS = {"user_name_key": 255, "hsa_id_key": 31}
_CHUNK = 2000


Fold = Callable[[str], str]


def _fold(text: str) -> str:
    # This migration's own copy of scim.protocol.folding.fold, as it was when written.
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _lower(text: str) -> str:
    return text.lower()


def upgrade() -> None:
    _rekey(_fold)


def downgrade() -> None:
    _rekey(_lower)


def _keys(row: Any, fold: Fold) -> dict[str, Any]:
    data: dict[str, Any] = row.data or {}
    name: dict[str, Any] = data["name"] if isinstance(data.get("name"), dict) else {}

    def key(value: Any) -> str | None:
        return fold(value) if isinstance(value, str) else None

    return {
        "user_name_key": key(data.get("userName")),
        "display_name_key": key(data.get("displayName")),
        "family_name_key": key(name.get("familyName")),
        "given_name_key": key(name.get("givenName")),
        # The person key's attribute is the domain's; its key folds as it is.
        "hsa_id_key": key(row.hsa_id_key),
    }


def _rekey(fold: Fold) -> None:
    """Every resource's keys as ``fold`` makes them, oldest resource first."""
    connection = op.get_bind()
    r = _resources.c
    columns = [r.tenant_id, r.id, r.resource_type, r.created, r.data]
    columns += [r[key] for key in ("user_name_key", "display_name_key")]
    columns += [r.family_name_key, r.given_name_key, r.hsa_id_key]
    last: tuple[Any, str] | None = None
    while True:
        statement = sa.select(*columns).order_by(r.created, r.id).limit(_CHUNK)
        if last is not None:
            statement = statement.where(sa.tuple_(r.created, r.id) > sa.tuple_(*last))
        rows = connection.execute(statement).all()
        if not rows:
            return
        for row in rows:
            _refold(connection, row, fold)
        last = (rows[-1].created, rows[-1].id)


def _refold(connection: Any, row: Any, fold: Fold) -> None:
    r = _resources.c
    changes = {
        column: key for column, key in _keys(row, fold).items() if key != getattr(row, column)
    }
    for column in _UNIQUE:
        key = changes.get(column)
        if key is None:
            continue
        too_long = len(key) > _LENGTHS[column]
        holder = connection.execute(
            sa.select(r.id).where(r.tenant_id == row.tenant_id, r[column] == key, r.id != row.id)
        ).first()
        if too_long or holder is not None:
            del changes[column]
            reason = "is too long folded" if too_long else f"now equals that of {holder.id}"
            log.warning(
                "organisation %s: %s %s keeps its old %s: its value %s",
                row.tenant_id,
                row.resource_type,
                row.id,
                column,
                reason,
            )
    for column in ("display_name_key", "family_name_key", "given_name_key"):
        key = changes.get(column)
        if key is not None and len(key) > 255:
            del changes[column]
    if changes:
        connection.execute(sa.update(_resources).where(r.id == row.id).values(**changes))
