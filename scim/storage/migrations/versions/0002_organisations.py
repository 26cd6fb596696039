"""Organisations and who may act for them: agreements, administrators, system clients,
tokens, browser sessions and the audit log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Document = sa.JSON().with_variant(JSONB(), "postgresql")


def _tenant_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    with op.batch_alter_table("tenants") as tenants:
        tenants.add_column(sa.Column("org_number", sa.String(10), nullable=False))
        tenants.add_column(sa.Column("kind", sa.String(10), nullable=False))
        tenants.add_column(sa.Column("created", sa.DateTime(timezone=True), nullable=False))
        tenants.create_unique_constraint("uq_tenants_org_number", ["org_number"])
    op.create_table(
        "agreements",
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("service_id", sa.String(64), primary_key=True),
    )
    op.create_table(
        "administrators",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant_fk(),
        sa.Column("hsa_id", sa.String(31), nullable=False, unique=True),
        sa.Column("given_name", sa.String(100), nullable=False),
        sa.Column("family_name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "system_clients",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant_fk(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hsa_id", sa.String(31), unique=True),
        sa.Column("fingerprint", sa.String(64), unique=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "client_id",
            sa.String(36),
            sa.ForeignKey("system_clients.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True)),
        sa.Column("revoked", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column(
            "administrator_id",
            sa.String(36),
            sa.ForeignKey("administrators.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Integer),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(32)),
        sa.Column("resource_id", sa.String(64)),
        sa.Column("changes", Document),
    )
    op.create_index("ix_audit_log_tenant", "audit_log", ["tenant_id", "at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("sessions")
    op.drop_table("tokens")
    op.drop_table("system_clients")
    op.drop_table("administrators")
    op.drop_table("agreements")
    with op.batch_alter_table("tenants") as tenants:
        tenants.drop_constraint("uq_tenants_org_number", type_="unique")
        tenants.drop_column("created")
        tenants.drop_column("kind")
        tenants.drop_column("org_number")
