"""How many resources of each type each organisation holds, kept by the database with every
insert and delete, so that an unfiltered list's ``totalResults`` is read, not counted.

SQLite (one writer at a time): row triggers keep ``resource_counts`` itself. PostgreSQL:
statement triggers append each statement's change to ``resource_count_changes``, which no
two writers contend for (a counter row would make every write of an organisation wait for
the one before it to commit); ``scim.storage.counts.fold`` moves them into
``resource_counts`` now and then, and a count adds what has not been folded yet.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_POSTGRES_TRIGGERS = (
    """
    CREATE FUNCTION resources_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO resource_count_changes (tenant_id, resource_type, change)
        SELECT tenant_id, resource_type, count(*) FROM added GROUP BY tenant_id, resource_type;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION resources_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO resource_count_changes (tenant_id, resource_type, change)
        SELECT tenant_id, resource_type, -count(*) FROM removed GROUP BY tenant_id, resource_type;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION resources_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM resource_count_changes;
        DELETE FROM resource_counts;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER resources_added AFTER INSERT ON resources
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION resources_added()
    """,
    """
    CREATE TRIGGER resources_removed AFTER DELETE ON resources
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION resources_removed()
    """,
    """
    CREATE TRIGGER resources_emptied AFTER TRUNCATE ON resources
    FOR EACH STATEMENT EXECUTE FUNCTION resources_emptied()
    """,
)

_SQLITE_TRIGGERS = (
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
    op.create_table(
        "resource_counts",
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "resource_type", name="pk_resource_counts"),
    )
    op.create_table(
        "resource_count_changes",
        sa.Column("seq", _SEQUENCE, autoincrement=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("change", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_resource_count_changes"),
    )
    op.create_index(
        "ix_resource_count_changes_tenant",
        "resource_count_changes",
        ["tenant_id", "resource_type"],
    )
    # Counted in the transaction that adds the triggers, so no write falls in between.
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("LOCK TABLE resources IN SHARE MODE")
    for statement in _POSTGRES_TRIGGERS if postgres else _SQLITE_TRIGGERS:
        op.execute(statement)
    op.execute(
        "INSERT INTO resource_counts (tenant_id, resource_type, count) "
        "SELECT tenant_id, resource_type, count(*) FROM resources "
        "GROUP BY tenant_id, resource_type"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ("resources_added", "resources_removed", "resources_emptied"):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON resources")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in ("resources_added", "resources_removed"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("resource_count_changes")
    op.drop_table("resource_counts")
