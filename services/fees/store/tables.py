"""The fees service's tables, with the ones every service shares."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from services.common.audit import AccessLogTables
from services.common.tables import SharedTables, shared_tables

metadata = MetaData()

# A deferral of payment on one invoice: an invoice is deferred once, which the unique key holds to even when
# two requests for it race.
deferrals = Table(
    "deferrals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("invoice_number", String(100), nullable=False),
    Column("person_number", String(12), nullable=False),
    Column("case_name", String(40), nullable=False),
    Column("days", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(255), nullable=False),
    Column("amount_ore", BigInteger, nullable=False),
    Column("original_due_date", Date, nullable=False),
    Column("state", String(20), nullable=False),
    Column("refusal_reason", String(200), nullable=False, server_default=""),
    Column("new_due_date", Date),
    Column("finance_reference", String(100), nullable=False, server_default=""),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    UniqueConstraint("invoice_number", name="uq_deferrals_invoice_number"),
    Index("ix_deferrals_person_number", "person_number"),
)

# An issued bill, frozen: its lines are stored as issued and never computed again.
bills = Table(
    "bills",
    metadata,
    Column("month", Date, primary_key=True),
    Column("issue_time", DateTime(timezone=True), nullable=False),
    Column("issued_by", String(255), nullable=False),
    Column("base_fee_ore", BigInteger, nullable=False),
    Column("uses_example_figures", Boolean, nullable=False),
    Column("unattributed_contacts", BigInteger, nullable=False),
)

bill_lines = Table(
    "bill_lines",
    metadata,
    Column("month", Date, ForeignKey("bills.month"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("payer", String(63), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("text", String(300), nullable=False),
    Column("amount_ore", BigInteger, nullable=False),
    Column("refers_to", Date, nullable=False),
    Column("quantity", BigInteger),
    Column("unit_price_ore", BigInteger),
)

# The calls of a month as billed: revision 0 by the month's own bill, each later revision by a bill that
# corrected them (`recorded_in`: that bill's month). What a month was last billed for is its highest
# revision, so a correction is never billed twice.
call_counts = Table(
    "call_counts",
    metadata,
    Column("month", Date, primary_key=True),
    Column("revision", Integer, primary_key=True, autoincrement=False),
    Column("recorded_in", Date, nullable=False),
    # {"district id": calls, ...}, every district of the key.
    Column("counts", Text, nullable=False),
)

# One row, updated first in every transaction that issues a bill: bills are issued one at a time, so two
# bills can never both correct the same earlier month.
bill_issuing = Table(
    "bill_issuing",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_issue_time", DateTime(timezone=True)),
)

shared: SharedTables = shared_tables(metadata)
access_log: AccessLogTables = shared.access_log
outbox = shared.outbox
leases = shared.leases
