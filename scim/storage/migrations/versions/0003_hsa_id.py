"""HSA-ids of users as an indexed search key, unique within an organisation.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resources") as resources:
        resources.add_column(sa.Column("hsa_id_key", sa.String(31)))
    op.create_index("uq_resources_hsa_id", "resources", ["tenant_id", "hsa_id_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_resources_hsa_id", "resources")
    with op.batch_alter_table("resources") as resources:
        resources.drop_column("hsa_id_key")
