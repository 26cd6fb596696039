"""Security events (RFC 9967): receivers, the outbox, deliveries, a signing key, and the
domain state last told.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "receivers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("audience", sa.String(64), nullable=False),
        sa.Column("aud", sa.String(2000), nullable=False),
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_receivers_tenant_id_tenants"),
        ),
        sa.Column("push_url", sa.String(2000)),
        sa.Column("token_hash", sa.String(64)),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retry_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.String(500)),
        sa.PrimaryKeyConstraint("id", name="pk_receivers"),
        sa.UniqueConstraint("token_hash", name="uq_receivers_token_hash"),
    )
    op.create_index("ix_receivers_audience", "receivers", ["audience"])
    op.create_table(
        "security_events",
        sa.Column("seq", _SEQUENCE, autoincrement=True),
        sa.Column("txn", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("audience", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("person", sa.String(31)),
        sa.Column("attributes", sa.JSON().with_variant(JSONB(), "postgresql")),
        sa.PrimaryKeyConstraint("seq", name="pk_security_events"),
    )
    op.create_index("ix_security_events_txn", "security_events", ["txn"])
    op.create_index("ix_security_events_at", "security_events", ["at"])
    op.create_table(
        "event_deliveries",
        sa.Column("receiver_id", sa.String(36), nullable=False),
        sa.Column("seq", _SEQUENCE, nullable=False),
        sa.Column("state", sa.String(10), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.String(500)),
        sa.PrimaryKeyConstraint("receiver_id", "seq", name="pk_event_deliveries"),
        sa.ForeignKeyConstraint(
            ["receiver_id"],
            ["receivers.id"],
            ondelete="CASCADE",
            name="fk_event_deliveries_receiver_id_receivers",
        ),
        sa.ForeignKeyConstraint(
            ["seq"],
            ["security_events.seq"],
            ondelete="CASCADE",
            name="fk_event_deliveries_seq_security_events",
        ),
    )
    pending = sa.text("state = 'pending'")
    op.create_index(
        "ix_event_deliveries_pending",
        "event_deliveries",
        ["receiver_id", "seq"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.create_table(
        "signing_keys",
        sa.Column("name", sa.String(64)),
        sa.Column("pem", sa.String(4000), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_signing_keys"),
    )

    op.create_table(
        "event_state",
        sa.Column("name", sa.String(64)),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_event_state"),
    )


def downgrade() -> None:
    op.drop_table("event_state")
    op.drop_table("signing_keys")
    op.drop_table("event_deliveries")
    op.drop_table("security_events")
    op.drop_table("receivers")
