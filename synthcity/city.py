"""A made-up but plausible City of Stockholm: its districts' elderly-care units, their officers, areas,
assignment rules and absences.

Everything is drawn from one `random.Random(seed)`, in a fixed order, from ordered data (never from
set or dict iteration over hashed strings), so a seed gives the same city on every run and machine.

The shape follows the seeds: one beställarenhet per district, about 400 care-needs assessors in the
city with 60–90 cases each, cases distributed by geographic area and the person's day of birth, one
unit working in teams of three named officers, each unit choosing its own contact policy, and an acute
line per district reachable all day.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.common.errors import InvalidArgument, NotFound

# The directory's own vocabulary: the city is generated to be imported into it.
from services.directory.model import ContactPolicy, Specialty
from services.directory.model import OfficerRole as Role
from synthcity.names import OFFICER_ORIGIN_WEIGHTS, ORIGINS, ascii_slug

__all__ = [
    "DISTRICTS",
    "EMAIL_DOMAIN",
    "REFERENCE_DATE",
    "Absence",
    "Area",
    "AssignmentRule",
    "City",
    "ContactPolicy",
    "District",
    "NeighbourhoodSeed",
    "Officer",
    "PostalCodeRange",
    "Role",
    "Specialty",
    "Unit",
    "WeeklyPeriod",
    "generate_city",
]

# The day the synthetic city is "as of": absences are placed around it.
REFERENCE_DATE = date(2026, 11, 23)
# Every address the generator writes is in this domain, so no message can reach a real mailbox.
EMAIL_DOMAIN = "stockholm.example"  # RFC 2606: a name reserved for examples, never a real mailbox

_STOCKHOLM = ZoneInfo("Europe/Stockholm")

# A unit needs a manager, a few ordinary-housing assessors (three for a team) and a special-housing one.
_MIN_UNIT_STAFF = 6
_MAX_OFFICERS = 5000
_DAYS_IN_MONTH = 31
# Roughly how many staff a unit has for each of its areas.
_STAFF_PER_AREA = 12


@dataclass(frozen=True)
class NeighbourhoodSeed:
    """A neighbourhood a unit's area may be named after, with the postal prefix and town it is under."""

    name: str
    # Three digits; each district owns its prefixes, which is what keeps areas disjoint city-wide.
    postal_prefix: str
    postal_town: str


@dataclass(frozen=True)
class District:
    district_id: str
    display_name: str
    # Relative number of residents aged 65 and over; made up, but the big ones are the big ones.
    elderly_weight: float
    # How much more (or less) common than the city's average a background abroad is among residents.
    abroad_factor: float
    neighbourhoods: tuple[NeighbourhoodSeed, ...]


def _hoods(town: str, prefix: str, *names: str) -> tuple[NeighbourhoodSeed, ...]:
    return tuple(NeighbourhoodSeed(name, prefix, town) for name in names)


# The eleven districts since 1 July 2023.
DISTRICTS: tuple[District, ...] = (
    District(
        "jarva",
        "Järva",
        6.0,
        3.0,
        _hoods("Spånga", "163", "Rinkeby", "Tensta", "Hjulsta", "Spånga", "Bromsten")
        + _hoods("Kista", "164", "Husby", "Akalla", "Kista"),
    ),
    District(
        "norra-innerstaden",
        "Norra innerstaden",
        15.0,
        0.6,
        _hoods("Stockholm", "111", "Norrmalm")
        + _hoods("Stockholm", "113", "Vasastaden", "Sibirien")
        + _hoods("Stockholm", "114", "Östermalm", "Lärkstaden")
        + _hoods("Stockholm", "115", "Gärdet", "Hjorthagen", "Djurgården"),
    ),
    District(
        "bromma",
        "Bromma",
        11.0,
        0.6,
        _hoods("Bromma", "161", "Ulvsunda", "Mariehäll")
        + _hoods("Bromma", "167", "Traneberg", "Alvik", "Äppelviken", "Ålsten")
        + _hoods("Bromma", "168", "Abrahamsberg", "Åkeshov", "Nockeby", "Riksby", "Beckomberga"),
    ),
    District(
        "hasselby-vallingby",
        "Hässelby-Vällingby",
        9.0,
        1.3,
        _hoods("Vällingby", "162", "Vällingby", "Råcksta", "Grimsta", "Blackeberg", "Vinsta", "Nälsta")
        + _hoods("Hässelby", "165", "Hässelby gård", "Hässelby strand", "Kälvesta"),
    ),
    District(
        "kungsholmen",
        "Kungsholmen",
        7.0,
        0.7,
        _hoods(
            "Stockholm",
            "112",
            "Fridhemsplan",
            "Kristineberg",
            "Stadshagen",
            "Marieberg",
            "Essingeöarna",
            "Rålambshov",
        ),
    ),
    District(
        "sodermalm",
        "Södermalm",
        12.0,
        0.7,
        _hoods("Stockholm", "116", "Katarina", "Sofia", "Hammarby sjöstad")
        + _hoods("Stockholm", "117", "Högalid", "Hornstull", "Långholmen")
        + _hoods("Stockholm", "118", "Mariatorget", "Skanstull"),
    ),
    District(
        "enskede-arsta-vantor",
        "Enskede-Årsta-Vantör",
        11.0,
        1.2,
        _hoods("Årsta", "120", "Årsta", "Årstadal")
        + _hoods("Johanneshov", "121", "Johanneshov", "Slakthusområdet")
        + _hoods("Enskede", "122", "Enskede gård", "Enskededalen", "Stureby", "Svedmyra")
        + _hoods("Bandhagen", "124", "Bandhagen", "Högdalen", "Rågsved", "Hagsätra", "Örby"),
    ),
    District(
        "farsta",
        "Farsta",
        7.0,
        1.1,
        _hoods(
            "Farsta",
            "123",
            "Farsta",
            "Farsta strand",
            "Fagersjö",
            "Gubbängen",
            "Hökarängen",
            "Sköndal",
            "Larsboda",
            "Tallkrogen",
        ),
    ),
    District(
        "skarpnack",
        "Skarpnäck",
        5.0,
        0.9,
        _hoods(
            "Skarpnäck",
            "128",
            "Skarpnäcks gård",
            "Bagarmossen",
            "Björkhagen",
            "Kärrtorp",
            "Hammarbyhöjden",
            "Orhem",
        ),
    ),
    District(
        "hagersten-alvsjo",
        "Hägersten-Älvsjö",
        11.0,
        1.0,
        _hoods("Älvsjö", "125", "Älvsjö", "Solberga", "Långbro", "Herrängen")
        + _hoods("Hägersten", "126", "Liljeholmen", "Hägersten", "Mälarhöjden")
        + _hoods("Hägersten", "129", "Hägerstensåsen", "Västertorp", "Fruängen"),
    ),
    District(
        "skarholmen",
        "Skärholmen",
        5.0,
        2.5,
        _hoods("Skärholmen", "127", "Skärholmen", "Sätra", "Bredäng", "Vårberg"),
    ),
)


@dataclass(frozen=True)
class WeeklyPeriod:
    # ISO day of the week: 1 is Monday, 7 is Sunday.
    day_of_week: int
    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.day_of_week} {self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class PostalCodeRange:
    """A closed range of five-digit postal codes."""

    first: str
    last: str

    def __contains__(self, postal_code: object) -> bool:
        return isinstance(postal_code, str) and self.first <= postal_code <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1


@dataclass(frozen=True)
class Unit:
    unit_id: str
    display_name: str
    district_id: str
    mailbox: str
    acute_phone: str
    acute_hours: tuple[WeeklyPeriod, ...]
    contact_policy: ContactPolicy
    # Empty unless the policy is phone hours or open phone.
    reception_phone: str
    # Empty unless the policy is phone hours.
    phone_hours: tuple[WeeklyPeriod, ...]
    team_model: bool


@dataclass(frozen=True)
class Officer:
    officer_id: str
    unit_id: str
    given_name: str
    family_name: str
    role: Role
    specialties: tuple[Specialty, ...]
    languages: tuple[str, ...]
    # Empty when none; on the team-model unit the team shares responsibility for its people.
    team: str
    phone: str
    email: str
    active: bool
    caseload: int


@dataclass(frozen=True)
class Area:
    unit_id: str
    area_id: str
    display_name: str
    postal_code_ranges: tuple[PostalCodeRange, ...]
    # The postort written under the postal code in an address.
    postal_town: str

    def contains(self, postal_code: str) -> bool:
        return any(postal_code in postal_range for postal_range in self.postal_code_ranges)


@dataclass(frozen=True)
class AssignmentRule:
    unit_id: str
    rule_id: str
    area_id: str
    # None for the unit's general intake.
    role: Role | None
    first_birth_day: int
    last_birth_day: int
    # Exactly one of officer_id and team is non-empty.
    officer_id: str
    team: str


@dataclass(frozen=True)
class Absence:
    absence_id: str
    officer_id: str
    start_time: datetime
    end_time: datetime
    substitute_id: str

    def covers(self, at: datetime) -> bool:
        return self.start_time <= at < self.end_time


@dataclass(frozen=True)
class City:
    seed: int
    today: date
    units: tuple[Unit, ...]
    officers: tuple[Officer, ...]
    areas: tuple[Area, ...]
    rules: tuple[AssignmentRule, ...]
    absences: tuple[Absence, ...]
    _units_by_id: dict[str, Unit] = field(init=False, repr=False, compare=False)
    _officers_by_id: dict[str, Officer] = field(init=False, repr=False, compare=False)
    _areas_by_id: dict[str, Area] = field(init=False, repr=False, compare=False)
    _rules_by_key: dict[tuple[str, Role | None], tuple[AssignmentRule, ...]] = field(
        init=False, repr=False, compare=False
    )
    _postal_starts: list[int] = field(init=False, repr=False, compare=False)
    _postal_index: list[tuple[int, int, Area]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rules_by_key: dict[tuple[str, Role | None], list[AssignmentRule]] = {}
        for rule in self.rules:
            rules_by_key.setdefault((rule.area_id, rule.role), []).append(rule)
        postal_index = sorted(
            (
                (int(postal_range.first), int(postal_range.last), area)
                for area in self.areas
                for postal_range in area.postal_code_ranges
            ),
            key=lambda entry: entry[0],
        )
        object.__setattr__(self, "_units_by_id", {unit.unit_id: unit for unit in self.units})
        object.__setattr__(self, "_officers_by_id", {o.officer_id: o for o in self.officers})
        object.__setattr__(self, "_areas_by_id", {area.area_id: area for area in self.areas})
        object.__setattr__(self, "_rules_by_key", {k: tuple(v) for k, v in rules_by_key.items()})
        object.__setattr__(self, "_postal_index", postal_index)
        object.__setattr__(self, "_postal_starts", [first for first, _, _ in postal_index])

    def unit(self, unit_id: str) -> Unit:
        try:
            return self._units_by_id[unit_id]
        except KeyError:
            raise NotFound(f"units/{unit_id}") from None

    def unit_of_district(self, district_id: str) -> Unit:
        for unit in self.units:
            if unit.district_id == district_id:
                return unit
        raise NotFound(f"districts/{district_id}")

    def officer(self, officer_id: str) -> Officer:
        try:
            return self._officers_by_id[officer_id]
        except KeyError:
            raise NotFound(f"officers/{officer_id}") from None

    def area(self, area_id: str) -> Area:
        try:
            return self._areas_by_id[area_id]
        except KeyError:
            raise NotFound(f"areas/{area_id}") from None

    def officers_of(self, unit_id: str) -> tuple[Officer, ...]:
        return tuple(officer for officer in self.officers if officer.unit_id == unit_id)

    def areas_of(self, unit_id: str) -> tuple[Area, ...]:
        return tuple(area for area in self.areas if area.unit_id == unit_id)

    def rules_of(self, unit_id: str) -> tuple[AssignmentRule, ...]:
        return tuple(rule for rule in self.rules if rule.unit_id == unit_id)

    def team_members(self, unit_id: str, team: str) -> tuple[Officer, ...]:
        """The active members of a team of a unit."""
        return tuple(
            officer
            for officer in self.officers
            if officer.unit_id == unit_id and officer.team == team and officer.active
        )

    def area_for_postal_code(self, postal_code: str) -> Area | None:
        if len(postal_code) != 5 or not (postal_code.isascii() and postal_code.isdigit()):
            raise InvalidArgument.field("postal_code", "must be five digits")
        code = int(postal_code)
        position = bisect.bisect_right(self._postal_starts, code) - 1
        if position >= 0:
            _, last, area = self._postal_index[position]
            if code <= last:
                return area
        return None

    def rule_for(self, area_id: str, birth_day: int, role: Role | None = None) -> AssignmentRule:
        """The rule for people of an area born on a day of the month; role None is the general intake."""
        if not 1 <= birth_day <= _DAYS_IN_MONTH:
            raise InvalidArgument.field("birth_day", "must be a day of the month, 1 to 31")
        for rule in self._rules_by_key.get((area_id, role), ()):
            if rule.first_birth_day <= birth_day <= rule.last_birth_day:
                return rule
        raise NotFound(f"areas/{area_id}/rules", message=f"no rule of area {area_id} for that day and role")

    def absence_at(self, officer_id: str, at: datetime) -> Absence | None:
        for absence in self.absences:
            if absence.officer_id == officer_id and absence.covers(at):
                return absence
        return None


def generate_city(seed: int = 2026, officers: int = 400, *, today: date = REFERENCE_DATE) -> City:
    """A synthetic city with `officers` officers over the eleven districts' units, as of `today`."""
    minimum = _MIN_UNIT_STAFF * len(DISTRICTS)
    if not minimum <= officers <= _MAX_OFFICERS:
        raise InvalidArgument.field("officers", f"must be between {minimum} and {_MAX_OFFICERS}")
    rng = random.Random(seed)
    phones = _PhoneBook(rng)
    handles = _Handles()

    policies = _contact_policies(rng)
    team_model_index = rng.randrange(len(DISTRICTS))
    staff = _apportion(
        officers,
        [district.elderly_weight * rng.uniform(0.9, 1.1) for district in DISTRICTS],
        minimum=_MIN_UNIT_STAFF,
    )

    units: list[Unit] = []
    areas: list[Area] = []
    drafts: list[_OfficerDraft] = []
    for index, district in enumerate(DISTRICTS):
        unit = _make_unit(rng, district, policies[index], index == team_model_index, phones)
        units.append(unit)
        areas.extend(_make_areas(rng, district, unit.unit_id, staff[index]))
        drafts.extend(_make_staff(rng, district, unit, staff[index], phones, handles))

    _retire_some(rng, drafts, units, count=max(1, round(officers * 0.02)))
    for unit in units:
        unit_drafts = [draft for draft in drafts if draft.unit_id == unit.unit_id]
        _form_teams(unit_drafts, team_model=unit.team_model)
        _give_specialties(rng, unit_drafts)
        for draft in unit_drafts:
            if draft.active and draft.role in _ASSESSOR_ROLES:
                draft.caseload = rng.randint(60, 90)

    rules: list[AssignmentRule] = []
    for unit in units:
        unit_drafts = [draft for draft in drafts if draft.unit_id == unit.unit_id]
        unit_areas = [area for area in areas if area.unit_id == unit.unit_id]
        rules.extend(_make_rules(unit, unit_areas, unit_drafts))

    absences = _make_absences(rng, drafts, today=today, count=max(1, round(officers * 0.03)))
    return City(
        seed=seed,
        today=today,
        units=tuple(units),
        officers=tuple(draft.freeze() for draft in drafts),
        areas=tuple(areas),
        rules=tuple(rules),
        absences=absences,
    )


# ---------------------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------------------


def _week(weekdays: tuple[str, str], weekend: tuple[str, str]) -> tuple[tuple[int, str, str], ...]:
    return tuple((day, *(weekdays if day <= 5 else weekend)) for day in range(1, 8))


_ACUTE_HOURS_CHOICES: tuple[tuple[tuple[int, str, str], ...], ...] = (
    _week(("07:00", "22:00"), ("07:00", "22:00")),
    _week(("07:00", "22:00"), ("08:00", "22:00")),
    _week(("07:30", "21:30"), ("07:30", "21:30")),
    _week(("07:00", "21:00"), ("09:00", "21:00")),
)

_PHONE_HOURS_CHOICES: tuple[tuple[tuple[int, str, str], ...], ...] = (
    ((2, "09:00", "10:00"), (4, "09:00", "10:00")),
    tuple((day, "09:00", "10:00") for day in range(1, 6)),
    ((1, "13:00", "14:00"), (3, "13:00", "14:00"), (5, "13:00", "14:00")),
    tuple((day, "08:30", "09:30") for day in range(1, 5)),
)


def _periods(spec: tuple[tuple[int, str, str], ...]) -> tuple[WeeklyPeriod, ...]:
    return tuple(
        WeeklyPeriod(day, time.fromisoformat(start), time.fromisoformat(end)) for day, start, end in spec
    )


def _contact_policies(rng: random.Random) -> list[ContactPolicy]:
    """One policy per district: three to five units let Äldre direkt be the only way in, every other
    policy is in use at least once."""
    contact_center_only = rng.randint(3, 5)
    others = [ContactPolicy.PHONE_HOURS, ContactPolicy.OPEN_PHONE, ContactPolicy.DIRECT_NUMBERS]
    rest = len(DISTRICTS) - contact_center_only - len(others)
    # Phone hours are the commonest alternative, so they get two tickets in the draw.
    others += rng.choices([*others, ContactPolicy.PHONE_HOURS], k=rest)
    policies = [ContactPolicy.CONTACT_CENTER_ONLY] * contact_center_only + others
    rng.shuffle(policies)
    return policies


def _make_unit(
    rng: random.Random, district: District, policy: ContactPolicy, team_model: bool, phones: _PhoneBook
) -> Unit:
    reception_phone = ""
    phone_hours: tuple[WeeklyPeriod, ...] = ()
    if policy in (ContactPolicy.PHONE_HOURS, ContactPolicy.OPEN_PHONE):
        reception_phone = phones.draw()
    if policy is ContactPolicy.PHONE_HOURS:
        phone_hours = _periods(rng.choice(_PHONE_HOURS_CHOICES))
    return Unit(
        unit_id=f"{district.district_id}-bestallarenhet",
        display_name=f"Beställarenheten {district.display_name}",
        district_id=district.district_id,
        mailbox=f"aldreomsorg.{district.district_id}@{EMAIL_DOMAIN}",
        acute_phone=phones.draw(),
        acute_hours=_periods(rng.choice(_ACUTE_HOURS_CHOICES)),
        contact_policy=policy,
        reception_phone=reception_phone,
        phone_hours=phone_hours,
        team_model=team_model,
    )


class _PhoneBook:
    """Synthetic numbers in the city's 08-508 series, never the same twice."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._issued: set[str] = set()

    def draw(self) -> str:
        while True:
            number = f"08-508 {self._rng.randint(10, 99)} {self._rng.randint(0, 999):03d}"
            if number not in self._issued:
                self._issued.add(number)
                return number


# ---------------------------------------------------------------------------------------------------------
# Areas
# ---------------------------------------------------------------------------------------------------------


def _make_areas(rng: random.Random, district: District, unit_id: str, staff: int) -> list[Area]:
    """Two to five neighbourhoods, more for a bigger unit, each given blocks of ten postal codes from
    its own prefix.

    A district's prefixes are its own, and within a prefix each block of ten goes to one area only,
    so no postal code can belong to two areas anywhere in the city.
    """
    hoods = list(district.neighbourhoods)
    wanted = round(staff / _STAFF_PER_AREA) + rng.randint(-1, 1)
    chosen = rng.sample(hoods, max(2, min(5, len(hoods), wanted)))
    chosen.sort(key=hoods.index)
    sharing = Counter(hood.postal_prefix for hood in chosen)
    free_blocks = {prefix: list(range(10)) for prefix in sharing}
    areas: list[Area] = []
    for hood in chosen:
        free = free_blocks[hood.postal_prefix]
        blocks = sorted(rng.sample(free, rng.randint(1, min(4, 10 // sharing[hood.postal_prefix]))))
        for block in blocks:
            free.remove(block)
        areas.append(
            Area(
                unit_id=unit_id,
                area_id=ascii_slug(hood.name),
                display_name=hood.name,
                postal_code_ranges=_block_ranges(hood.postal_prefix, blocks),
                postal_town=hood.postal_town,
            )
        )
    return areas


def _block_ranges(prefix: str, blocks: list[int]) -> tuple[PostalCodeRange, ...]:
    """Consecutive blocks of ten merged: blocks 2, 3 and 7 of 163 are 16320-16339 and 16370-16379."""
    runs: list[list[int]] = []
    for block in blocks:
        if runs and runs[-1][-1] == block - 1:
            runs[-1].append(block)
        else:
            runs.append([block])
    return tuple(PostalCodeRange(f"{prefix}{run[0]}0", f"{prefix}{run[-1]}9") for run in runs)


# ---------------------------------------------------------------------------------------------------------
# Officers
# ---------------------------------------------------------------------------------------------------------

# Roles other than the manager, with their share of a unit's staff: the Östermalm unit of 2017 had 19
# officers for ordinary housing, 6 for discharge planning and 3 for special housing, plus carer support,
# fees, transport service and prevention.
_ROLE_SHARES: tuple[tuple[Role, float], ...] = (
    (Role.ORDINARY_HOUSING, 0.58),
    (Role.DISCHARGE_PLANNING, 0.13),
    (Role.SPECIAL_HOUSING, 0.10),
    (Role.PREVENTION, 0.06),
    (Role.TRANSPORT_SERVICE, 0.05),
    (Role.CARER_SUPPORT, 0.04),
    (Role.FEE_OFFICER, 0.04),
)
_ROLE_MINIMUM = {Role.ORDINARY_HOUSING: 3, Role.SPECIAL_HOUSING: 1}
# Active officers a unit keeps in the roles its assignment rules name.
_KEEP_ACTIVE = {Role.ORDINARY_HOUSING: 2, Role.SPECIAL_HOUSING: 1}

# Care-needs assessors proper, who carry a caseload of 60–90 people.
_ASSESSOR_ROLES = frozenset({Role.ORDINARY_HOUSING, Role.SPECIAL_HOUSING, Role.DISCHARGE_PLANNING})

# Share of a unit's staff with each specialty, and the roles that take it on.
_SPECIALTY_SHARES: tuple[tuple[Specialty, float, tuple[Role, ...]], ...] = (
    (Specialty.LSS, 0.06, (Role.ORDINARY_HOUSING, Role.SPECIAL_HOUSING)),
    (
        Specialty.VIOLENCE_IN_CLOSE_RELATIONSHIPS,
        0.04,
        (Role.ORDINARY_HOUSING, Role.PREVENTION, Role.DISCHARGE_PLANNING),
    ),
    (Specialty.DEMENTIA, 0.08, (Role.ORDINARY_HOUSING, Role.SPECIAL_HOUSING, Role.DISCHARGE_PLANNING)),
    (Specialty.SIP, 0.06, (Role.DISCHARGE_PLANNING, Role.ORDINARY_HOUSING, Role.SPECIAL_HOUSING)),
    (Specialty.HOUSING_COORDINATION, 0.03, (Role.PREVENTION, Role.ORDINARY_HOUSING)),
    (Specialty.FOLLOW_UP, 0.06, (Role.PREVENTION, Role.ORDINARY_HOUSING, Role.SPECIAL_HOUSING)),
)

# Most of the profession are women.
_FEMALE_SHARE = 0.85
_TEAM_SIZE = 3
# Ordinary-housing officers of a unit without the team model still sit in work groups about this size.
_WORK_GROUP_SIZE = 7


@dataclass
class _OfficerDraft:
    officer_id: str
    unit_id: str
    given_name: str
    family_name: str
    role: Role
    languages: tuple[str, ...]
    phone: str
    email: str
    specialties: list[Specialty] = field(default_factory=list)
    team: str = ""
    active: bool = True
    caseload: int = 0

    def freeze(self) -> Officer:
        order = list(Specialty)
        return Officer(
            officer_id=self.officer_id,
            unit_id=self.unit_id,
            given_name=self.given_name,
            family_name=self.family_name,
            role=self.role,
            specialties=tuple(sorted(self.specialties, key=order.index)),
            languages=self.languages,
            team=self.team,
            phone=self.phone,
            email=self.email,
            active=self.active,
            caseload=self.caseload,
        )


class _Handles:
    """Officer ids and e-mail addresses from names, numbered from the second namesake on."""

    _MAX_ID_BASE = 40

    def __init__(self) -> None:
        self._taken: dict[str, int] = {}

    def issue(self, given_name: str, family_name: str) -> tuple[str, str]:
        given, family = ascii_slug(given_name), ascii_slug(family_name)
        base = f"{given}.{family}"
        count = self._taken.get(base, 0) + 1
        self._taken[base] = count
        suffix = "" if count == 1 else str(count)
        officer_id = f"{given}-{family}"[: self._MAX_ID_BASE].strip("-")
        if suffix:
            officer_id = f"{officer_id}-{suffix}"
        return officer_id, f"{base}{suffix}@{EMAIL_DOMAIN}"


def _make_staff(
    rng: random.Random,
    district: District,
    unit: Unit,
    size: int,
    phones: _PhoneBook,
    handles: _Handles,
) -> list[_OfficerDraft]:
    roles = [Role.UNIT_MANAGER]
    for role, count in zip(
        [role for role, _ in _ROLE_SHARES],
        _role_counts(rng, size - 1, team_model=unit.team_model),
        strict=True,
    ):
        roles += [role] * count
    # Staff mirror the district a little: more colleagues with roots abroad where more residents have them.
    origin_keys = list(OFFICER_ORIGIN_WEIGHTS)
    origin_weights = [
        weight if key == "sv" else weight * district.abroad_factor**0.5
        for key, weight in OFFICER_ORIGIN_WEIGHTS.items()
    ]
    drafts = []
    for role in roles:
        origin = ORIGINS[rng.choices(origin_keys, origin_weights)[0]]
        female = rng.random() < _FEMALE_SHARE
        given_name = rng.choice(origin.given_names(female=female, older=False))
        masculine, feminine = rng.choice(origin.family)
        family_name = feminine if female else masculine
        officer_id, email = handles.issue(given_name, family_name)
        drafts.append(
            _OfficerDraft(
                officer_id=officer_id,
                unit_id=unit.unit_id,
                given_name=given_name,
                family_name=family_name,
                role=role,
                languages=_officer_languages(rng, origin.key),
                phone=phones.draw(),
                email=email,
            )
        )
    return drafts


def _role_counts(rng: random.Random, size: int, *, team_model: bool) -> list[int]:
    shares = [share * rng.uniform(0.85, 1.15) for _, share in _ROLE_SHARES]
    minimums = [_ROLE_MINIMUM.get(role, 0) for role, _ in _ROLE_SHARES]
    counts = _apportion(size, shares, minimum=minimums)
    if team_model:
        # Teams are of exactly three; the odd ones out plan discharges instead.
        ordinary = [role for role, _ in _ROLE_SHARES].index(Role.ORDINARY_HOUSING)
        discharge = [role for role, _ in _ROLE_SHARES].index(Role.DISCHARGE_PLANNING)
        spare = counts[ordinary] % _TEAM_SIZE
        counts[ordinary] -= spare
        counts[discharge] += spare
    return counts


def _officer_languages(rng: random.Random, origin_key: str) -> tuple[str, ...]:
    languages = ["sv"]
    if rng.random() < 0.8:
        languages.append("en")
    origin = ORIGINS[origin_key]
    if origin_key != "sv":
        # Some who grew up in Sweden no longer speak their parents' language well enough to work in it.
        if rng.random() < 0.9:
            languages.append(origin.language)
        for related in origin.related_languages:
            if rng.random() < 0.35:
                languages.append(related)
    else:
        draw = rng.random()
        # Sweden-Finns, and the odd officer who studied or lived abroad.
        if draw < 0.03:
            languages.append("fi")
        elif draw < 0.06:
            languages.append("es")
        elif draw < 0.08:
            languages.append("de")
    return tuple(languages)


def _retire_some(rng: random.Random, drafts: list[_OfficerDraft], units: list[Unit], *, count: int) -> None:
    """Marks `count` officers inactive (staff turnover is 13–16 % a year), never one a unit cannot spare:
    the manager, the last special-housing officer, or a team member."""
    team_units = {unit.unit_id for unit in units if unit.team_model}
    retired = 0
    for draft in rng.sample(drafts, len(drafts)):
        if retired == count:
            break
        if draft.role is Role.UNIT_MANAGER:
            continue
        if draft.role is Role.ORDINARY_HOUSING and draft.unit_id in team_units:
            continue
        if draft.role in _KEEP_ACTIVE:
            still_active = sum(
                1
                for other in drafts
                if other.unit_id == draft.unit_id and other.role is draft.role and other.active
            )
            if still_active - 1 < _KEEP_ACTIVE[draft.role]:
                continue
        draft.active = False
        retired += 1


def _form_teams(drafts: list[_OfficerDraft], *, team_model: bool) -> None:
    ordinary = [draft for draft in drafts if draft.role is Role.ORDINARY_HOUSING and draft.active]
    if not ordinary:
        return
    if team_model:
        team_count = len(ordinary) // _TEAM_SIZE
    else:
        team_count = max(1, round(len(ordinary) / _WORK_GROUP_SIZE))
    for index, draft in enumerate(ordinary):
        draft.team = _team_name(index * team_count // len(ordinary))


def _team_name(index: int) -> str:
    """Team A … Team Z, then Team AA, Team AB and so on."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return f"Team {letters}"


def _give_specialties(rng: random.Random, drafts: list[_OfficerDraft]) -> None:
    """Each specialty goes to a share of the unit's active staff in the roles that take it on, and to at
    least one of them, so every unit has someone to route a specialist question to."""
    for specialty, share, roles in _SPECIALTY_SHARES:
        eligible = [draft for draft in drafts if draft.active and draft.role in roles]
        if not eligible:
            continue
        count = min(len(eligible), max(1, round(share * len(drafts))))
        for draft in rng.sample(eligible, count):
            draft.specialties.append(specialty)


# ---------------------------------------------------------------------------------------------------------
# Assignment rules
# ---------------------------------------------------------------------------------------------------------


def _make_rules(unit: Unit, areas: list[Area], drafts: list[_OfficerDraft]) -> list[AssignmentRule]:
    """For each area, the general intake and special housing, each covering days 1–31 exactly once."""
    weights = [float(sum(postal_range.size for postal_range in area.postal_code_ranges)) for area in areas]
    active = [draft for draft in drafts if draft.active]
    intake: list[str]
    if unit.team_model:
        intake = sorted({draft.team for draft in active if draft.role is Role.ORDINARY_HOUSING})
    else:
        intake = [draft.officer_id for draft in active if draft.role is Role.ORDINARY_HOUSING]
    special = [draft.officer_id for draft in active if draft.role is Role.SPECIAL_HOUSING]

    rules: list[AssignmentRule] = []
    for role, parties, kind in ((None, intake, "intake"), (Role.SPECIAL_HOUSING, special, "special-housing")):
        by_team = unit.team_model and role is None
        for area, group in zip(areas, _share_out(parties, weights), strict=True):
            for (first, last), party in zip(_split_days(len(group)), group, strict=True):
                rules.append(
                    AssignmentRule(
                        unit_id=unit.unit_id,
                        rule_id=f"{area.area_id}-{kind}-{first:02d}-{last:02d}",
                        area_id=area.area_id,
                        role=role,
                        first_birth_day=first,
                        last_birth_day=last,
                        officer_id="" if by_team else party,
                        team=party if by_team else "",
                    )
                )
    return rules


def _share_out(parties: list[str], weights: list[float]) -> list[list[str]]:
    """Parties spread over areas in proportion to the weights, every area getting at least one.

    With fewer parties than areas some serve more than one area; an area never gets more than 31,
    since each needs a day of the month of its own.
    """
    if len(parties) < len(weights):
        return [[parties[index % len(parties)]] for index in range(len(weights))]
    counts = [min(count, _DAYS_IN_MONTH) for count in _apportion(len(parties), weights, minimum=1)]
    groups: list[list[str]] = []
    start = 0
    for count in counts:
        groups.append(parties[start : start + count])
        start += count
    return groups


def _split_days(parts: int) -> list[tuple[int, int]]:
    """Days 1–31 in `parts` consecutive ranges of near-equal length, the longer ones first."""
    size, longer = divmod(_DAYS_IN_MONTH, parts)
    ranges: list[tuple[int, int]] = []
    first = 1
    for index in range(parts):
        last = first + size - 1 + (1 if index < longer else 0)
        ranges.append((first, last))
        first = last + 1
    return ranges


# ---------------------------------------------------------------------------------------------------------
# Absences
# ---------------------------------------------------------------------------------------------------------


def _make_absences(
    rng: random.Random, drafts: list[_OfficerDraft], *, today: date, count: int
) -> tuple[Absence, ...]:
    """`count` officers away over `today`, each with a substitute of the same unit who is at work.

    Every absence spans `today`, so any two of them overlap: a substitute is therefore never anyone who
    is away, and preferably someone with the same role (and team) as the absent officer.
    """
    candidates = [draft for draft in drafts if draft.active and draft.role is not Role.UNIT_MANAGER]
    absent = rng.sample(candidates, min(count, len(candidates)))
    absent.sort(key=drafts.index)
    absent_ids = {draft.officer_id for draft in absent}
    absences: list[Absence] = []
    for draft in absent:
        present = [
            other
            for other in drafts
            if other.unit_id == draft.unit_id and other.active and other.officer_id not in absent_ids
        ]
        preferences = (
            [other for other in present if other.role is draft.role and other.team == draft.team],
            [other for other in present if other.role is draft.role],
            [other for other in present if other.role is not Role.UNIT_MANAGER],
            present,
        )
        substitute = rng.choice(next(group for group in preferences if group))
        start_day = today - timedelta(days=rng.randint(0, 14))
        end_day = max(
            start_day + timedelta(days=rng.choice((5, 7, 14, 21, 28, 42))), today + timedelta(days=1)
        )
        absences.append(
            Absence(
                absence_id=f"{draft.officer_id}-{start_day:%Y%m%d}",
                officer_id=draft.officer_id,
                start_time=datetime.combine(start_day, time(0), tzinfo=_STOCKHOLM),
                end_time=datetime.combine(end_day, time(0), tzinfo=_STOCKHOLM),
                substitute_id=substitute.officer_id,
            )
        )
    return tuple(absences)


# ---------------------------------------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------------------------------------


def _apportion(total: int, weights: list[float], *, minimum: int | list[int] = 0) -> list[int]:
    """`total` split in proportion to `weights` by largest remainder, each part at least its minimum."""
    minimums = minimum if isinstance(minimum, list) else [minimum] * len(weights)
    rest = total - sum(minimums)
    if rest < 0:
        raise ValueError("the minimums exceed the total")
    weight_sum = sum(weights)
    quotas = [rest * weight / weight_sum for weight in weights]
    counts = [int(quota) for quota in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda index: (counts[index] - quotas[index], index))
    for index in by_remainder[: rest - sum(counts)]:
        counts[index] += 1
    return [count + least for count, least in zip(counts, minimums, strict=True)]
