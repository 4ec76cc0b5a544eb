"""The directory's entities: districts, units with their contact policy, officers, absences, areas and
assignment rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import TypeVar

from services.common.errors import InvalidArgument, quoted

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
        raise InvalidArgument.field(field_name, f"{quoted(raw)} is not one of {allowed}") from None


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
