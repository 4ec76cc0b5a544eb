"""Synthetic recipients of elderly care living in a synthetic city, with their responsible officer.

Person numbers are well-formed Swedish ones: twelve digits with the century, a birth number whose
last digit is odd for men and even for women, and a Luhn check digit over the ten-digit form. As in
the numbers issued before 1990, the first two digits of the birth number say where the person was
registered at birth: 01–13 for Stockholm city, 93–99 for someone born abroad. A few people have a
coordination number (day of birth + 60) instead.

Everyone lives at a postal code inside one of the city's areas, so the area, the unit and the
responsible officer (or team) follow from the city's assignment rules: the general intake by area and
day of birth, or the special-housing rules for the residents of special housing.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from services.common.errors import InvalidArgument
from synthcity.city import DISTRICTS, City, District, Role
from synthcity.names import ELDERLY_ORIGIN_WEIGHTS, ORIGINS, Origin

__all__ = ["Person", "Sex", "generate_people"]

_FIRST_BIRTH_YEAR = 1925
_LAST_BIRTH_YEAR = 1960
_COORDINATION_DAY_OFFSET = 60
_COORDINATION_SHARE = 0.004
# Well within the numbers a birth date has room for (about 500 a sex), so drawing never runs dry.
_MAX_PEOPLE = 1_000_000
# A busy birth date may have used up its region's numbers; then any region will do.
_ATTEMPTS_BEFORE_ANY_REGION = 20

# Relative number of care recipients by age: few under 75, most between 80 and 95, a few past 100.
_AGE_WEIGHTS: tuple[tuple[int, float], ...] = (
    (65, 1.0),
    (70, 2.0),
    (75, 3.5),
    (80, 6.0),
    (85, 7.0),
    (90, 4.5),
    (95, 1.6),
    (100, 0.2),
)

# Women live longer, so the older the recipients the more of them are women.
_FEMALE_SHARE_BY_AGE: tuple[tuple[int, float], ...] = ((0, 0.55), (80, 0.65), (90, 0.75))
# Share living in special housing (särskilt boende), whose officer is found by the special-housing rules.
_SPECIAL_HOUSING_SHARE_BY_AGE: tuple[tuple[int, float], ...] = ((0, 0.05), (80, 0.12), (90, 0.25))

# Share of people of a background abroad who would rather be spoken to in their first language.
_PREFERS_FIRST_LANGUAGE = 0.45
_BORN_ABROAD_IF_ORIGIN_ABROAD = 0.9
_BORN_ABROAD_IF_SWEDISH = 0.03
_BORN_IN_STOCKHOLM_CITY = 0.55

_STREETS: tuple[str, ...] = (
    "Björkvägen",
    "Granvägen",
    "Tallbacken",
    "Ekbacksvägen",
    "Lindgatan",
    "Sjövägen",
    "Kyrkvägen",
    "Skolgatan",
    "Parkvägen",
    "Ängsvägen",
    "Solvägen",
    "Bergsgatan",
    "Kvarnvägen",
    "Hagvägen",
    "Åsvägen",
    "Idrottsvägen",
    "Lärkvägen",
    "Vallgatan",
    "Torgvägen",
    "Rönnvägen",
    "Almvägen",
    "Syrenvägen",
    "Smedjegatan",
    "Bryggargatan",
    "Klövervägen",
    "Vitsippsvägen",
    "Blåklockevägen",
    "Hantverkarvägen",
    "Gärdesvägen",
    "Mossvägen",
    "Lönngatan",
    "Bäckvägen",
    "Stationsvägen",
    "Fyrverkarbacken",
    "Sländvägen",
    "Körsbärsvägen",
    "Snickarbacken",
    "Mjölnarvägen",
    "Ålandsvägen",
    "Örnvägen",
)
_HOUSE_LETTERS = ("A", "B", "C")

# Luhn: a digit doubled, with the digits of the product summed.
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"


@dataclass(frozen=True, slots=True)
class Person:
    # Twelve digits, YYYYMMDDNNNC; the day is plus 60 for a coordination number.
    person_number: str
    birth_date: date
    coordination_number: bool
    sex: Sex
    given_name: str
    family_name: str
    # ISO 639-1 code of the language the person would rather be spoken to in.
    language: str
    street_address: str
    postal_code: str
    postal_town: str
    district_id: str
    unit_id: str
    area_id: str
    # None when the general intake decides; special_housing for residents of special housing.
    responsible_role: Role | None
    rule_id: str
    # The responsible officer; empty when a team is responsible.
    officer_id: str
    # The responsible team on the team-model unit; empty otherwise.
    team: str


def generate_people(city: City, count: int, seed: int = 2026, today: date | None = None) -> Iterator[Person]:
    """`count` care recipients of `city`, lazily; `today` (the city's date when None) decides the ages."""
    if not 0 <= count <= _MAX_PEOPLE:
        raise InvalidArgument.field("count", f"must be between 0 and {_MAX_PEOPLE}")
    return _people(city, count, random.Random(seed), today or city.today)


@dataclass(frozen=True)
class _Responsible:
    rule_id: str
    officer_id: str
    team: str


@dataclass(frozen=True)
class _AreaPlan:
    area_id: str
    unit_id: str
    district_id: str
    postal_town: str
    # (first code, number of codes) of each postal-code range.
    ranges: tuple[tuple[int, int], ...]
    origins: tuple[Origin, ...]
    origin_cumulative: tuple[float, ...]
    # Indexed by day of birth, 1–31; index 0 unused.
    intake: tuple[_Responsible, ...]
    special_housing: tuple[_Responsible, ...]

    @property
    def size(self) -> int:
        return sum(size for _, size in self.ranges)

    def postal_code(self, offset: int) -> str:
        """The `offset`-th postal code of the area, counting through its ranges in order."""
        for first, size in self.ranges:
            if offset < size:
                return f"{first + offset:05d}"
            offset -= size
        raise IndexError(offset)


def _people(city: City, count: int, rng: random.Random, today: date) -> Iterator[Person]:
    plans = [_plan_area(city, area_id) for area_id in (area.area_id for area in city.areas)]
    weights = _area_weights(plans)
    area_cumulative = list(itertools.accumulate(weights))
    years = list(range(_FIRST_BIRTH_YEAR, _LAST_BIRTH_YEAR + 1))
    year_cumulative = list(itertools.accumulate(_age_weight(today.year - year) for year in years))
    issued: set[str] = set()

    for _ in range(count):
        plan = plans[bisect.bisect(area_cumulative, rng.random() * area_cumulative[-1])]
        postal_code = plan.postal_code(rng.randrange(plan.size))
        origin = plan.origins[
            bisect.bisect(plan.origin_cumulative, rng.random() * plan.origin_cumulative[-1])
        ]

        year = years[bisect.bisect(year_cumulative, rng.random() * year_cumulative[-1])]
        start = date(year, 1, 1).toordinal()
        birth_date = date.fromordinal(start + rng.randrange(date(year + 1, 1, 1).toordinal() - start))
        age = today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))
        female = rng.random() < _share_by_age(_FEMALE_SHARE_BY_AGE, age)
        coordination = rng.random() < _COORDINATION_SHARE
        born_abroad = rng.random() < (
            _BORN_ABROAD_IF_SWEDISH if origin.key == "sv" else _BORN_ABROAD_IF_ORIGIN_ABROAD
        )
        person_number = _person_number(
            rng, birth_date, female=female, coordination=coordination, born_abroad=born_abroad, issued=issued
        )

        given_name = rng.choice(origin.given_names(female=female, older=True))
        masculine, feminine = rng.choice(origin.family)
        language = origin.language if origin.key != "sv" and rng.random() < _PREFERS_FIRST_LANGUAGE else "sv"
        street = rng.choice(_STREETS)
        number = rng.randint(1, 60) if rng.random() < 0.8 else rng.randint(61, 160)
        letter = f" {rng.choice(_HOUSE_LETTERS)}" if rng.random() < 0.15 else ""

        special = rng.random() < _share_by_age(_SPECIAL_HOUSING_SHARE_BY_AGE, age)
        responsible = (plan.special_housing if special else plan.intake)[birth_date.day]
        yield Person(
            person_number=person_number,
            birth_date=birth_date,
            coordination_number=coordination,
            sex=Sex.FEMALE if female else Sex.MALE,
            given_name=given_name,
            family_name=feminine if female else masculine,
            language=language,
            street_address=f"{street} {number}{letter}",
            postal_code=postal_code,
            postal_town=plan.postal_town,
            district_id=plan.district_id,
            unit_id=plan.unit_id,
            area_id=plan.area_id,
            responsible_role=Role.SPECIAL_HOUSING if special else None,
            rule_id=responsible.rule_id,
            officer_id=responsible.officer_id,
            team=responsible.team,
        )


def _person_number(
    rng: random.Random,
    birth_date: date,
    *,
    female: bool,
    coordination: bool,
    born_abroad: bool,
    issued: set[str],
) -> str:
    day = birth_date.day + (_COORDINATION_DAY_OFFSET if coordination else 0)
    date_part = f"{birth_date.year:04d}{birth_date.month:02d}{day:02d}"
    for attempt in itertools.count():
        if coordination:
            region = rng.randint(20, 99)
        elif attempt >= _ATTEMPTS_BEFORE_ANY_REGION:
            region = rng.randint(1, 99)
        elif born_abroad:
            region = rng.randint(93, 99)
        elif rng.random() < _BORN_IN_STOCKHOLM_CITY:
            region = rng.randint(1, 13)
        else:
            region = rng.randint(14, 92)
        sex_digit = 2 * rng.randrange(5) + (0 if female else 1)
        serial = f"{region:02d}{sex_digit}"
        nine = date_part[2:] + serial
        person_number = f"{date_part}{serial}{_luhn_check_digit(nine)}"
        # Two people never share a number; a draw that collides is simply drawn again.
        if person_number not in issued:
            issued.add(person_number)
            return person_number
    raise AssertionError("unreachable")


def _luhn_check_digit(digits: str) -> int:
    """The digit that makes `digits` + it pass Luhn, doubling from the first digit (weights 2, 1, 2, …)."""
    total = 0
    for position, char in enumerate(digits):
        digit = ord(char) - 48
        total += _DOUBLED[digit] if position % 2 == 0 else digit
    return (10 - total % 10) % 10


def _plan_area(city: City, area_id: str) -> _AreaPlan:
    area = city.area(area_id)
    unit = city.unit(area.unit_id)
    district = _district(unit.district_id)
    origins = tuple(ORIGINS[key] for key in ELDERLY_ORIGIN_WEIGHTS)
    weights = [
        weight if key == "sv" else weight * district.abroad_factor
        for key, weight in ELDERLY_ORIGIN_WEIGHTS.items()
    ]

    def table(role: Role | None) -> tuple[_Responsible, ...]:
        rules = [city.rule_for(area.area_id, day, role) for day in range(1, 32)]
        return (
            _Responsible("", "", ""),
            *(_Responsible(rule.rule_id, rule.officer_id, rule.team) for rule in rules),
        )

    return _AreaPlan(
        area_id=area.area_id,
        unit_id=unit.unit_id,
        district_id=district.district_id,
        postal_town=area.postal_town,
        ranges=tuple((int(r.first), r.size) for r in area.postal_code_ranges),
        origins=origins,
        origin_cumulative=tuple(itertools.accumulate(weights)),
        intake=table(None),
        special_housing=table(Role.SPECIAL_HOUSING),
    )


def _area_weights(plans: list[_AreaPlan]) -> list[float]:
    """Each district's elderly share, split over its areas by their number of postal codes."""
    codes_per_district: dict[str, int] = {}
    for plan in plans:
        codes_per_district[plan.district_id] = codes_per_district.get(plan.district_id, 0) + plan.size
    return [
        _district(plan.district_id).elderly_weight * plan.size / codes_per_district[plan.district_id]
        for plan in plans
    ]


def _district(district_id: str) -> District:
    return next(district for district in DISTRICTS if district.district_id == district_id)


def _age_weight(age: int) -> float:
    return _share_by_age(_AGE_WEIGHTS, age)


def _share_by_age(table: tuple[tuple[int, float], ...], age: int) -> float:
    value = table[0][1]
    for from_age, share in table:
        if age >= from_age:
            value = share
    return value
