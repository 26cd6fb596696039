"""Tenants, resources and group memberships.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Document = sa.JSON().with_variant(JSONB(), "postgresql")
TRIGRAM_KEYS = ("user_name_key", "display_name_key", "family_name_key", "given_name_key")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_table(
        "resources",
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_resources_tenant_id_tenants"),
            nullable=False,
        ),
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("external_id", sa.String(255)),
        sa.Column("user_name_key", sa.String(255)),
        sa.Column("display_name_key", sa.String(255)),
        sa.Column("family_name_key", sa.String(255)),
        sa.Column("given_name_key", sa.String(255)),
        sa.Column("active", sa.Boolean),
        sa.Column("display", sa.String(255)),
        sa.Column("data", Document, nullable=False),
    )
    op.create_index(
        "uq_resources_user_name", "resources", ["tenant_id", "user_name_key"], unique=True
    )
    op.create_index("ix_resources_listing", "resources", ["tenant_id", "resource_type", "id"])
    op.create_index("ix_resources_display_name", "resources", ["tenant_id", "display_name_key"])
    op.create_index("ix_resources_family_name", "resources", ["tenant_id", "family_name_key", "id"])
    op.create_index("ix_resources_given_name", "resources", ["tenant_id", "given_name_key"])
    op.create_index("ix_resources_external_id", "resources", ["tenant_id", "external_id"])
    op.create_table(
        "members",
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("group_id", sa.String(36), primary_key=True),
        sa.Column("member_id", sa.String(36), primary_key=True),
        sa.Column("display", sa.String(255)),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["resources.id"],
            ondelete="CASCADE",
            name="fk_members_group_id_resources",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["resources.id"],
            ondelete="CASCADE",
            name="fk_members_member_id_resources",
        ),
    )
    op.create_index("ix_members_member_id", "members", ["member_id"])

    if op.get_bind().dialect.name == "postgresql":
        # ``co``, ``sw`` and ``ew`` on the keys identity providers search by.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for key in TRIGRAM_KEYS:
            op.execute(
                f"CREATE INDEX ix_resources_{key}_trgm ON resources USING gin ({key} gin_trgm_ops)"
            )


def downgrade() -> None:
    op.drop_table("members")
    op.drop_table("resources")
    op.drop_table("tenants")
