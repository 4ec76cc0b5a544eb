"""The case service's tables, with the reference data of DOMAIN.md

Revision ID: 0001
Revises:
Created: 2026-11-23 13:53:43.216951
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
    op.create_table(
        "cases",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("category", sa.String(length=63), nullable=False),
        sa.Column("case_type", sa.String(length=63), nullable=False),
        sa.Column("case_class", sa.String(length=63), nullable=False),
        sa.Column("district_id", sa.String(length=63), nullable=True),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("person_number", sa.String(length=12), nullable=True),
        sa.Column("acute", sa.Boolean(), nullable=False),
        sa.Column("feedback_channel", sa.String(length=20), nullable=False),
        sa.Column("feedback_window", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("first_channel", sa.String(length=20), nullable=False),
        sa.Column("unit_id", sa.String(length=63), nullable=True),
        sa.Column("officer_id", sa.String(length=63), nullable=True),
        sa.Column("team", sa.String(length=60), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("forward_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("deadline_kept", sa.Boolean(), nullable=True),
        sa.Column("escalation_emails", sa.Text(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("unit_mailbox", sa.String(length=200), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.Column("resolved_at_first_contact", sa.Boolean(), nullable=False),
        sa.Column("forwarded_ever", sa.Boolean(), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("contact_count", sa.Integer(), nullable=False),
        sa.Column("resolve_minutes", sa.Integer(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_month", sa.String(length=7), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("close_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("feedback_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_create_time"), ["create_time"], unique=False)
        batch_op.create_index("ix_cases_open_deadline", ["status", "overdue", "deadline"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_person_number"), ["person_number"], unique=False)
        batch_op.create_index("ix_cases_unit_queue", ["unit_id", "status", "deadline"], unique=False)

    shared_migrations.create_idempotency_keys()
    op.create_table(
        "reference_items",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("item_id", sa.String(length=63), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("need_role", sa.String(length=40), server_default="", nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("kind", "item_id"),
    )
    op.create_table(
        "case_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_events_case_id"), ["case_id"], unique=False)

    op.create_table(
        "consents",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("given_by", sa.String(length=20), nullable=False),
        sa.Column("verification", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoke_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_case_id"), ["case_id"], unique=False)

    op.create_table(
        "contacts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("party", sa.String(length=30), nullable=False),
        sa.Column("contact_name", sa.String(length=200), nullable=False),
        sa.Column("contact_phone", sa.String(length=40), nullable=False),
        sa.Column("contact_email", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_contacts_create_time"), ["create_time"], unique=False)

    op.create_table(
        "outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_case_id"), ["case_id"], unique=False)
        batch_op.create_index("ix_outbox_due", ["sent_time", "next_attempt_time"], unique=False)

    # Reference data: the main category, the case types of the 2007 pilot's statistics and of today's
    # information areas, and the five case classes (Stockholm stad, Äldre direkt: 2008 plan and 2022
    # annual report). need_role routes a forwarded case to the role its type calls for.
    items = sa.table(
        "reference_items",
        sa.column("kind", sa.String),
        sa.column("item_id", sa.String),
        sa.column("label", sa.String),
        sa.column("need_role", sa.String),
        sa.column("position", sa.Integer),
        sa.column("active", sa.Boolean),
    )
    categories = [("aldreomsorg", "Äldreomsorg", "")]
    case_types = [
        ("boende", "Boende", "special_housing"),
        ("dagverksamhet", "Dagverksamhet och träffpunkter", ""),
        ("fakturafraga", "Fakturafråga", "fee_officer"),
        ("fixaren", "Fixaren", ""),
        ("fardtjanst", "Färdtjänst", "transport_service"),
        ("god-man-forvaltare", "God man/förvaltare", ""),
        ("hemtjanst", "Hemtjänst", ""),
        ("kbh", "KBH", ""),
        ("kopplat-till-avd-ao", "Kopplat till avd ÄO", ""),
        ("landstingsfraga", "Landstingsfråga", ""),
        ("personlig-assistans-ledsagning", "Personlig assistans/ledsagning", ""),
        ("riksfardtjanst", "Riksfärdtjänst", "transport_service"),
        ("trygghetslarm", "Trygghetslarm", ""),
        ("utomkommunalt-sarskilt-boende", "Utomkommunal ansökan om särskilt boende", "special_housing"),
        ("anhorigstod", "Anhörigstöd", "carer_support"),
        ("vaktmastarservice", "Vaktmästarservice", ""),
        ("bostadsanpassning", "Bostadsanpassning", ""),
        ("heminstruktorer", "Heminstruktörer", ""),
    ]
    case_classes = [
        ("information-och-vagledning", "Information och vägledning", ""),
        ("ny-ansokan", "Ny ansökan", ""),
        ("status-pa-anmalan-arende", "Status på anmälan/ärende", ""),
        ("synpunkter-central-forvaltning", "Synpunkter central förvaltning", ""),
        ("synpunkter-utforarverksamheter", "Synpunkter utförarverksamheter", ""),
    ]
    op.bulk_insert(
        items,
        [
            {"kind": kind, "item_id": i, "label": label, "need_role": role, "position": n, "active": True}
            for kind, rows in (
                ("category", categories),
                ("case_type", case_types),
                ("case_class", case_classes),
            )
            for n, (i, label, role) in enumerate(rows)
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")
        batch_op.drop_index(batch_op.f("ix_outbox_case_id"))

    op.drop_table("outbox")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_create_time"))
        batch_op.drop_index(batch_op.f("ix_contacts_case_id"))

    op.drop_table("contacts")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_case_id"))

    op.drop_table("consents")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_events_case_id"))

    op.drop_table("case_events")
    op.drop_table("reference_items")
    shared_migrations.drop_idempotency_keys()
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_unit_queue")
        batch_op.drop_index(batch_op.f("ix_cases_person_number"))
        batch_op.drop_index("ix_cases_open_deadline")
        batch_op.drop_index(batch_op.f("ix_cases_create_time"))

    op.drop_table("cases")
    shared_migrations.drop_access_log()
