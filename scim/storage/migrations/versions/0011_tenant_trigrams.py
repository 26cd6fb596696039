"""``co``, ``sw`` and ``ew`` search one organisation's trigrams, not every organisation's.

The trigram indexes of 0001 held the keys of every organisation: a frequent fragment read the
matches of all of them, and only then kept the caller's. With ``btree_gin`` the organisation
is a column of the same GIN index, so the index yields the caller's matches alone.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TRIGRAM_KEYS = ("user_name_key", "display_name_key", "family_name_key", "given_name_key")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    for key in TRIGRAM_KEYS:
        op.execute(f"DROP INDEX IF EXISTS ix_resources_{key}_trgm")
        op.execute(
            f"CREATE INDEX ix_resources_{key}_trgm ON resources "
            f"USING gin (tenant_id, {key} gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for key in TRIGRAM_KEYS:
        op.execute(f"DROP INDEX IF EXISTS ix_resources_{key}_trgm")
        op.execute(
            f"CREATE INDEX ix_resources_{key}_trgm ON resources USING gin ({key} gin_trgm_ops)"
        )
