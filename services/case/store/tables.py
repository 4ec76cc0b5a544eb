"""The case service's tables, with the ones every service shares."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from services.case.model import (
    AT_UNIT,
)
from services.common.audit import AccessLogTables
from services.common.tables import SharedTables, shared_tables

metadata = MetaData()
ID = BigInteger().with_variant(Integer, "sqlite")

reference_items = Table(
    "reference_items",
    metadata,
    Column("kind", String(20), primary_key=True),
    Column("item_id", String(63), primary_key=True),
    Column("label", String(200), nullable=False),
    Column("need_role", String(40), nullable=False, server_default=""),
    Column("position", Integer, nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
)

# The statuses of a case a unit holds, written out: a partial index on them is used only by a query that
# names the same values in its SQL, which bound parameters would hide from the planner.
AT_UNIT_SQL = f"status IN ({', '.join(repr(status.value) for status in AT_UNIT)})"

cases = Table(
    "cases",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("category", String(63), nullable=False),
    Column("case_type", String(63), nullable=False),
    Column("case_class", String(63), nullable=False),
    Column("district_id", String(63)),
    Column("provider", String(200), nullable=False),
    Column("person_number", String(12), index=True),
    Column("acute", Boolean, nullable=False),
    Column("feedback_channel", String(20), nullable=False),
    Column("feedback_window", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("first_channel", String(20), nullable=False),
    Column("unit_id", String(63)),
    Column("officer_id", String(63)),
    Column("team", String(60), nullable=False),
    Column("deadline", DateTime(timezone=True)),
    Column("forward_time", DateTime(timezone=True)),
    Column("overdue", Boolean, nullable=False),
    Column("deadline_kept", Boolean),
    Column("escalation_emails", Text, nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("unit_mailbox", String(200), nullable=False),
    Column("resolution", Text, nullable=False),
    Column("resolved_at_first_contact", Boolean, nullable=False),
    Column("forwarded_ever", Boolean, nullable=False),
    Column("satisfaction", Integer),
    Column("contact_count", Integer, nullable=False),
    Column("resolve_minutes", Integer),
    Column("create_time", DateTime(timezone=True), nullable=False, index=True),
    # "YYYY-MM" in Europe/Stockholm, so monthly statistics group without time-zone arithmetic in SQL.
    Column("create_month", String(7), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    Column("close_time", DateTime(timezone=True)),
    Column("feedback_time", DateTime(timezone=True)),
    Column("revision", Integer, nullable=False),
    Index("ix_cases_unit_queue", "unit_id", "status", "deadline"),
    Index("ix_cases_open_deadline", "status", "overdue", "deadline"),
    # A unit's queue in page order, open cases only (migration 0002).
    Index(
        "ix_cases_unit_open_queue",
        "unit_id",
        "deadline",
        "id",
        postgresql_where=text(AT_UNIT_SQL),
        sqlite_where=text(AT_UNIT_SQL),
    ),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("case_id", ID, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("channel", String(20), nullable=False),
    Column("party", String(30), nullable=False),
    Column("contact_name", String(200), nullable=False),
    Column("contact_phone", String(40), nullable=False),
    Column("contact_email", String(200), nullable=False),
    Column("summary", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, index=True),
    Column("registered_by", String(255), nullable=False),
)

case_events = Table(
    "case_events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("case_id", ID, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(30), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("detail", Text, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("case_id", ID, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("given_by", String(20), nullable=False),
    Column("verification", String(200), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("recorded_by", String(255), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("revoke_time", DateTime(timezone=True)),
)


shared: SharedTables = shared_tables(metadata)
idempotency_keys = shared.idempotency_keys
access_log: AccessLogTables = shared.access_log
outbox = shared.outbox
leases = shared.leases
