"""The database counts every write of an organisation's resources and memberships, so that a
worker can tell whether a filtered count it made still holds (``scim.storage.counts``).

An organisation's *generation* is the number of its writes: ``resource_counts.writes`` plus,
on PostgreSQL, the change rows not folded in yet, one per statement (migration 0012's
triggers make them for inserts and deletes; these for updates and for memberships, with no
change to the count). Two reads that see the same generation see the same committed rows, so
a count made at one answers for the other. Nothing here ever makes a generation smaller: a
TRUNCATE and the benchmark's recount add to it.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# What migration 0012's fold and TRUNCATE did, with the writes counted.
_FOLD = """
    WITH moved AS (
        DELETE FROM resource_count_changes RETURNING tenant_id, resource_type, change
    )
    INSERT INTO resource_counts (tenant_id, resource_type, count, writes)
    SELECT tenant_id, resource_type, sum(change), count(*) FROM moved
    GROUP BY tenant_id, resource_type
    ON CONFLICT (tenant_id, resource_type) DO UPDATE
    SET count = resource_counts.count + excluded.count,
        writes = resource_counts.writes + excluded.writes
"""

_POSTGRES = (
    """
    CREATE FUNCTION resources_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO resource_count_changes (tenant_id, resource_type, change)
        SELECT DISTINCT tenant_id, resource_type, 0 FROM changed;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION members_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO resource_count_changes (tenant_id, resource_type, change)
        SELECT DISTINCT tenant_id, 'Group', 0 FROM changed;
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE OR REPLACE FUNCTION resources_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {_FOLD};
        UPDATE resource_counts SET count = 0, writes = writes + 1;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION members_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE resource_counts SET writes = writes + 1;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER resources_changed AFTER UPDATE ON resources
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION resources_changed()
    """,
    """
    CREATE TRIGGER members_added AFTER INSERT ON members
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION members_changed()
    """,
    """
    CREATE TRIGGER members_changed AFTER UPDATE ON members
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION members_changed()
    """,
    """
    CREATE TRIGGER members_removed AFTER DELETE ON members
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION members_changed()
    """,
    """
    CREATE TRIGGER members_emptied AFTER TRUNCATE ON members
    FOR EACH STATEMENT EXECUTE FUNCTION members_emptied()
    """,
)

_POSTGRES_DOWN = (
    "DROP TRIGGER members_emptied ON members",
    "DROP TRIGGER members_removed ON members",
    "DROP TRIGGER members_changed ON members",
    "DROP TRIGGER members_added ON members",
    "DROP TRIGGER resources_changed ON resources",
    "DROP FUNCTION members_emptied()",
    "DROP FUNCTION members_changed()",
    "DROP FUNCTION resources_changed()",
    """
    CREATE OR REPLACE FUNCTION resources_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM resource_count_changes;
        DELETE FROM resource_counts;
        RETURN NULL;
    END $$
    """,
)


# SQLite's row triggers, each adding ``change`` to the count of ``kind`` and one to its
# writes: (table, event, the row, kind, change). Migration 0012's two are replaced.
_SQLITE_TRIGGERS = (
    ("resources", "INSERT", "NEW", "NEW.resource_type", "1"),
    ("resources", "DELETE", "OLD", "OLD.resource_type", "-1"),
    ("resources", "UPDATE", "NEW", "NEW.resource_type", "0"),
    ("members", "INSERT", "NEW", "'Group'", "0"),
    ("members", "DELETE", "OLD", "'Group'", "0"),
    ("members", "UPDATE", "NEW", "'Group'", "0"),
)
_SQLITE_NAMES = tuple(f"{table}_{event.lower()}" for table, event, *_ in _SQLITE_TRIGGERS)
_SQLITE = tuple(
    f"""
    CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN
        INSERT INTO resource_counts (tenant_id, resource_type, count, writes)
        VALUES ({row}.tenant_id, {kind}, {change}, 1)
        ON CONFLICT (tenant_id, resource_type)
        DO UPDATE SET count = count + {change}, writes = writes + 1;
    END
    """
    for name, (table, event, row, kind, change) in zip(_SQLITE_NAMES, _SQLITE_TRIGGERS, strict=True)
)
_SQLITE_0012 = (
    """
    CREATE TRIGGER resources_added AFTER INSERT ON resources BEGIN
        INSERT INTO resource_counts (tenant_id, resource_type, count)
        VALUES (NEW.tenant_id, NEW.resource_type, 1)
        ON CONFLICT (tenant_id, resource_type) DO UPDATE SET count = count + 1;
    END
    """,
    """
    CREATE TRIGGER resources_removed AFTER DELETE ON resources BEGIN
        UPDATE resource_counts SET count = count - 1
        WHERE tenant_id = OLD.tenant_id AND resource_type = OLD.resource_type;
    END
    """,
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("LOCK TABLE resources, members IN SHARE MODE")
    op.add_column(
        "resource_counts",
        sa.Column("writes", sa.BigInteger, nullable=False, server_default="0"),
    )
    if postgres:
        for statement in _POSTGRES:
            op.execute(statement)
    else:
        op.execute("DROP TRIGGER resources_added")
        op.execute("DROP TRIGGER resources_removed")
        for statement in _SQLITE:
            op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES_DOWN if postgres else _SQLITE_NAMES:
        op.execute(statement if postgres else f"DROP TRIGGER {statement}")
    # SQLite remakes the table: before any trigger names it again.
    with op.batch_alter_table("resource_counts") as table:
        table.drop_column("writes")
    if not postgres:
        for statement in _SQLITE_0012:
            op.execute(statement)
