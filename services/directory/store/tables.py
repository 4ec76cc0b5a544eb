"""The directory's tables, with the ones every service shares."""

from __future__ import annotations

from sqlalchemy import (
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
)

from services.common.audit import AccessLogTables
from services.common.tables import SharedTables, shared_tables

metadata = MetaData()

districts = Table(
    "districts",
    metadata,
    Column("district_id", String(63), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("valid_from", Date),
    Column("valid_to", Date),
    Column("successor_id", String(63), ForeignKey("districts.district_id")),
)

units = Table(
    "units",
    metadata,
    Column("unit_id", String(63), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("district_id", String(63), ForeignKey("districts.district_id"), nullable=False, index=True),
    Column("mailbox", String(200), nullable=False),
    Column("acute_phone", String(40), nullable=False),
    Column("acute_hours", Text, nullable=False),
    Column("contact_policy", String(40), nullable=False),
    Column("reception_phone", String(40), nullable=False),
    Column("phone_hours", Text, nullable=False),
    Column("team_model", Boolean, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

officers = Table(
    "officers",
    metadata,
    Column("officer_id", String(63), primary_key=True),
    Column("unit_id", String(63), ForeignKey("units.unit_id"), nullable=False, index=True),
    Column("given_name", String(200), nullable=False),
    Column("family_name", String(200), nullable=False),
    # Lower-cased names, indexed, for lookups by name in SQL (reports, support); the service itself
    # searches its in-memory copy.
    Column("given_key", String(200), nullable=False, index=True),
    Column("family_key", String(200), nullable=False, index=True),
    Column("full_key", String(401), nullable=False, index=True),
    Column("role", String(40), nullable=False, index=True),
    Column("team", String(60), nullable=False),
    Column("phone", String(40), nullable=False),
    Column("email", String(200), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("caseload", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

officer_languages = Table(
    "officer_languages",
    metadata,
    Column("officer_id", String(63), ForeignKey("officers.officer_id", ondelete="CASCADE"), primary_key=True),
    Column("language", String(3), primary_key=True),
    Column("position", Integer, nullable=False),
    Index("ix_officer_languages_language", "language", "officer_id"),
)

officer_specialties = Table(
    "officer_specialties",
    metadata,
    Column("officer_id", String(63), ForeignKey("officers.officer_id", ondelete="CASCADE"), primary_key=True),
    Column("specialty", String(60), primary_key=True),
    Column("position", Integer, nullable=False),
    Index("ix_officer_specialties_specialty", "specialty", "officer_id"),
)

absences = Table(
    "absences",
    metadata,
    Column("officer_id", String(63), ForeignKey("officers.officer_id", ondelete="CASCADE"), primary_key=True),
    Column("absence_id", String(63), primary_key=True),
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("end_time", DateTime(timezone=True), nullable=False, index=True),
    Column("substitute_id", String(63), ForeignKey("officers.officer_id"), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
)

rule_sets = Table(
    "rule_sets",
    metadata,
    Column("unit_id", String(63), ForeignKey("units.unit_id", ondelete="CASCADE"), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

areas = Table(
    "areas",
    metadata,
    Column("unit_id", String(63), ForeignKey("units.unit_id", ondelete="CASCADE"), primary_key=True),
    Column("area_id", String(63), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("position", Integer, nullable=False),
)

area_postal_ranges = Table(
    "area_postal_ranges",
    metadata,
    Column("unit_id", String(63), primary_key=True),
    Column("area_id", String(63), primary_key=True),
    Column("first", String(5), primary_key=True),
    Column("last", String(5), nullable=False),
    Index("ix_area_postal_ranges_first_last", "first", "last"),
)

assignment_rules = Table(
    "assignment_rules",
    metadata,
    Column("unit_id", String(63), ForeignKey("units.unit_id", ondelete="CASCADE"), primary_key=True),
    Column("rule_id", String(63), primary_key=True),
    Column("area_id", String(63), nullable=False),
    Column("role", String(40)),
    Column("first_birth_day", Integer, nullable=False),
    Column("last_birth_day", Integer, nullable=False),
    Column("officer_id", String(63), ForeignKey("officers.officer_id")),
    Column("team", String(60)),
    Column("position", Integer, nullable=False),
)

# One row, bumped by every write, so that replicas know when their cached copy is stale.
directory_revision = Table(
    "directory_revision",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("revision", Integer, nullable=False),
)

shared: SharedTables = shared_tables(metadata)
idempotency_keys = shared.idempotency_keys
access_log: AccessLogTables = shared.access_log
