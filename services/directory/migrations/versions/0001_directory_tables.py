"""The directory's tables, with the districts of Stockholm as reference data

Revision ID: 0001
Revises:
Created: 2026-11-23 13:46:28.717292
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


def upgrade() -> None:
    shared_migrations.create_access_log()
    op.create_table(
        "area_postal_ranges",
        sa.Column("unit_id", sa.String(length=63), nullable=False),
        sa.Column("area_id", sa.String(length=63), nullable=False),
        sa.Column("first", sa.String(length=5), nullable=False),
        sa.Column("last", sa.String(length=5), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "area_id", "first"),
    )
    with op.batch_alter_table("area_postal_ranges", schema=None) as batch_op:
        batch_op.create_index("ix_area_postal_ranges_first_last", ["first", "last"], unique=False)

    op.create_table(
        "directory_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "districts",
        sa.Column("district_id", sa.String(length=63), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("successor_id", sa.String(length=63), nullable=True),
        sa.ForeignKeyConstraint(
            ["successor_id"],
            ["districts.district_id"],
        ),
        sa.PrimaryKeyConstraint("district_id"),
    )
    shared_migrations.create_idempotency_keys()
    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(length=63), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("district_id", sa.String(length=63), nullable=False),
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("acute_phone", sa.String(length=40), nullable=False),
        sa.Column("acute_hours", sa.Text(), nullable=False),
        sa.Column("contact_policy", sa.String(length=40), nullable=False),
        sa.Column("reception_phone", sa.String(length=40), nullable=False),
        sa.Column("phone_hours", sa.Text(), nullable=False),
        sa.Column("team_model", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.district_id"],
        ),
        sa.PrimaryKeyConstraint("unit_id"),
    )
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_units_district_id"), ["district_id"], unique=False)

    op.create_table(
        "areas",
        sa.Column("unit_id", sa.String(length=63), nullable=False),
        sa.Column("area_id", sa.String(length=63), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.unit_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("unit_id", "area_id"),
    )
    op.create_table(
        "officers",
        sa.Column("officer_id", sa.String(length=63), nullable=False),
        sa.Column("unit_id", sa.String(length=63), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=False),
        sa.Column("family_name", sa.String(length=200), nullable=False),
        sa.Column("given_key", sa.String(length=200), nullable=False),
        sa.Column("family_key", sa.String(length=200), nullable=False),
        sa.Column("full_key", sa.String(length=401), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("team", sa.String(length=60), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("caseload", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.unit_id"],
        ),
        sa.PrimaryKeyConstraint("officer_id"),
    )
    with op.batch_alter_table("officers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_officers_family_key"), ["family_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_officers_full_key"), ["full_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_officers_given_key"), ["given_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_officers_role"), ["role"], unique=False)
        batch_op.create_index(batch_op.f("ix_officers_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "rule_sets",
        sa.Column("unit_id", sa.String(length=63), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.unit_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("unit_id"),
    )
    op.create_table(
        "absences",
        sa.Column("officer_id", sa.String(length=63), nullable=False),
        sa.Column("absence_id", sa.String(length=63), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("substitute_id", sa.String(length=63), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["officer_id"], ["officers.officer_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["substitute_id"],
            ["officers.officer_id"],
        ),
        sa.PrimaryKeyConstraint("officer_id", "absence_id"),
    )
    with op.batch_alter_table("absences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_absences_end_time"), ["end_time"], unique=False)

    op.create_table(
        "assignment_rules",
        sa.Column("unit_id", sa.String(length=63), nullable=False),
        sa.Column("rule_id", sa.String(length=63), nullable=False),
        sa.Column("area_id", sa.String(length=63), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=True),
        sa.Column("first_birth_day", sa.Integer(), nullable=False),
        sa.Column("last_birth_day", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.String(length=63), nullable=True),
        sa.Column("team", sa.String(length=60), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["officers.officer_id"],
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.unit_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("unit_id", "rule_id"),
    )
    op.create_table(
        "officer_languages",
        sa.Column("officer_id", sa.String(length=63), nullable=False),
        sa.Column("language", sa.String(length=3), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["officer_id"], ["officers.officer_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("officer_id", "language"),
    )
    with op.batch_alter_table("officer_languages", schema=None) as batch_op:
        batch_op.create_index("ix_officer_languages_language", ["language", "officer_id"], unique=False)

    op.create_table(
        "officer_specialties",
        sa.Column("officer_id", sa.String(length=63), nullable=False),
        sa.Column("specialty", sa.String(length=60), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["officer_id"], ["officers.officer_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("officer_id", "specialty"),
    )
    with op.batch_alter_table("officer_specialties", schema=None) as batch_op:
        batch_op.create_index("ix_officer_specialties_specialty", ["specialty", "officer_id"], unique=False)

    # Stockholm's districts: eleven since 1 July 2023 (Rinkeby-Kista and Spånga-Tensta became Järva,
    # Norrmalm and Östermalm became Norra innerstaden); Hägersten-Liljeholmen and Älvsjö became
    # Hägersten-Älvsjö on 1 January 2020. Frozen here: later changes come in later migrations.
    districts = sa.table(
        "districts",
        sa.column("district_id", sa.String),
        sa.column("display_name", sa.String),
        sa.column("valid_from", sa.Date),
        sa.column("valid_to", sa.Date),
        sa.column("successor_id", sa.String),
    )
    current = [
        ("jarva", "Järva", date(2023, 7, 1)),
        ("norra-innerstaden", "Norra innerstaden", date(2023, 7, 1)),
        ("bromma", "Bromma", None),
        ("hasselby-vallingby", "Hässelby-Vällingby", None),
        ("kungsholmen", "Kungsholmen", None),
        ("sodermalm", "Södermalm", None),
        ("enskede-arsta-vantor", "Enskede-Årsta-Vantör", None),
        ("farsta", "Farsta", None),
        ("skarpnack", "Skarpnäck", None),
        ("hagersten-alvsjo", "Hägersten-Älvsjö", date(2020, 1, 1)),
        ("skarholmen", "Skärholmen", None),
    ]
    retired = [
        ("rinkeby-kista", "Rinkeby-Kista", date(2023, 6, 30), "jarva"),
        ("spanga-tensta", "Spånga-Tensta", date(2023, 6, 30), "jarva"),
        ("norrmalm", "Norrmalm", date(2023, 6, 30), "norra-innerstaden"),
        ("ostermalm", "Östermalm", date(2023, 6, 30), "norra-innerstaden"),
        ("hagersten-liljeholmen", "Hägersten-Liljeholmen", date(2019, 12, 31), "hagersten-alvsjo"),
        ("alvsjo", "Älvsjö", date(2019, 12, 31), "hagersten-alvsjo"),
    ]
    op.bulk_insert(
        districts,
        [
            {"district_id": i, "display_name": n, "valid_from": f, "valid_to": None, "successor_id": None}
            for i, n, f in current
        ]
        + [
            {"district_id": i, "display_name": n, "valid_from": None, "valid_to": t, "successor_id": s}
            for i, n, t, s in retired
        ],
    )
    op.bulk_insert(
        sa.table("directory_revision", sa.column("id", sa.Integer), sa.column("revision", sa.Integer)),
        [{"id": 1, "revision": 0}],
    )


def downgrade() -> None:
    with op.batch_alter_table("officer_specialties", schema=None) as batch_op:
        batch_op.drop_index("ix_officer_specialties_specialty")

    op.drop_table("officer_specialties")
    with op.batch_alter_table("officer_languages", schema=None) as batch_op:
        batch_op.drop_index("ix_officer_languages_language")

    op.drop_table("officer_languages")
    op.drop_table("assignment_rules")
    with op.batch_alter_table("absences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_absences_end_time"))

    op.drop_table("absences")
    op.drop_table("rule_sets")
    with op.batch_alter_table("officers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_officers_unit_id"))
        batch_op.drop_index(batch_op.f("ix_officers_role"))
        batch_op.drop_index(batch_op.f("ix_officers_given_key"))
        batch_op.drop_index(batch_op.f("ix_officers_full_key"))
        batch_op.drop_index(batch_op.f("ix_officers_family_key"))

    op.drop_table("officers")
    op.drop_table("areas")
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_units_district_id"))

    op.drop_table("units")
    shared_migrations.drop_idempotency_keys()
    op.drop_table("districts")
    op.drop_table("directory_revision")
    with op.batch_alter_table("area_postal_ranges", schema=None) as batch_op:
        batch_op.drop_index("ix_area_postal_ranges_first_last")

    op.drop_table("area_postal_ranges")
    shared_migrations.drop_access_log()
