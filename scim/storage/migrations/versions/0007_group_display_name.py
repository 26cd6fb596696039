"""A group's displayName is unique within its organisation, case-insensitively as userName
(Microsoft Entra ID finds groups by displayName).

An organisation holding two groups of one name cannot be migrated: the migration names them,
and changes nothing, until one is renamed.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_resources = sa.table(
    "resources",
    sa.column("tenant_id", sa.Integer),
    sa.column("id", sa.String),
    sa.column("resource_type", sa.String),
    sa.column("display_name_key", sa.String),
)


def upgrade() -> None:
    r = _resources.c
    groups = r.resource_type == "Group"
    twice = (
        sa.select(r.tenant_id, r.display_name_key, sa.func.count().label("groups"))
        .where(groups, r.display_name_key.is_not(None))
        .group_by(r.tenant_id, r.display_name_key)
        .having(sa.func.count() > 1)
    )
    found = op.get_bind().execute(twice).all()
    if found:
        named = "; ".join(
            f"organisation {row.tenant_id}: {row.groups} groups named {row.display_name_key!r}"
            for row in found
        )
        raise RuntimeError(f"Rename these groups, then migrate again: {named}")
    op.create_index(
        "uq_resources_group_display_name",
        "resources",
        ["tenant_id", "display_name_key"],
        unique=True,
        sqlite_where=sa.text("resource_type = 'Group'"),
        postgresql_where=sa.text("resource_type = 'Group'"),
    )


def downgrade() -> None:
    op.drop_index("uq_resources_group_display_name", "resources")
