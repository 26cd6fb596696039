"""PostgreSQL: the name keys' statistics sample ten times as many values (1,000), so that the
planner tells a rare fragment from a frequent one.

PostgreSQL estimates a ``LIKE '%anda%'`` by testing the pattern against the column's
histogram; with the default 100 entries, a fragment none of them holds is still taken to
match one value in a few hundred (723 of 166,666 users for ``anda``, which has 175). So it
paged such a fragment by walking the organisation in id order until 100 matched (95,000
index entries, 25 ms) instead of reading its few matches by their trigrams and sorting them.
With 1,000 entries the estimate follows the fragment: the ids of a page of each of the
benchmark's surname fragments at 1,000,000 users took 1.6-1.9 ms on average, against
2.4-3.6, and 5.5-6.8 ms at worst, against 18-25. ANALYZE samples 300 rows per entry: about
9 s for 1,000,000 users, in the background (autovacuum). SQLite plans no pattern by
statistics.

Revision ID: 0020
Revises: 0019
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_KEYS = ("user_name_key", "display_name_key", "family_name_key", "given_name_key")
_TARGET = 1000


def _target(target: int) -> None:
    for key in _KEYS:
        op.execute(f"ALTER TABLE resources ALTER COLUMN {key} SET STATISTICS {target}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _target(_TARGET)
        op.execute(f"ANALYZE resources ({', '.join(_KEYS)})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _target(-1)  # the server's default_statistics_target
