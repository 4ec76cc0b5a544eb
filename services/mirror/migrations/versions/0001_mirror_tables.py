"""The mirror's tables, the shared ones, and the districts' agreements

Revision ID: 0001
Revises:
Created: 2026-12-01 22:00:00

Each district's agreement is seeded as the contact center processes its data today: every section, except
that Skärholmen's agreement leaves the fee basis out (its fee officers answer fee questions themselves).
An agreement is changed by a later migration, as the written agreement it mirrors is.
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

from services.common import shared_migrations

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DISTRICTS = (
    "jarva",
    "norra-innerstaden",
    "bromma",
    "hasselby-vallingby",
    "kungsholmen",
    "sodermalm",
    "enskede-arsta-vantor",
    "farsta",
    "skarpnack",
    "hagersten-alvsjo",
    "skarholmen",
)
ALL_SECTIONS = "decisions,fee_basis,identity,invoices,officer,other_facts,providers"
WITHOUT_FEE_BASIS = "decisions,identity,invoices,officer,other_facts,providers"


def upgrade() -> None:
    shared_migrations.create_access_log()
    shared_migrations.create_idempotency_keys()
    shared_migrations.create_outbox_and_leases()
    op.create_table(
        "sources",
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("district_id", sa.String(63), server_default="", nullable=False),
        sa.Column("synced_through", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bookmark_id", sa.String(100), server_default="", nullable=False),
        sa.Column("last_success_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(30), server_default="never_synced", nullable=False),
        sa.Column("circuit", sa.String(20), server_default="closed", nullable=False),
        sa.Column("last_error", sa.String(300), server_default="", nullable=False),
        sa.Column("last_reconciliation_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("full_sync_done", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "person_records",
        sa.Column("source", sa.String(60), nullable=False),
        sa.Column("record_id", sa.String(100), nullable=False),
        sa.Column("person_number", sa.String(12), nullable=False),
        sa.Column("district_id", sa.String(63), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "record_id"),
    )
    op.create_index("ix_person_records_person_number", "person_records", ["person_number"])
    op.create_table(
        "invoices",
        sa.Column("source", sa.String(60), nullable=False),
        sa.Column("record_id", sa.String(100), nullable=False),
        sa.Column("person_number", sa.String(12), nullable=False),
        sa.Column("invoice_number", sa.String(100), nullable=False),
        sa.Column("ocr", sa.String(25), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "record_id"),
    )
    op.create_index("ix_invoices_person_number", "invoices", ["person_number", "due_date"])
    op.create_index("ix_invoices_invoice_number", "invoices", ["invoice_number"])
    op.create_index("ix_invoices_ocr", "invoices", ["ocr"])
    op.create_table(
        "quarantine",
        sa.Column("source", sa.String(60), nullable=False),
        sa.Column("record_id", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("first_seen_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "record_id"),
    )
    op.create_table(
        "held_sweeps",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("source", sa.String(60), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("listed", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("record_ids", sa.Text(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("resolved_by", sa.String(255), server_default="", nullable=False),
        sa.Column("resolve_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    agreements = op.create_table(
        "agreements",
        sa.Column("district_id", sa.String(63), nullable=False),
        sa.Column("reference", sa.String(100), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("sections", sa.String(300), nullable=False),
        sa.Column("withheld_fields", sa.String(1000), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("district_id"),
    )
    op.bulk_insert(
        agreements,
        [
            {
                "district_id": district,
                "reference": f"PUB-{district.upper()}-2023",
                # The eleven districts exist since 1 July 2023.
                "valid_from": date(2023, 7, 1),
                "valid_to": None,
                "sections": WITHOUT_FEE_BASIS if district == "skarholmen" else ALL_SECTIONS,
                "withheld_fields": "",
            }
            for district in DISTRICTS
        ],
    )


def downgrade() -> None:
    for table in ("agreements", "held_sweeps", "quarantine", "invoices", "person_records", "sources"):
        op.drop_table(table)
    shared_migrations.drop_outbox_and_leases()
    shared_migrations.drop_idempotency_keys()
    shared_migrations.drop_access_log()
