"""Small, valid directory objects for tests, each overridable field by field.

Shared by the directory's unit, integration and end-to-end tests, so it imports nothing but the domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any

from services.common.auth import Caller, Role
from services.directory.model import (
    Absence,
    Area,
    AssignmentRule,
    ContactPolicy,
    District,
    Officer,
    OfficerRole,
    PostalCodeRange,
    RuleSet,
    Unit,
    UnitSnapshot,
    WeeklyPeriod,
)

OFFICE_HOURS = tuple(WeeklyPeriod(day, time(8, 0), time(16, 30)) for day in range(1, 6))
MONDAY_NOON = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)


def caller(role: Role, *, unit: str | None = None, subject: str | None = None) -> Caller:
    return Caller(
        subject=subject or f"test-{role.value}",
        roles=frozenset({role}),
        unit=unit,
        person_number=None,
        token="",
    )


ADMIN = caller(Role.DIRECTORY_ADMIN)
AGENT = caller(Role.AGENT)


def district(district_id: str = "farsta", **changes: Any) -> District:
    values: dict[str, Any] = {
        "district_id": district_id,
        "display_name": district_id.title(),
        "valid_from": None,
        "valid_to": None,
        "successor_id": None,
    }
    return District(**(values | changes))


def unit(unit_id: str = "farsta-bestallarenhet", **changes: Any) -> Unit:
    values: dict[str, Any] = {
        "unit_id": unit_id,
        "display_name": "Beställarenheten Farsta",
        "district_id": "farsta",
        "mailbox": "aldreomsorg.farsta@example.stockholm.se",
        "acute_phone": "08-508 18 000",
        "acute_hours": OFFICE_HOURS,
        "contact_policy": ContactPolicy.OPEN_PHONE,
        "reception_phone": "08-508 18 100",
    }
    return Unit(**(values | changes))


def officer(officer_id: str, **changes: Any) -> Officer:
    given, _, family = officer_id.partition("-")
    values: dict[str, Any] = {
        "officer_id": officer_id,
        "unit_id": "farsta-bestallarenhet",
        "given_name": given.title(),
        "family_name": (family or "Andersson").title(),
        "role": OfficerRole.ORDINARY_HOUSING,
        "languages": ("sv",),
        "phone": "08-508 18 200",
        "email": f"{officer_id}@example.stockholm.se",
        "caseload": 60,
    }
    return Officer(**(values | changes))


def area(area_id: str = "farsta", *ranges: tuple[str, str]) -> Area:
    postal = tuple(PostalCodeRange(first, last) for first, last in ranges) or (
        PostalCodeRange("12340", "12349"),
    )
    return Area(area_id, area_id.title(), postal)


def rule(
    rule_id: str,
    first: int,
    last: int,
    *,
    area_id: str = "farsta",
    role: OfficerRole | None = None,
    officer_id: str | None = None,
    team: str | None = None,
) -> AssignmentRule:
    if officer_id is None and team is None:
        officer_id = "anna-berg"
    return AssignmentRule(
        rule_id=rule_id,
        area_id=area_id,
        role=role,
        first_birth_day=first,
        last_birth_day=last,
        officer_id=officer_id,
        team=team,
    )


def absence(officer_id: str, substitute_id: str, start: datetime, end: datetime, **changes: Any) -> Absence:
    values: dict[str, Any] = {
        "absence_id": f"{start:%Y%m%d%H%M}-{end:%Y%m%d%H%M}",
        "officer_id": officer_id,
        "start": start,
        "end": end,
        "substitute_id": substitute_id,
    }
    return Absence(**(values | changes))


def snapshot(
    the_unit: Unit,
    officers: list[Officer],
    *,
    areas: tuple[Area, ...] = (),
    rules: tuple[AssignmentRule, ...] = (),
    absences: Sequence[Absence] = (),
) -> UnitSnapshot:
    by_officer: dict[str, list[Absence]] = {}
    for item in absences:
        by_officer.setdefault(item.officer_id, []).append(item)
    return UnitSnapshot(
        unit=the_unit,
        rule_set=RuleSet(unit_id=the_unit.unit_id, areas=areas, rules=rules),
        officers={o.officer_id: o for o in officers},
        absences=by_officer,
    )
