"""The directory's domain: districts, units, officers, absences and assignment rules, and their rules.

Pure Python: no SQLAlchemy, no gRPC, no generated code. Validation collects every violation with the
field it concerns, so a caller can fix a whole request at once.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from enum import StrEnum
from typing import TypeVar

from services.common.errors import FieldViolation, InvalidArgument

ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
POSTAL_CODE = re.compile(r"^\d{5}$")
PHONE = re.compile(r"^\+?[0-9][0-9 \-]{4,22}[0-9]$")
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[a-z]{2,}$", re.IGNORECASE)
LANGUAGE = re.compile(r"^[a-z]{2,3}$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
TEAM = re.compile(r"^[\wÅÄÖåäöÉé .-]{1,60}$")
MAX_NAME = 200

E = TypeVar("E", bound=StrEnum)


class ContactPolicy(StrEnum):
    CONTACT_CENTER_ONLY = "contact_center_only"
    PHONE_HOURS = "phone_hours"
    OPEN_PHONE = "open_phone"
    DIRECT_NUMBERS = "direct_numbers"


class OfficerRole(StrEnum):
    ORDINARY_HOUSING = "ordinary_housing"
    DISCHARGE_PLANNING = "discharge_planning"
    SPECIAL_HOUSING = "special_housing"
    PREVENTION = "prevention"
    TRANSPORT_SERVICE = "transport_service"
    CARER_SUPPORT = "carer_support"
    FEE_OFFICER = "fee_officer"
    UNIT_MANAGER = "unit_manager"


class Specialty(StrEnum):
    LSS = "lss"
    VIOLENCE_IN_CLOSE_RELATIONSHIPS = "violence_in_close_relationships"
    DEMENTIA = "dementia"
    SIP = "sip"
    HOUSING_COORDINATION = "housing_coordination"
    FOLLOW_UP = "follow_up"


class Decision(StrEnum):
    NAMED_OFFICER = "named_officer"
    ASSIGNMENT_RULE = "assignment_rule"
    SPECIALIST = "specialist"
    UNIT_INTAKE = "unit_intake"


def parse_enum(kind: type[E], raw: str, field_name: str) -> E:
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidArgument.field(field_name, f"{raw!r} is not one of {allowed}") from None


@dataclass(frozen=True)
class WeeklyPeriod:
    day_of_week: int
    start: time
    end: time

    def covers(self, at: datetime) -> bool:
        return at.isoweekday() == self.day_of_week and self.start <= at.time() < self.end


@dataclass(frozen=True)
class District:
    district_id: str
    display_name: str
    valid_from: date | None
    valid_to: date | None
    successor_id: str | None

    @property
    def name(self) -> str:
        return f"districts/{self.district_id}"

    def is_current(self, on: date) -> bool:
        return (self.valid_from is None or self.valid_from <= on) and (
            self.valid_to is None or on <= self.valid_to
        )


@dataclass(frozen=True)
class Unit:
    unit_id: str
    display_name: str
    district_id: str
    mailbox: str
    acute_phone: str
    acute_hours: tuple[WeeklyPeriod, ...]
    contact_policy: ContactPolicy
    reception_phone: str = ""
    phone_hours: tuple[WeeklyPeriod, ...] = ()
    team_model: bool = False
    revision: int = 1
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def name(self) -> str:
        return f"units/{self.unit_id}"


@dataclass(frozen=True)
class ContactRoute:
    contact_policy: ContactPolicy
    phone: str
    hours: tuple[WeeklyPeriod, ...]
    description: str


def public_route(unit: Unit, contact_center_phone: str) -> ContactRoute:
    """How the public reaches the unit under its chosen policy."""
    match unit.contact_policy:
        case ContactPolicy.CONTACT_CENTER_ONLY:
            return ContactRoute(
                unit.contact_policy,
                contact_center_phone,
                (),
                "Ring Äldre direkt, som tar emot alla frågor till enheten.",
            )
        case ContactPolicy.PHONE_HOURS:
            return ContactRoute(
                unit.contact_policy,
                unit.reception_phone,
                unit.phone_hours,
                "Ring enhetens telefontid, eller Äldre direkt övrig tid.",
            )
        case ContactPolicy.OPEN_PHONE:
            return ContactRoute(
                unit.contact_policy,
                unit.reception_phone,
                (),
                "Ring enhetens mottagningstelefon under kontorstid.",
            )
        case ContactPolicy.DIRECT_NUMBERS:
            return ContactRoute(
                unit.contact_policy,
                unit.reception_phone or contact_center_phone,
                (),
                "Ring din handläggare direkt, eller enhetens växel.",
            )


@dataclass(frozen=True)
class Officer:
    officer_id: str
    unit_id: str
    given_name: str
    family_name: str
    role: OfficerRole
    specialties: tuple[Specialty, ...] = ()
    languages: tuple[str, ...] = ()
    team: str = ""
    phone: str = ""
    email: str = ""
    active: bool = True
    caseload: int = 0
    revision: int = 1
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def name(self) -> str:
        return f"officers/{self.officer_id}"

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


@dataclass(frozen=True)
class Absence:
    absence_id: str
    officer_id: str
    start: datetime
    end: datetime
    substitute_id: str
    create_time: datetime | None = None

    @property
    def name(self) -> str:
        return f"officers/{self.officer_id}/absences/{self.absence_id}"

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class PostalCodeRange:
    first: str
    last: str

    def contains(self, postal_code: str) -> bool:
        return self.first <= postal_code <= self.last


@dataclass(frozen=True)
class Area:
    area_id: str
    display_name: str
    postal_code_ranges: tuple[PostalCodeRange, ...]

    def contains(self, postal_code: str) -> bool:
        return any(r.contains(postal_code) for r in self.postal_code_ranges)


@dataclass(frozen=True)
class AssignmentRule:
    rule_id: str
    area_id: str
    role: OfficerRole | None
    first_birth_day: int
    last_birth_day: int
    officer_id: str | None = None
    team: str | None = None

    def covers(self, birth_day: int) -> bool:
        return self.first_birth_day <= birth_day <= self.last_birth_day


# Sweden has about 10,000 postal codes; Stockholm a few thousand. The bound keeps garbage input from
# growing the memory of a rule set without end.
_POSTAL_CODES_REMEMBERED = 20_000


@dataclass(frozen=True)
class RuleSet:
    unit_id: str
    areas: tuple[Area, ...] = ()
    rules: tuple[AssignmentRule, ...] = ()
    revision: int = 0
    update_time: datetime | None = None
    _areas_by_postal_code: dict[str, Area | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def name(self) -> str:
        return f"units/{self.unit_id}/assignmentRules"

    def area_of(self, postal_code: str) -> Area | None:
        # Asked for every routing by postal code, of every unit; the answers are kept with the rule set,
        # which is replaced, not changed, when its rules are.
        try:
            return self._areas_by_postal_code[postal_code]
        except KeyError:
            found = next((a for a in self.areas if a.contains(postal_code)), None)
            if len(self._areas_by_postal_code) < _POSTAL_CODES_REMEMBERED:
                self._areas_by_postal_code[postal_code] = found
            return found

    def rule_for(self, area_id: str, role: OfficerRole | None, birth_day: int) -> AssignmentRule | None:
        return next(
            (r for r in self.rules if r.area_id == area_id and r.role == role and r.covers(birth_day)),
            None,
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
        raise InvalidArgument.field(field_name, f"{raw!r} is not a time of day HH:MM")
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
                field_name, f"{part!r} is not a weekly period like '1 08:00-16:30' (ISO day, start-end)"
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
            out.append(FieldViolation(f"{prefix}.languages[{index}]", f"{language!r} is not an ISO 639 code"))
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
            out.append(FieldViolation(f"{where}.area_id", f"area {area.area_id!r} is defined twice"))
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
                        f"postal codes {postal_range.first}-{postal_range.last} of area {area_id!r} overlap "
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
            out.append(FieldViolation(f"{where}.rule_id", f"rule {rule.rule_id!r} is defined twice"))
        rule_ids.add(rule.rule_id)
        if rule.area_id not in area_ids:
            out.append(
                FieldViolation(f"{where}.area_id", f"area {rule.area_id!r} is not one of the unit's areas")
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
                FieldViolation(f"{where}.team", f"team {rule.team!r} has no active officer in this unit")
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
                        f"rule {rule.rule_id!r} leaves days {expected}–{rule.first_birth_day - 1} uncovered "
                        f"in area {area_id!r} ({need})",
                    )
                )
            elif rule.first_birth_day < expected:
                out.append(
                    FieldViolation(
                        where,
                        f"rule {rule.rule_id!r} overlaps days {rule.first_birth_day}–"
                        f"{min(expected - 1, rule.last_birth_day)} in area {area_id!r} ({need})",
                    )
                )
            expected = max(expected, rule.last_birth_day + 1)
        if expected <= 31:
            index, last = ordered[-1]
            out.append(
                FieldViolation(
                    f"{prefix}.rules[{index}]",
                    f"rule {last.rule_id!r} leaves days {expected}–31 uncovered in area {area_id!r} ({need})",
                )
            )
    return out


def raise_if(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(violations)


# ---- who is responsible ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Responsible:
    """The answer of ResolveResponsible."""

    unit: Unit
    district: District
    decision: Decision
    officer: Officer | None = None
    absent_officer: Officer | None = None
    team: str = ""
    team_members: tuple[Officer, ...] = ()
    rule_id: str = ""
    area_id: str = ""


@dataclass
class UnitSnapshot:
    """What resolving needs of one unit, read in one go."""

    unit: Unit
    rule_set: RuleSet
    officers: dict[str, Officer] = field(default_factory=dict)
    absences: dict[str, list[Absence]] = field(default_factory=dict)
    # The unit's active managers, to whom overdue cases escalate.
    managers: tuple[Officer, ...] = ()
    _bounds: list[datetime] | None = field(default=None, init=False, repr=False, compare=False)

    def absence_of(self, officer_id: str, at: datetime) -> Absence | None:
        return next((a for a in self.absences.get(officer_id, []) if a.covers(at)), None)

    def period_of(self, at: datetime) -> int:
        """The stretch of time between two absence boundaries that `at` falls in.

        Absences cover [start, end), so at any two moments of one stretch the same officers are away:
        whatever depends on time alone answers the same within it.
        """
        if self._bounds is None:
            self._bounds = sorted(
                {t for spans in self.absences.values() for a in spans for t in (a.start, a.end)}
            )
        return bisect.bisect_right(self._bounds, at)


MAX_SUBSTITUTE_HOPS = 5


def present_stand_in(
    snapshot: UnitSnapshot, officer: Officer, at: datetime
) -> tuple[Officer | None, Officer | None]:
    """The officer to name and the absent one they stand in for; follows substitutes of substitutes."""
    current = officer
    for _ in range(MAX_SUBSTITUTE_HOPS):
        absence = snapshot.absence_of(current.officer_id, at)
        if absence is None and current.active:
            return current, (officer if current is not officer else None)
        next_id = absence.substitute_id if absence else None
        substitute = snapshot.officers.get(next_id) if next_id else None
        if substitute is None:
            return None, officer
        current = substitute
    return None, officer


def resolve_in_unit(
    snapshot: UnitSnapshot,
    *,
    district: District,
    birth_day: int | None,
    postal_code: str | None,
    need_role: OfficerRole | None,
    need_specialty: Specialty | None,
    named_officer: Officer | None,
    at: datetime,
) -> Responsible:
    """Named officer first, then the unit's rules for the need, then a specialist, then the unit's intake."""
    base = Responsible(unit=snapshot.unit, district=district, decision=Decision.UNIT_INTAKE)
    area = snapshot.rule_set.area_of(postal_code) if postal_code else None
    if area is None and len(snapshot.rule_set.areas) == 1:
        area = snapshot.rule_set.areas[0]
    if area is not None:
        base = replace(base, area_id=area.area_id)

    if named_officer is not None and named_officer.unit_id == snapshot.unit.unit_id:
        present, absent = present_stand_in(snapshot, named_officer, at)
        if present is not None:
            return replace(base, decision=Decision.NAMED_OFFICER, officer=present, absent_officer=absent)

    if area is not None and need_specialty is None and birth_day is not None:
        rule = snapshot.rule_set.rule_for(area.area_id, need_role, birth_day)
        if rule is not None:
            decided = replace(base, decision=Decision.ASSIGNMENT_RULE, rule_id=rule.rule_id)
            if rule.team is not None:
                members = tuple(
                    sorted(
                        (
                            o
                            for o in snapshot.officers.values()
                            if o.team == rule.team
                            and o.active
                            and snapshot.absence_of(o.officer_id, at) is None
                        ),
                        key=lambda o: o.officer_id,
                    )
                )
                return replace(decided, team=rule.team, team_members=members)
            ruled = snapshot.officers.get(rule.officer_id or "")
            if ruled is not None:
                present, absent = present_stand_in(snapshot, ruled, at)
                if present is not None:
                    return replace(decided, officer=present, absent_officer=absent)
                return replace(base, absent_officer=absent)

    if need_role is not None or need_specialty is not None:
        candidates = [
            o
            for o in snapshot.officers.values()
            if o.active
            and (need_role is None or o.role is need_role)
            and (need_specialty is None or need_specialty in o.specialties)
            and snapshot.absence_of(o.officer_id, at) is None
        ]
        if candidates:
            chosen = min(candidates, key=lambda o: (o.caseload, o.officer_id))
            return replace(base, decision=Decision.SPECIALIST, officer=chosen)
    return base


def may_see_direct_numbers(*, unit: Unit, caller_unit_id: str | None, is_admin: bool) -> bool:
    """Direct numbers of a unit reached only through Äldre direkt stay with its own staff and the admins."""
    if unit.contact_policy is not ContactPolicy.CONTACT_CENTER_ONLY:
        return True
    return is_admin or caller_unit_id == unit.unit_id
