"""The e-service extension moves to URNs of the form Microsoft Entra ID maps custom
attributes to (``urn:ietf:params:scim:schemas:extension:<name>:2.0:User:<attribute>``):
every stored document that holds the old URNs, as a key or in ``schemas``, is rewritten.

Revision ID: 0006
Revises: 0005
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OLD = "urn:behorigheter:scim:schemas:extension:eservices:1.0:"
NEW = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:"

_resources = sa.table(
    "resources",
    sa.column("id", sa.String),
    sa.column("data", sa.JSON().with_variant(JSONB(), "postgresql")),
)
_CHUNK = 2000


def upgrade() -> None:
    _rename(OLD, NEW)


def downgrade() -> None:
    _rename(NEW, OLD)


def _rename(old: str, new: str) -> None:
    connection = op.get_bind()
    r = _resources.c
    holding = sa.cast(r.data, sa.Text).like(f"%{old}%")
    last = ""
    while True:
        statement = sa.select(r.id, r.data).where(holding, r.id > last).order_by(r.id)
        rows = connection.execute(statement.limit(_CHUNK)).all()
        if not rows:
            return
        for row in rows:
            document = _renamed(row.data, old, new)
            connection.execute(sa.update(_resources).where(r.id == row.id).values(data=document))
        last = rows[-1].id


def _renamed(document: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The document with the extension's keys and ``schemas`` entries under ``new``."""
    renamed = {
        (new + key[len(old) :] if key.startswith(old) else key): value
        for key, value in document.items()
    }
    schemas = renamed.get("schemas")
    if isinstance(schemas, list):
        renamed["schemas"] = [
            new + urn[len(old) :] if isinstance(urn, str) and urn.startswith(old) else urn
            for urn in schemas
        ]
    return renamed
