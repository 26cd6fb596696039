"""A resource's audit records are found by an index, for the administrators' history view.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_audit_log_resource", "audit_log", ["tenant_id", "resource_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_resource", "audit_log")
