"""The mirror's tables, with the ones every service shares."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, DateTime, Index, Integer, MetaData, String, Table, Text

from services.common.audit import AccessLogTables
from services.common.tables import SharedTables, shared_tables

metadata = MetaData()
ID = BigInteger().with_variant(Integer, "sqlite")

# One row per source: where its sync stands.
sources = Table(
    "sources",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("district_id", String(63), nullable=False, server_default=""),
    # The bookmark: the source's (updated_at, id) up to which every change is stored.
    Column("synced_through", DateTime(timezone=True)),
    Column("bookmark_id", String(100), nullable=False, server_default=""),
    Column("last_success_time", DateTime(timezone=True)),
    Column("last_attempt_time", DateTime(timezone=True)),
    Column("state", String(30), nullable=False, server_default="never_synced"),
    Column("circuit", String(20), nullable=False, server_default="closed"),
    Column("last_error", String(300), nullable=False, server_default=""),
    Column("last_reconciliation_time", DateTime(timezone=True)),
    Column("full_sync_done", Integer, nullable=False, server_default="0"),
)

# A person as one district's Paraply records them, in the mirror's canonical form.
person_records = Table(
    "person_records",
    metadata,
    Column("source", String(60), primary_key=True),
    Column("record_id", String(100), primary_key=True),
    Column("person_number", String(12), nullable=False),
    Column("district_id", String(63), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("data", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("synced_at", DateTime(timezone=True), nullable=False),
    Index("ix_person_records_person_number", "person_number"),
)

# Agresso's invoices.
invoices = Table(
    "invoices",
    metadata,
    Column("source", String(60), primary_key=True),
    Column("record_id", String(100), primary_key=True),
    Column("person_number", String(12), nullable=False),
    Column("invoice_number", String(100), nullable=False),
    Column("ocr", String(25), nullable=False),
    Column("due_date", Date, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("data", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("synced_at", DateTime(timezone=True), nullable=False),
    Index("ix_invoices_person_number", "person_number", "due_date"),
    Index("ix_invoices_invoice_number", "invoice_number"),
    Index("ix_invoices_ocr", "ocr"),
)

# Records a source sent that could not be read: never their payload (personal data), only its hash.
quarantine = Table(
    "quarantine",
    metadata,
    Column("source", String(60), primary_key=True),
    Column("record_id", String(100), primary_key=True),
    Column("reason", String(300), nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("first_seen_time", DateTime(timezone=True), nullable=False),
    Column("last_seen_time", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False),
)

# Removals a reconciliation found but held back for an operator, because they were too many.
held_sweeps = Table(
    "held_sweeps",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("source", String(60), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("listed", Integer, nullable=False),
    Column("held", Integer, nullable=False),
    # The record ids to remove, as a JSON list.
    Column("record_ids", Text, nullable=False),
    Column("state", String(20), nullable=False),
    Column("resolved_by", String(255), nullable=False, server_default=""),
    Column("resolve_time", DateTime(timezone=True)),
)

# The agreement with each district (the controller) under which the contact center processes its data.
agreements = Table(
    "agreements",
    metadata,
    Column("district_id", String(63), primary_key=True),
    Column("reference", String(100), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    # Comma-separated section names.
    Column("sections", String(300), nullable=False),
    Column("withheld_fields", String(1000), nullable=False, server_default=""),
)

shared: SharedTables = shared_tables(metadata)
access_log: AccessLogTables = shared.access_log
leases = shared.leases
