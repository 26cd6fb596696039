"""SQLite: the name keys' trigrams (an FTS5 index, ``resource_names``), so that a pattern a few
names hold finds them without walking the organisation.

A page of ``co``, ``sw`` or ``ew`` matches walks the listing index in id order until it has
its page (migration 0019): quick for a fragment many names hold (0.2 ms for ``nsson``), the
whole organisation for one that few do (3.6-5.7 ms among 20,000 users for the fragments of
the benchmark's surnames with fewer than 100 matches). The trigrams find those few at once
(0.1-0.5 ms), and walking stays the way for the frequent ones, which the trigrams would
have to find all of and sort (4.3 ms for ``nsson``): ``scim.storage.trigrams`` asks the
index how many names a fragment is in before it chooses. PostgreSQL has its trigram indexes
(migration 0011) and chooses by its statistics (migration 0020).

The index holds no copy of the keys (``content='resources'``): its rows are the resources'
rowids, kept by triggers on every insert, delete and change of a name key. VACUUM keeps a
table's rowids (SQLite copies its rows as they are). A SQLite without FTS5's trigram
tokenizer (before 3.34) gets no index, and its patterns are found by walking, as before.

Revision ID: 0021
Revises: 0020
"""

import logging

from alembic import op
from sqlalchemy.exc import OperationalError

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

logger = logging.getLogger("alembic.runtime.migration")

_KEYS = ("user_name_key", "display_name_key", "family_name_key", "given_name_key")
_COLUMNS = ", ".join(_KEYS)
_NEW = ", ".join(f"new.{key}" for key in _KEYS)
_OLD = ", ".join(f"old.{key}" for key in _KEYS)
# An external content index forgets a row by being told the values it indexed.
_FORGET = (
    f"INSERT INTO resource_names (resource_names, rowid, {_COLUMNS}) "
    f"VALUES ('delete', old.rowid, {_OLD});"
)
_LEARN = f"INSERT INTO resource_names (rowid, {_COLUMNS}) VALUES (new.rowid, {_NEW});"
_CHANGED = " OR ".join(f"old.{key} IS NOT new.{key}" for key in _KEYS)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    try:
        op.execute(
            f"CREATE VIRTUAL TABLE resource_names USING fts5({_COLUMNS}, "
            "content='resources', content_rowid='rowid', tokenize='trigram')"
        )
    except OperationalError as error:  # no FTS5, or no trigram tokenizer
        logger.warning("SQLite has no trigram index (%s): patterns are found by walking", error)
        return
    op.execute(f"CREATE TRIGGER resource_names_insert AFTER INSERT ON resources BEGIN {_LEARN} END")
    op.execute(
        f"CREATE TRIGGER resource_names_delete AFTER DELETE ON resources BEGIN {_FORGET} END"
    )
    op.execute(
        f"CREATE TRIGGER resource_names_update AFTER UPDATE OF {_COLUMNS} ON resources "
        f"WHEN {_CHANGED} BEGIN {_FORGET} {_LEARN} END"
    )
    op.execute("INSERT INTO resource_names (resource_names) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS resource_names_{trigger}")
    op.execute("DROP TABLE IF EXISTS resource_names")
