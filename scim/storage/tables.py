"""The relational schema.

A resource is one row: the SCIM document as the client wrote it in ``data``, plus
search keys the server derives from it (case-folded where the attribute is
``caseExact=false``) so that the filters identity providers send hit an index.
Group membership is its own table, one row per member, so that one member is
added or removed without reading the others.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Document = JSON().with_variant(JSONB(), "postgresql")
# Compared code point by code point, whatever the database's own collation (SQLite's BINARY).
SortKey = String(255).with_variant(String(255, collation="C"), "postgresql")

tenants = Table(
    "tenants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    # As the installed domain writes them (scim.hooks.Domain.tenant_number, tenant_kind).
    Column("org_number", String(10), nullable=False, unique=True),
    Column("kind", String(10), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)

# The e-services an organisation has an agreement for.
agreements = Table(
    "agreements",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("service_id", String(64), primary_key=True),
)

# People registered by the operator to administer one organisation, by HSA-id.
administrators = Table(
    "administrators",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("hsa_id", String(31), nullable=False, unique=True),
    Column("given_name", String(100), nullable=False),
    Column("family_name", String(100), nullable=False),
    Column("email", String(255), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)

# Identity systems that provision an organisation: by function certificate or by token.
system_clients = Table(
    "system_clients",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("hsa_id", String(31), unique=True),
    Column("fingerprint", String(64), unique=True),
    Column("created", DateTime(timezone=True), nullable=False),
)

# Bearer tokens, stored only as SHA-256 hashes.
tokens = Table(
    "tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "client_id", String(36), ForeignKey("system_clients.id", ondelete="CASCADE"), nullable=False
    ),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True)),
    Column("revoked", DateTime(timezone=True)),
)

# Browser sessions of administrators, by the hash of the cookie value.
sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column(
        "administrator_id",
        String(36),
        ForeignKey("administrators.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("csrf_token", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
)

# Requests per rate-limit key ("client:…", "tenant:…") and window, summed over every worker
# (scim/ratelimit.py); windows older than a minute are deleted.
rate_counts = Table(
    "rate_counts",
    metadata,
    Column("key", String(220), primary_key=True),
    Column("window", BigInteger, primary_key=True),
    Column("count", Integer, nullable=False),
)

# Who changed what, when, in which organisation.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("tenant_id", Integer),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("resource_type", String(32)),
    Column("resource_id", String(64)),
    Column("changes", Document),
)
Index("ix_audit_log_tenant", audit_log.c.tenant_id, audit_log.c.at)
# A resource's history, newest first (``audit.history``).
Index("ix_audit_log_resource", audit_log.c.tenant_id, audit_log.c.resource_id, audit_log.c.id)

resources = Table(
    "resources",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("id", String(36), primary_key=True),
    Column("resource_type", String(32), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("last_modified", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    # Search keys, derived from ``data`` on every write.
    Column("external_id", String(255)),
    Column("user_name_key", String(255)),
    Column("display_name_key", String(255)),
    Column("family_name_key", String(255)),
    Column("given_name_key", String(255)),
    Column("active", Boolean),
    Column("hsa_id_key", String(31)),
    # Sort keys (``scim.protocol.folding.sort_key``): names in Swedish order.
    Column("display_name_sort", SortKey),
    Column("family_name_sort", SortKey),
    Column("given_name_sort", SortKey),
    # What a membership shows as ``display``: displayName, else userName.
    Column("display", String(255)),
    Column("data", Document, nullable=False),
)

# Ever-growing keys: 64 bits on PostgreSQL, SQLite's INTEGER (its rowid).
_Sequence = BigInteger().with_variant(Integer, "sqlite")

# Resources of each type per organisation, and the writes of them and of memberships, kept
# by triggers on ``resources`` and ``members`` (migrations 0012 and 0017;
# ``scim.storage.counts``): on PostgreSQL the changes not folded in yet are rows of
# ``resource_count_changes``, one per statement.
resource_counts = Table(
    "resource_counts",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("resource_type", String(32), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("writes", BigInteger, nullable=False, server_default="0"),
)
resource_count_changes = Table(
    "resource_count_changes",
    metadata,
    Column("seq", _Sequence, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("change", BigInteger, nullable=False),
)
Index(
    "ix_resource_count_changes_tenant",
    resource_count_changes.c.tenant_id,
    resource_count_changes.c.resource_type,
)

# RFC 7643 §4.1: userName is unique within the tenant, case-insensitively. The type rides
# along, and leads each name key's index after the tenant, so that counting the matches of a
# filter on these keys reads the index alone (migration 0013).
Index(
    "uq_resources_user_name",
    resources.c.tenant_id,
    resources.c.user_name_key,
    unique=True,
    postgresql_include=["resource_type"],
)
# Lists in id order, with the name keys, so that a page of a pattern's matches is found by
# walking it alone: PostgreSQL includes them (migration 0018), SQLite, which includes
# nothing, has them as columns after the id (migration 0019).
_LISTING = (resources.c.tenant_id, resources.c.resource_type, resources.c.id)
# The keys of the names a pattern compares (``co``, ``sw``, ``ew``): the listing index's, and
# on SQLite the trigram index's (migration 0021, ``scim.storage.trigrams``).
NAME_KEYS = ("user_name_key", "display_name_key", "family_name_key", "given_name_key")
Index("ix_resources_listing", *_LISTING, postgresql_include=list(NAME_KEYS)).ddl_if(
    dialect="postgresql"
)
Index("ix_resources_listing", *_LISTING, *(resources.c[key] for key in NAME_KEYS)).ddl_if(
    dialect="sqlite"
)
# A sorted page's ids are read from these alone, the type included (migration 0015).
for _name in ("display_name", "family_name", "given_name"):
    Index(
        f"ix_resources_{_name}_sort",
        resources.c.tenant_id,
        resources.c.resource_type,
        resources.c[f"{_name}_sort"],
        resources.c.id,
    )
# The name keys' own indexes (migration 0014): on PostgreSQL without ``id``, so that equal
# keys share one entry (B-tree deduplication) and a count reads an eighth as much; on
# SQLite with it, so that the ids of a page of pattern matches come from the index alone.
for _key in ("display_name_key", "family_name_key", "given_name_key"):
    _leading = (resources.c.tenant_id, resources.c.resource_type, resources.c[_key])
    _index = f"ix_resources_{_key.removesuffix('_key')}"
    Index(_index, *_leading).ddl_if(dialect="postgresql")
    Index(_index, *_leading, resources.c.id).ddl_if(dialect="sqlite")
Index("ix_resources_external_id", resources.c.tenant_id, resources.c.external_id)
# HSA-ids are unique within the organisation, like userName.
Index("uq_resources_hsa_id", resources.c.tenant_id, resources.c.hsa_id_key, unique=True)
# So are groups' displayNames: Microsoft Entra ID finds a group by its displayName.
_GROUPS = resources.c.resource_type == "Group"
Index(
    "uq_resources_group_display_name",
    resources.c.tenant_id,
    resources.c.display_name_key,
    unique=True,
    sqlite_where=_GROUPS,
    postgresql_where=_GROUPS,
)

members = Table(
    "members",
    metadata,
    Column("tenant_id", Integer, nullable=False),
    Column("group_id", String(36), primary_key=True),
    Column("member_id", String(36), primary_key=True),
    # The ``display`` a client sent with the member, shown instead of the derived one.
    Column("display", String(255)),
    ForeignKeyConstraint(["group_id"], ["resources.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["member_id"], ["resources.id"], ondelete="CASCADE"),
)
# User.groups is derived by looking memberships up from the member's side.
Index("ix_members_member_id", members.c.member_id)

# The length of each bounded search key column, and of a member's display: looked up once,
# for the checks of every write (a longer value is invalidValue, not a 500).
KEY_LIMITS: dict[str, int] = {
    column.name: length
    for column in resources.c
    if isinstance(length := getattr(column.type, "length", None), int)
}
MEMBER_DISPLAY_LIMIT: int = getattr(members.c.display.type, "length", None) or 255

# -- security events (RFC 9967), scim/events ---------------------------------------------

# Parties told of changes by Security Event Tokens: each hears one audience (an e-service)
# of every organisation, or of one (``tenant_id``). Push receivers get each SET POSTed to
# ``push_url`` (RFC 8935); poll receivers fetch them with ``token_hash``'s token (RFC 8936).
receivers = Table(
    "receivers",
    metadata,
    Column("id", String(36), primary_key=True),
    # The domain's audience it hears (an e-service), and the SET ``aud`` it expects.
    Column("audience", String(64), nullable=False),
    Column("aud", String(2000), nullable=False),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE")),
    Column("push_url", String(2000)),
    Column("token_hash", String(64), unique=True),
    Column("created", DateTime(timezone=True), nullable=False),
    # One delivering worker at a time, until ``lease_until`` (scim.events.delivery).
    Column("lease_owner", String(64)),
    Column("lease_until", DateTime(timezone=True)),
    # After a failed push: consecutive failures, and when to try again (back-off).
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("retry_at", DateTime(timezone=True)),
    Column("last_error", String(500)),
)
Index("ix_receivers_audience", receivers.c.audience)

# The outbox: events written in the transaction of the change they tell of, in order.
security_events = Table(
    "security_events",
    metadata,
    Column("seq", _Sequence, primary_key=True, autoincrement=True),
    # The change's transaction (the SET's ``txn``): shared by every event it made.
    Column("txn", String(36), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("tenant_id", Integer, nullable=False),
    Column("audience", String(64), nullable=False),
    # create, patch, put, delete, activate, deactivate (RFC 9967 §2.4).
    Column("event", String(16), nullable=False),
    Column("resource_type", String(32), nullable=False),
    Column("resource_id", String(36), nullable=False),
    Column("person", String(31)),
    Column("attributes", Document),
)
Index("ix_security_events_txn", security_events.c.txn)
Index("ix_security_events_at", security_events.c.at)

# Each event for each receiver that hears its audience: pending, delivered or dead (given
# up on, until the operator replays it).
event_deliveries = Table(
    "event_deliveries",
    metadata,
    Column(
        "receiver_id",
        String(36),
        ForeignKey("receivers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "seq",
        _Sequence,
        ForeignKey("security_events.seq", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("state", String(10), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # Poll delivery: when it was last handed out unacknowledged (RFC 8936 §2.4).
    Column("sent_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("error", String(500)),
)
_PENDING = event_deliveries.c.state == "pending"
Index(
    "ix_event_deliveries_pending",
    event_deliveries.c.receiver_id,
    event_deliveries.c.seq,
    sqlite_where=_PENDING,
    postgresql_where=_PENDING,
)

# The key SETs are signed with when the settings name none: drawn once, kept here, so that
# every worker and every restart signs with it (scim.events.signing).
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("pem", String(4000), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)

# What the engine last told receivers of, by name: the domain's ``audience_state`` (its
# catalogue), so that a change of it is told once, by the first worker to start after it.
event_state = Table(
    "event_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
