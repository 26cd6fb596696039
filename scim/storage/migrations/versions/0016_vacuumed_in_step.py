"""PostgreSQL vacuums resources and memberships after a few thousand changes, not a fifth.

A count, a sorted page and a member list are read from an index alone only where the
visibility map says a heap page holds nothing a transaction cannot see; each UPDATE, INSERT
and DELETE clears that for its page until VACUUM sets it again. By default autovacuum waits
for a fifth of a table to change: 200,000 PATCHes in a database of a million users. Until
then every entry on a page written since is checked in the heap. Measured on the benchmark's
million users (``tests/bench/README.md``): after 8,995 PATCHes in 15 s, a `co` search in the
organisation of 166,666 went from 112 to 52 requests a second (PostgreSQL 11.8 -> 33 ms per
request) and stayed there; with these settings autovacuum ran within its minute and `co` was
back at 120 (11.0 ms). The tables are vacuumed once half a percent of their rows changed (and
at least 200), or as many were inserted (at least 1,000).

Each VACUUM also clears the indexes of what it removed (``vacuum_index_cleanup``), which by
default it skips while under 2% of the pages hold dead rows; but a page is not marked visible
while it does, and those pages are the organisation's being written: after 1,109 users
created and deleted, its plain count read 11,064 rows from the heap (23 ms; 13.6 once the
indexes were cleared). That VACUUM of a million users' 935 MB of indexes took 0.7 s.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TABLES = ("resources", "members")
_SETTINGS = {
    "autovacuum_vacuum_scale_factor": "0.005",
    "autovacuum_vacuum_threshold": "200",
    "autovacuum_vacuum_insert_scale_factor": "0.005",
    "autovacuum_vacuum_insert_threshold": "1000",
    "vacuum_index_cleanup": "on",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    settings = ", ".join(f"{name} = {value}" for name, value in _SETTINGS.items())
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} SET ({settings})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"ALTER TABLE {table} RESET ({', '.join(_SETTINGS)})")
