"""SQLite: the listing index holds the name keys too, so that a page of pattern matches in id
order is found by walking it alone, as on PostgreSQL (migration 0018).

SQLite found the ids of a page of ``co``, ``sw`` or ``ew`` matches by reading every entry of
the key's own index (migration 0014) and sorting the matches by id: 2.5-4.5 ms among 20,000
users, whatever the fragment. Walking the listing index in id order stops at the page's last
match: 0.05 ms for ``sson``, 0.3-0.9 ms for surnames' fragments matching 1-4% of users, and a
fragment with fewer matches than a page reads the whole index, as before. SQLite's indexes
hold no included columns, so the keys follow the id as columns of the index.

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_INDEX = "ix_resources_listing"
_COLUMNS = ["tenant_id", "resource_type", "id"]
_KEYS = ["user_name_key", "display_name_key", "family_name_key", "given_name_key"]


def _replace(columns: list[str]) -> None:
    """The listing index made again of ``columns``. SQLite renames no index, and no other
    connection sees the migration's transaction before it commits: dropped, then built."""
    op.drop_index(_INDEX, "resources")
    op.create_index(_INDEX, "resources", columns)
    # The planner's statistics of the index it lists by, as ANALYZE left the dropped one's.
    op.execute(f"ANALYZE {_INDEX}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _replace([*_COLUMNS, *_KEYS])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _replace(_COLUMNS)
