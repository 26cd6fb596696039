"""Names sort in Swedish order: a sort key column for displayName, name.familyName and
name.givenName, computed for every stored resource and indexed as the listing sorts.

Revision ID: 0008
Revises: 0007
"""

import unicodedata
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_NAMES = ("display_name", "family_name", "given_name")
_CHUNK = 2000
_SWEDISH_LETTERS = str.maketrans({"å": "{", "ä": "|", "æ": "|", "ö": "}", "ø": "}", "ü": "y"})

_resources = sa.table(
    "resources",
    sa.column("id", sa.String),
    sa.column("data", sa.JSON().with_variant(JSONB(), "postgresql")),
    *(sa.column(f"{name}_sort", sa.String) for name in _NAMES),
)


def _sort_key(value: Any) -> str | None:
    # This migration's own copy of scim.protocol.folding.sort_key, as it was when written.
    if not isinstance(value, str):
        return None
    folded = (
        value.lower()
        if value.isascii()
        else unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    )
    if folded.isascii():
        return folded
    decomposed = unicodedata.normalize("NFD", folded.translate(_SWEDISH_LETTERS))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bare)[:255]


def upgrade() -> None:
    sort_key_type = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")
    with op.batch_alter_table("resources") as resources:
        for name in _NAMES:
            resources.add_column(sa.Column(f"{name}_sort", sort_key_type))
    connection = op.get_bind()
    r = _resources.c
    last = ""
    while True:
        statement = sa.select(r.id, r.data).where(r.id > last).order_by(r.id).limit(_CHUNK)
        rows = connection.execute(statement).all()
        if not rows:
            break
        for row in rows:
            data: dict[str, Any] = row.data or {}
            names: dict[str, Any] = data["name"] if isinstance(data.get("name"), dict) else {}
            values = {
                "display_name_sort": _sort_key(data.get("displayName")),
                "family_name_sort": _sort_key(names.get("familyName")),
                "given_name_sort": _sort_key(names.get("givenName")),
            }
            if any(value is not None for value in values.values()):
                connection.execute(sa.update(_resources).where(r.id == row.id).values(**values))
        last = rows[-1].id
    for column in _NAMES:
        op.create_index(
            f"ix_resources_{column}_sort", "resources", ["tenant_id", f"{column}_sort", "id"]
        )


def downgrade() -> None:
    for name in _NAMES:
        op.drop_index(f"ix_resources_{name}_sort", "resources")
    with op.batch_alter_table("resources") as resources:
        for name in _NAMES:
            resources.drop_column(f"{name}_sort")
