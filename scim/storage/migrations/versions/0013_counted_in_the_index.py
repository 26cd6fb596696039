"""A filtered list's count reads an index alone: the name keys' indexes hold the resource type.

Counting ``name.familyName co "sson"`` (tens of thousands of matches) found the matches by the
trigram index, which is lossy, and then read every matching row again to recheck it and to
see its type. With ``resource_type`` in the key's own index the count is an index-only scan
of the organisation's keys (PostgreSQL picks it when a fragment is frequent, the trigrams
when it is rare), and SQLite, which has no trigram index, scans that index instead of rows.
userName's unique index keeps its columns (userName is unique in the organisation, whatever
the type); on PostgreSQL it carries the type as an included column.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Each index: its columns before, and after.
_INDEXES = {
    "ix_resources_display_name": (["tenant_id", "display_name_key"], ["display_name_key"]),
    "ix_resources_family_name": (["tenant_id", "family_name_key", "id"], ["family_name_key", "id"]),
    "ix_resources_given_name": (["tenant_id", "given_name_key"], ["given_name_key"]),
}


def upgrade() -> None:
    for name, (_, keys) in _INDEXES.items():
        op.drop_index(name, "resources")
        op.create_index(name, "resources", ["tenant_id", "resource_type", *keys])
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("uq_resources_user_name", "resources")
        op.create_index(
            "uq_resources_user_name",
            "resources",
            ["tenant_id", "user_name_key"],
            unique=True,
            postgresql_include=["resource_type"],
        )


def downgrade() -> None:
    for name, (columns, _) in _INDEXES.items():
        op.drop_index(name, "resources")
        op.create_index(name, "resources", columns)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("uq_resources_user_name", "resources")
        op.create_index(
            "uq_resources_user_name", "resources", ["tenant_id", "user_name_key"], unique=True
        )
