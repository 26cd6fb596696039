"""The name keys' indexes as each database reads them best.

PostgreSQL: ``name.familyName``'s index loses its trailing ``id``, like the other name keys'.
With it, every entry was unique, and counting ``co "sson"`` (75,262 of 166,666 users) read
88 MB of them; without it, equal surnames share one entry (B-tree deduplication: 11 MB, for
485 surnames), and the count reads an eighth as much: 40-60 ms became 10-14 ms.
PostgreSQL finds a page of matches by the trigram index or in id order, never by this one.

SQLite: ``displayName``'s and ``name.givenName``'s indexes gain the ``id`` that
``name.familyName``'s has, so that the ids of a page of pattern matches are read from the
key's index alone (``scim.storage.repository``) for each of them: without it, SQLite walked
the organisation for a rare fragment. (SQLite's rowid is not ``id``, and it deduplicates
nothing.)

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_LEADING = ["tenant_id", "resource_type"]


def _recreate(name: str, columns: list[str]) -> None:
    op.drop_index(name, "resources")
    op.create_index(name, "resources", [*_LEADING, *columns])


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _recreate("ix_resources_family_name", ["family_name_key"])
    else:
        _recreate("ix_resources_display_name", ["display_name_key", "id"])
        _recreate("ix_resources_given_name", ["given_name_key", "id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _recreate("ix_resources_family_name", ["family_name_key", "id"])
    else:
        _recreate("ix_resources_display_name", ["display_name_key"])
        _recreate("ix_resources_given_name", ["given_name_key"])
