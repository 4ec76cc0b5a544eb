"""The directory's validation: every violation collected with the field it concerns, so that a caller can
fix a whole request at once."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import time

from services.common.errors import FieldViolation, InvalidArgument, quoted
from services.directory.model.directory import (
    EMAIL,
    HHMM,
    ID_PATTERN,
    LANGUAGE,
    MAX_NAME,
    PHONE,
    POSTAL_CODE,
    TEAM,
    Absence,
    Area,
    AssignmentRule,
    ContactPolicy,
    Officer,
    OfficerRole,
    PostalCodeRange,
    RuleSet,
    Unit,
    WeeklyPeriod,
)

# ---- validation -----------------------------------------------------------------------------------------


def _check_id(value: str, field_name: str, out: list[FieldViolation]) -> None:
    if not ID_PATTERN.match(value):
        out.append(FieldViolation(field_name, "must be 1 to 63 lower-case letters, digits or hyphens"))


def _check_text(value: str, field_name: str, out: list[FieldViolation], *, required: bool = True) -> None:
    if required and not value.strip():
        out.append(FieldViolation(field_name, "is required"))
    elif len(value) > MAX_NAME:
        out.append(FieldViolation(field_name, f"must be at most {MAX_NAME} characters"))


def _check_phone(value: str, field_name: str, out: list[FieldViolation], *, required: bool) -> None:
    if not value:
        if required:
            out.append(FieldViolation(field_name, "is required"))
    elif not PHONE.match(value):
        out.append(
            FieldViolation(
                field_name, "is not a phone number (digits, spaces and hyphens, e.g. 08-508 12 345)"
            )
        )


def _check_email(value: str, field_name: str, out: list[FieldViolation], *, required: bool) -> None:
    if not value:
        if required:
            out.append(FieldViolation(field_name, "is required"))
    elif len(value) > MAX_NAME:
        # The columns hold 200 characters; a longer address would fail in the database instead.
        out.append(FieldViolation(field_name, f"must be at most {MAX_NAME} characters"))
    elif not EMAIL.match(value):
        out.append(FieldViolation(field_name, "is not an e-mail address"))


def check_periods(periods: Sequence[WeeklyPeriod], field_name: str, out: list[FieldViolation]) -> None:
    by_day: dict[int, list[WeeklyPeriod]] = defaultdict(list)
    for index, period in enumerate(periods):
        where = f"{field_name}[{index}]"
        if not 1 <= period.day_of_week <= 7:
            out.append(FieldViolation(f"{where}.day_of_week", "must be 1 (Monday) to 7 (Sunday)"))
        if period.end <= period.start:
            out.append(FieldViolation(f"{where}.end_time", "must be after start_time"))
        by_day[period.day_of_week].append(period)
    for day, day_periods in by_day.items():
        ordered = sorted(day_periods, key=lambda p: p.start)
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end:
                out.append(FieldViolation(field_name, f"periods overlap on day {day}"))


def parse_hhmm(raw: str, field_name: str) -> time:
    if not HHMM.match(raw):
        raise InvalidArgument.field(field_name, f"{quoted(raw)} is not a time of day HH:MM")
    return time(int(raw[:2]), int(raw[3:]))


def format_periods(periods: Sequence[WeeklyPeriod]) -> str:
    """The text form used in CSV and storage: "1 08:00-16:30;5 08:00-16:00"."""
    return ";".join(f"{p.day_of_week} {p.start:%H:%M}-{p.end:%H:%M}" for p in periods)


def parse_periods(text: str, field_name: str = "hours") -> tuple[WeeklyPeriod, ...]:
    periods: list[WeeklyPeriod] = []
    for part in filter(None, (chunk.strip() for chunk in text.split(";"))):
        day, _, span = part.partition(" ")
        start, _, end = span.strip().partition("-")
        if not day.isdigit() or not start or not end:
            raise InvalidArgument.field(
                field_name, f"{quoted(part)} is not a weekly period like '1 08:00-16:30' (ISO day, start-end)"
            )
        periods.append(
            WeeklyPeriod(int(day), parse_hhmm(start.strip(), field_name), parse_hhmm(end.strip(), field_name))
        )
    return tuple(periods)


def unit_violations(unit: Unit, *, prefix: str = "unit") -> list[FieldViolation]:
    out: list[FieldViolation] = []
    _check_id(unit.unit_id, f"{prefix}.name", out)
    _check_text(unit.display_name, f"{prefix}.display_name", out)
    _check_id(unit.district_id, f"{prefix}.district", out)
    _check_email(unit.mailbox, f"{prefix}.mailbox", out, required=True)
    _check_phone(unit.acute_phone, f"{prefix}.acute_phone", out, required=True)
    check_periods(unit.acute_hours, f"{prefix}.acute_hours", out)
    needs_phone = unit.contact_policy in (ContactPolicy.PHONE_HOURS, ContactPolicy.OPEN_PHONE)
    _check_phone(unit.reception_phone, f"{prefix}.reception_phone", out, required=needs_phone)
    check_periods(unit.phone_hours, f"{prefix}.phone_hours", out)
    if unit.contact_policy is ContactPolicy.PHONE_HOURS and not unit.phone_hours:
        out.append(
            FieldViolation(f"{prefix}.phone_hours", "is required when the contact policy is phone hours")
        )
    if unit.contact_policy is not ContactPolicy.PHONE_HOURS and unit.phone_hours:
        out.append(FieldViolation(f"{prefix}.phone_hours", "is only for the phone-hours contact policy"))
    if unit.contact_policy is ContactPolicy.CONTACT_CENTER_ONLY and unit.reception_phone:
        out.append(
            FieldViolation(f"{prefix}.reception_phone", "must be empty when Äldre direkt is the only way in")
        )
    return out


def officer_violations(officer: Officer, *, prefix: str = "officer") -> list[FieldViolation]:
    out: list[FieldViolation] = []
    _check_id(officer.officer_id, f"{prefix}.name", out)
    _check_id(officer.unit_id, f"{prefix}.unit", out)
    _check_text(officer.given_name, f"{prefix}.given_name", out)
    _check_text(officer.family_name, f"{prefix}.family_name", out)
    for index, language in enumerate(officer.languages):
        if not LANGUAGE.match(language):
            out.append(
                FieldViolation(f"{prefix}.languages[{index}]", f"{quoted(language)} is not an ISO 639 code")
            )
    if len(set(officer.languages)) != len(officer.languages):
        out.append(FieldViolation(f"{prefix}.languages", "lists a language twice"))
    if len(set(officer.specialties)) != len(officer.specialties):
        out.append(FieldViolation(f"{prefix}.specialties", "lists a specialty twice"))
    if officer.team and not TEAM.match(officer.team):
        out.append(FieldViolation(f"{prefix}.team", "must be 1 to 60 letters, digits, spaces, . or -"))
    _check_phone(officer.phone, f"{prefix}.phone", out, required=False)
    _check_email(officer.email, f"{prefix}.email", out, required=False)
    if not 0 <= officer.caseload <= 1000:
        out.append(FieldViolation(f"{prefix}.caseload", "must be between 0 and 1000"))
    return out


def absence_violations(
    absence: Absence, *, officer: Officer, substitute: Officer | None, prefix: str = "absence"
) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if absence.end <= absence.start:
        out.append(FieldViolation(f"{prefix}.end_time", "must be after start_time"))
    if substitute is None:
        out.append(FieldViolation(f"{prefix}.substitute", f"officers/{absence.substitute_id} does not exist"))
    elif substitute.officer_id == officer.officer_id:
        out.append(FieldViolation(f"{prefix}.substitute", "cannot be the absent officer"))
    elif substitute.unit_id != officer.unit_id:
        out.append(
            FieldViolation(
                f"{prefix}.substitute", f"must be an officer of the same unit, units/{officer.unit_id}"
            )
        )
    elif not substitute.active:
        out.append(FieldViolation(f"{prefix}.substitute", "is not an active officer"))
    return out


def rule_set_violations(
    rule_set: RuleSet,
    *,
    officers: dict[str, Officer],
    other_units_areas: Iterable[tuple[str, Area]] = (),
    prefix: str = "rule_set",
) -> list[FieldViolation]:
    """Checks areas and rules: each (area, need) covers days 1–31 with no gap and no overlap."""
    out: list[FieldViolation] = []
    area_ids: set[str] = set()
    own_ranges: list[tuple[str, PostalCodeRange]] = []
    for index, area in enumerate(rule_set.areas):
        where = f"{prefix}.areas[{index}]"
        _check_id(area.area_id, f"{where}.area_id", out)
        if area.area_id in area_ids:
            out.append(FieldViolation(f"{where}.area_id", f"area {quoted(area.area_id)} is defined twice"))
        area_ids.add(area.area_id)
        _check_text(area.display_name, f"{where}.display_name", out)
        if not area.postal_code_ranges:
            out.append(FieldViolation(f"{where}.postal_code_ranges", "needs at least one range"))
        for r_index, postal_range in enumerate(area.postal_code_ranges):
            r_where = f"{where}.postal_code_ranges[{r_index}]"
            if not (POSTAL_CODE.match(postal_range.first) and POSTAL_CODE.match(postal_range.last)):
                out.append(FieldViolation(r_where, "postal codes have five digits"))
            elif postal_range.last < postal_range.first:
                out.append(FieldViolation(r_where, "last must not be before first"))
            else:
                own_ranges.append((area.area_id, postal_range))
    foreign = list(other_units_areas)
    for area_id, postal_range in own_ranges:
        for other_area_id, other in [(a, r) for a, r in own_ranges if a != area_id] + [
            (f"units/{unit_id} area {area.area_id}", r)
            for unit_id, area in foreign
            for r in area.postal_code_ranges
        ]:
            if postal_range.first <= other.last and other.first <= postal_range.last:
                out.append(
                    FieldViolation(
                        f"{prefix}.areas",
                        f"postal codes {postal_range.first}-{postal_range.last} of area {quoted(area_id)} "
                        "overlap "
                        f"{other.first}-{other.last} of {other_area_id}",
                    )
                )
                break

    groups: dict[tuple[str, OfficerRole | None], list[tuple[int, AssignmentRule]]] = defaultdict(list)
    rule_ids: set[str] = set()
    teams = {o.team for o in officers.values() if o.team and o.active}
    for index, rule in enumerate(rule_set.rules):
        where = f"{prefix}.rules[{index}]"
        _check_id(rule.rule_id, f"{where}.rule_id", out)
        if rule.rule_id in rule_ids:
            out.append(FieldViolation(f"{where}.rule_id", f"rule {quoted(rule.rule_id)} is defined twice"))
        rule_ids.add(rule.rule_id)
        if rule.area_id not in area_ids:
            out.append(
                FieldViolation(
                    f"{where}.area_id", f"area {quoted(rule.area_id)} is not one of the unit's areas"
                )
            )
        if not (1 <= rule.first_birth_day <= rule.last_birth_day <= 31):
            out.append(
                FieldViolation(
                    f"{where}.first_birth_day",
                    "days must satisfy 1 <= first_birth_day <= last_birth_day <= 31",
                )
            )
            continue
        if (rule.officer_id is None) == (rule.team is None):
            out.append(FieldViolation(f"{where}.responsible", "name exactly one of officer or team"))
        elif rule.officer_id is not None:
            officer = officers.get(rule.officer_id)
            if officer is None:
                out.append(
                    FieldViolation(f"{where}.officer", f"officers/{rule.officer_id} is not in this unit")
                )
            elif not officer.active:
                out.append(FieldViolation(f"{where}.officer", f"officers/{rule.officer_id} is not active"))
        elif rule.team not in teams:
            out.append(
                FieldViolation(
                    f"{where}.team", f"team {quoted(rule.team)} has no active officer in this unit"
                )
            )
        groups[(rule.area_id, rule.role)].append((index, rule))

    for (area_id, role), members in groups.items():
        need = role.value if role else "general intake"
        ordered = sorted(members, key=lambda item: (item[1].first_birth_day, item[1].last_birth_day))
        expected = 1
        for index, rule in ordered:
            where = f"{prefix}.rules[{index}]"
            if rule.first_birth_day > expected:
                out.append(
                    FieldViolation(
                        where,
                        f"rule {quoted(rule.rule_id)} leaves days {expected}–{rule.first_birth_day - 1} "
                        "uncovered "
                        f"in area {quoted(area_id)} ({need})",
                    )
                )
            elif rule.first_birth_day < expected:
                out.append(
                    FieldViolation(
                        where,
                        f"rule {quoted(rule.rule_id)} overlaps days {rule.first_birth_day}–"
                        f"{min(expected - 1, rule.last_birth_day)} in area {quoted(area_id)} ({need})",
                    )
                )
            expected = max(expected, rule.last_birth_day + 1)
        if expected <= 31:
            index, last = ordered[-1]
            out.append(
                FieldViolation(
                    f"{prefix}.rules[{index}]",
                    f"rule {quoted(last.rule_id)} leaves days {expected}–31 uncovered "
                    f"in area {quoted(area_id)} ({need})",
                )
            )
    return out


def raise_if(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(violations)
