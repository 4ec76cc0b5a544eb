"""The fees service's tables and the shared ones: deferrals, issued bills and their lines, the call counts
each bill recorded, and the row bills are issued one at a time by

Revision ID: 0001
Revises:
Created: 2026-12-01 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common import shared_migrations

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    shared_migrations.create_access_log()
    shared_migrations.create_idempotency_keys()
    shared_migrations.create_outbox_and_leases()
    op.create_table(
        "deferrals",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("invoice_number", sa.String(100), nullable=False),
        sa.Column("person_number", sa.String(12), nullable=False),
        sa.Column("case_name", sa.String(40), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("amount_ore", sa.BigInteger(), nullable=False),
        sa.Column("original_due_date", sa.Date(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("refusal_reason", sa.String(200), server_default="", nullable=False),
        sa.Column("new_due_date", sa.Date(), nullable=True),
        sa.Column("finance_reference", sa.String(100), server_default="", nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("invoice_number", name="uq_deferrals_invoice_number"),
    )
    with op.batch_alter_table("deferrals", schema=None) as batch_op:
        batch_op.create_index("ix_deferrals_person_number", ["person_number"], unique=False)
    op.create_table(
        "bills",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("issue_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(255), nullable=False),
        sa.Column("base_fee_ore", sa.BigInteger(), nullable=False),
        sa.Column("uses_example_figures", sa.Boolean(), nullable=False),
        sa.Column("unattributed_contacts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("month"),
    )
    op.create_table(
        "bill_lines",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("payer", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("text", sa.String(300), nullable=False),
        sa.Column("amount_ore", sa.BigInteger(), nullable=False),
        sa.Column("refers_to", sa.Date(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=True),
        sa.Column("unit_price_ore", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["month"], ["bills.month"]),
        sa.PrimaryKeyConstraint("month", "position"),
    )
    op.create_table(
        "call_counts",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("recorded_in", sa.Date(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("month", "revision"),
    )
    op.create_table(
        "bill_issuing",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_issue_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(sa.table("bill_issuing", sa.column("id", sa.Integer())), [{"id": 1}])


def downgrade() -> None:
    for table in ("bill_issuing", "call_counts", "bill_lines", "bills"):
        op.drop_table(table)
    with op.batch_alter_table("deferrals", schema=None) as batch_op:
        batch_op.drop_index("ix_deferrals_person_number")
    op.drop_table("deferrals")
    shared_migrations.drop_outbox_and_leases()
    shared_migrations.drop_idempotency_keys()
    shared_migrations.drop_access_log()
