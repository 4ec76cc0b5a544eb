from __future__ import annotations

import csv
import io
import itertools
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from personnummer import personnummer

from services.common.errors import InvalidArgument, NotFound
from synthcity.city import (
    DISTRICTS,
    EMAIL_DOMAIN,
    REFERENCE_DATE,
    City,
    ContactPolicy,
    Role,
    generate_city,
)
from synthcity.directory_csv import HEADERS, directory_csv_files, main
from synthcity.names import ORIGINS
from synthcity.people import Person, Sex, generate_people

REPOSITORY = Path(__file__).resolve().parents[3]
ID = re.compile(r"[a-z0-9-]{1,63}")
PHONE = re.compile(r"08-508 \d{2} \d{3}")
HOURS = re.compile(r"[1-7] \d{2}:\d{2}-\d{2}:\d{2}")
STOCKHOLM = ZoneInfo("Europe/Stockholm")
SEEDS = (2026, 1, 7, 42, 1000)
ASSESSOR_ROLES = {Role.ORDINARY_HOUSING, Role.SPECIAL_HOUSING, Role.DISCHARGE_PLANNING}


@pytest.fixture(scope="module")
def city() -> City:
    return generate_city()


@pytest.fixture(scope="module")
def cities() -> list[City]:
    return [generate_city(seed) for seed in SEEDS]


@pytest.fixture(scope="module")
def people(city: City) -> list[Person]:
    return list(generate_people(city, 100_000))


def luhn_valid(digits: str) -> bool:
    """Luhn written out the textbook way, from the right, independently of the generator's."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def read_csv(content: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(content, newline=""))
    return list(reader.fieldnames or []), list(reader)


# ---------------------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_csv_files():
    assert directory_csv_files(generate_city(2026)) == directory_csv_files(generate_city(2026))


def test_different_seeds_give_different_cities():
    first, second = directory_csv_files(generate_city(2026)), directory_csv_files(generate_city(2027))
    assert first["officers.csv"] != second["officers.csv"]
    assert first["rules.csv"] != second["rules.csv"]


def test_output_does_not_depend_on_string_hashing_of_the_process(tmp_path: Path):
    program = (
        "import hashlib, sys\n"
        "from synthcity.city import generate_city\n"
        "from synthcity.directory_csv import directory_csv_files\n"
        "from synthcity.people import generate_people\n"
        "city = generate_city(5)\n"
        "digest = hashlib.sha256()\n"
        "for name, content in sorted(directory_csv_files(city).items()):\n"
        "    digest.update(name.encode() + content.encode())\n"
        "for person in generate_people(city, 2000, seed=5):\n"
        "    digest.update(repr(person).encode())\n"
        "print(digest.hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
        completed = subprocess.run(
            [sys.executable, "-c", program],
            cwd=REPOSITORY,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(completed.stdout.strip())
    assert len(digests) == 1


# ---------------------------------------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------------------------------------


def test_each_current_district_has_one_unit(city: City):
    assert [unit.district_id for unit in city.units] == [district.district_id for district in DISTRICTS]
    assert len(city.units) == 11
    bromma = city.unit_of_district("bromma")
    assert bromma.unit_id == "bromma-bestallarenhet"
    assert bromma.display_name == "Beställarenheten Bromma"
    assert bromma.mailbox == "aldreomsorg.bromma@stockholm.example"


def test_units_have_a_synthetic_acute_line_answered_every_day(city: City):
    for unit in city.units:
        assert PHONE.fullmatch(unit.acute_phone)
        assert sorted(period.day_of_week for period in unit.acute_hours) == [1, 2, 3, 4, 5, 6, 7]
        assert all(period.start <= time(9) and period.end >= time(21) for period in unit.acute_hours)
        assert unit.mailbox.endswith(f"@{EMAIL_DOMAIN}")


def test_exactly_one_unit_works_in_teams(cities: list[City]):
    for city in cities:
        assert sum(unit.team_model for unit in city.units) == 1


def test_at_least_three_units_let_the_contact_center_be_the_only_way_in(cities: list[City]):
    for city in cities:
        policies = Counter(unit.contact_policy for unit in city.units)
        assert policies[ContactPolicy.CONTACT_CENTER_ONLY] >= 3
        assert set(policies) == set(ContactPolicy)


def test_reception_phone_and_phone_hours_follow_the_contact_policy(cities: list[City]):
    for city in cities:
        for unit in city.units:
            has_reception = unit.contact_policy in (ContactPolicy.PHONE_HOURS, ContactPolicy.OPEN_PHONE)
            assert bool(unit.reception_phone) == has_reception
            assert bool(unit.phone_hours) == (unit.contact_policy is ContactPolicy.PHONE_HOURS)
            if unit.reception_phone:
                assert PHONE.fullmatch(unit.reception_phone)


# ---------------------------------------------------------------------------------------------------------
# Officers
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("requested", [66, 150, 400, 1200])
def test_officer_count_is_within_two_percent_of_the_request(requested: int):
    city = generate_city(officers=requested)
    assert abs(len(city.officers) - requested) <= 0.02 * requested


def test_too_few_officers_for_eleven_units_is_refused():
    with pytest.raises(InvalidArgument) as raised:
        generate_city(officers=20)
    assert raised.value.violations[0].field == "officers"


def test_bigger_districts_get_more_officers(city: City):
    staff = Counter(officer.unit_id for officer in city.officers)
    assert staff["norra-innerstaden-bestallarenhet"] > staff["skarholmen-bestallarenhet"]
    assert staff["sodermalm-bestallarenhet"] > staff["skarpnack-bestallarenhet"]


def test_every_unit_has_exactly_one_manager_without_caseload(cities: list[City]):
    for city in cities:
        managers = [officer for officer in city.officers if officer.role is Role.UNIT_MANAGER]
        assert sorted(manager.unit_id for manager in managers) == sorted(unit.unit_id for unit in city.units)
        assert all(manager.active and manager.caseload == 0 for manager in managers)


def test_most_officers_work_with_ordinary_housing_and_every_role_occurs(city: City):
    roles = Counter(officer.role for officer in city.officers)
    assert roles.most_common(1)[0][0] is Role.ORDINARY_HOUSING
    assert roles[Role.ORDINARY_HOUSING] > len(city.officers) / 2
    assert set(roles) == set(Role)


def test_active_assessors_carry_60_to_90_cases_and_others_none(city: City):
    for officer in city.officers:
        if officer.active and officer.role in ASSESSOR_ROLES:
            assert 60 <= officer.caseload <= 90
        else:
            assert officer.caseload == 0


def test_a_few_officers_are_inactive(city: City):
    inactive = sum(not officer.active for officer in city.officers)
    assert 1 <= inactive <= 0.05 * len(city.officers)


def test_every_officer_speaks_swedish_and_a_minority_other_languages_than_english(city: City):
    assert all(officer.languages[0] == "sv" for officer in city.officers)
    assert all(len(set(officer.languages)) == len(officer.languages) for officer in city.officers)
    others = [officer for officer in city.officers if set(officer.languages) - {"sv", "en"}]
    assert 0.1 * len(city.officers) <= len(others) <= 0.5 * len(city.officers)
    spoken = {language for officer in city.officers for language in officer.languages}
    assert {"fi", "ar", "fa", "so", "tr", "es"} <= spoken
    assert sum("en" in officer.languages for officer in city.officers) > len(city.officers) / 2


def test_every_unit_has_someone_for_each_specialty(city: City):
    for unit in city.units:
        staff = [officer for officer in city.officers_of(unit.unit_id) if officer.active]
        present = {specialty for officer in staff for specialty in officer.specialties}
        assert len(present) == 6, unit.unit_id


def test_officer_ids_emails_and_phones_are_unique_and_well_formed(cities: list[City]):
    for city in cities:
        ids = [officer.officer_id for officer in city.officers]
        emails = [officer.email for officer in city.officers]
        phones = [officer.phone for officer in city.officers] + [unit.acute_phone for unit in city.units]
        assert len(set(ids)) == len(ids)
        assert len(set(emails)) == len(emails)
        assert len(set(phones)) == len(phones)
        assert all(ID.fullmatch(officer_id) for officer_id in ids)
        assert all(re.fullmatch(r"[a-z0-9-]+\.[a-z0-9-]+\d*@stockholm\.example", email) for email in emails)
        assert all(PHONE.fullmatch(phone) for phone in phones)


def test_namesakes_get_numbered_addresses():
    city = generate_city(officers=2000)
    by_name = defaultdict(list)
    for officer in city.officers:
        by_name[(officer.given_name, officer.family_name)].append(officer)
    namesakes = next(group for group in by_name.values() if len(group) > 1)
    assert namesakes[0].email.split("@")[0].split(".")[-1].isalpha()
    assert namesakes[1].email.split("@")[0][-1] == "2"


# ---------------------------------------------------------------------------------------------------------
# Areas and rules
# ---------------------------------------------------------------------------------------------------------


def test_units_have_two_to_five_areas_with_unique_ids(cities: list[City]):
    for city in cities:
        for unit in city.units:
            assert 2 <= len(city.areas_of(unit.unit_id)) <= 5
        ids = [area.area_id for area in city.areas]
        assert len(set(ids)) == len(ids)
        assert all(ID.fullmatch(area_id) for area_id in ids)


def test_postal_code_ranges_never_overlap_across_the_city(cities: list[City]):
    for city in cities:
        ranges = sorted(
            (int(postal_range.first), int(postal_range.last))
            for area in city.areas
            for postal_range in area.postal_code_ranges
        )
        assert all(len(str(first)) == 5 and str(first).startswith("1") for first, _ in ranges)
        assert all(first <= last for first, last in ranges)
        assert all(previous[1] < following[0] for previous, following in itertools.pairwise(ranges))


def test_a_postal_code_leads_to_its_area(city: City):
    area = city.areas[0]
    inside = area.postal_code_ranges[0].first
    assert city.area_for_postal_code(inside) == area
    assert city.area_for_postal_code("99999") is None
    with pytest.raises(InvalidArgument):
        city.area_for_postal_code("1234")


def test_rules_cover_every_day_of_birth_exactly_once_per_area_and_role(cities: list[City]):
    for city in cities:
        days: dict[tuple[str, str, Role | None], list[int]] = defaultdict(list)
        for rule in city.rules:
            assert 1 <= rule.first_birth_day <= rule.last_birth_day <= 31
            days[(rule.unit_id, rule.area_id, rule.role)] += range(
                rule.first_birth_day, rule.last_birth_day + 1
            )
        for area in city.areas:
            for role in (None, Role.SPECIAL_HOUSING):
                assert sorted(days[(area.unit_id, area.area_id, role)]) == list(range(1, 32)), (area, role)
        assert {key[2] for key in days} == {None, Role.SPECIAL_HOUSING}


def test_rules_name_an_active_officer_of_the_unit_with_the_role_or_a_staffed_team(cities: list[City]):
    for city in cities:
        ids = [rule.rule_id for rule in city.rules]
        assert len(set(ids)) == len(ids)
        for rule in city.rules:
            assert ID.fullmatch(rule.rule_id)
            assert city.area(rule.area_id).unit_id == rule.unit_id
            assert bool(rule.officer_id) != bool(rule.team)
            unit = city.unit(rule.unit_id)
            if rule.team:
                assert unit.team_model
                assert rule.role is None
                assert len(city.team_members(rule.unit_id, rule.team)) == 3
            else:
                officer = city.officer(rule.officer_id)
                assert officer.active
                assert officer.unit_id == rule.unit_id
                assert officer.role is (rule.role or Role.ORDINARY_HOUSING)


def test_the_team_unit_gives_its_general_intake_to_teams_only(city: City):
    team_unit = next(unit for unit in city.units if unit.team_model)
    intake = [rule for rule in city.rules_of(team_unit.unit_id) if rule.role is None]
    assert intake
    assert all(rule.team for rule in intake)
    ordinary = [
        o for o in city.officers_of(team_unit.unit_id) if o.role is Role.ORDINARY_HOUSING and o.active
    ]
    assert all(officer.team for officer in ordinary)


def test_rule_for_finds_the_rule_of_a_day_and_refuses_impossible_days(city: City):
    area = city.areas[0]
    rule = city.rule_for(area.area_id, 31)
    assert rule.last_birth_day == 31
    assert rule.role is None
    assert city.rule_for(area.area_id, 1, Role.SPECIAL_HOUSING).role is Role.SPECIAL_HOUSING
    with pytest.raises(InvalidArgument):
        city.rule_for(area.area_id, 32)
    with pytest.raises(NotFound):
        city.rule_for(area.area_id, 5, Role.FEE_OFFICER)


# ---------------------------------------------------------------------------------------------------------
# Absences
# ---------------------------------------------------------------------------------------------------------


def test_about_three_percent_of_officers_are_away_over_the_reference_date(city: City):
    assert abs(len(city.absences) - 0.03 * len(city.officers)) <= 2
    midday = datetime.combine(REFERENCE_DATE, time(12), tzinfo=STOCKHOLM)
    assert all(absence.covers(midday) for absence in city.absences)


def test_absences_follow_the_given_reference_date():
    today = date(2027, 6, 15)
    city = generate_city(today=today)
    noon = datetime.combine(today, time(12), tzinfo=STOCKHOLM)
    assert city.absences
    assert all(absence.covers(noon) for absence in city.absences)
    assert all(absence.start_time.utcoffset() == timedelta(hours=2) for absence in city.absences)


def test_substitutes_are_present_active_colleagues_of_the_same_unit(cities: list[City]):
    for city in cities:
        absences = city.absences
        assert len({absence.absence_id for absence in absences}) == len(absences)
        for absence in absences:
            absent = city.officer(absence.officer_id)
            substitute = city.officer(absence.substitute_id)
            assert absent.active
            assert substitute.active
            assert substitute.unit_id == absent.unit_id
            assert substitute.officer_id != absent.officer_id
            assert absence.start_time < absence.end_time
            for other in absences:
                if other.officer_id == substitute.officer_id:
                    assert other.end_time <= absence.start_time or other.start_time >= absence.end_time


# ---------------------------------------------------------------------------------------------------------
# CSV files
# ---------------------------------------------------------------------------------------------------------


def test_csv_files_have_the_documented_headers(city: City):
    files = directory_csv_files(city)
    assert list(files) == ["units.csv", "officers.csv", "absences.csv", "areas.csv", "rules.csv"]
    assert files["units.csv"].splitlines()[0] == (
        "unit_id,display_name,district_id,mailbox,acute_phone,acute_hours,contact_policy,reception_phone,"
        "phone_hours,team_model"
    )
    assert files["officers.csv"].splitlines()[0] == (
        "officer_id,unit_id,given_name,family_name,role,specialties,languages,team,phone,email,active,caseload"
    )
    assert files["absences.csv"].splitlines()[0] == "absence_id,officer_id,start_time,end_time,substitute_id"
    assert files["areas.csv"].splitlines()[0] == "unit_id,area_id,display_name,postal_code_ranges"
    assert files["rules.csv"].splitlines()[0] == (
        "unit_id,rule_id,area_id,role,first_birth_day,last_birth_day,officer_id,team"
    )
    assert all("\r" not in content and content.endswith("\n") for content in files.values())


def test_csv_round_trip_keeps_every_value_and_swedish_letters(city: City):
    files = directory_csv_files(city)
    parsed = {name: read_csv(content) for name, content in files.items()}
    for name, (header, rows) in parsed.items():
        assert tuple(header) == HEADERS[name]
        assert all(None not in row for row in rows)

    units = parsed["units.csv"][1]
    assert [row["display_name"] for row in units] == [unit.display_name for unit in city.units]
    assert "Beställarenheten Hägersten-Älvsjö" in {row["display_name"] for row in units}
    assert {row["team_model"] for row in units} == {"true", "false"}
    for row, unit in zip(units, city.units, strict=True):
        assert row["contact_policy"] == unit.contact_policy.value
        for period in filter(None, (row["acute_hours"] + ";" + row["phone_hours"]).split(";")):
            assert HOURS.fullmatch(period)

    officers = parsed["officers.csv"][1]
    assert [(row["officer_id"], row["given_name"], row["family_name"]) for row in officers] == [
        (officer.officer_id, officer.given_name, officer.family_name) for officer in city.officers
    ]
    assert any(re.search("[åäöÅÄÖ]", row["family_name"]) for row in officers)
    for row, officer in zip(officers, city.officers, strict=True):
        assert row["languages"].split(";") == list(officer.languages)
        assert row["specialties"] == ";".join(specialty.value for specialty in officer.specialties)
        assert row["active"] == ("true" if officer.active else "false")
        assert int(row["caseload"]) == officer.caseload

    areas = parsed["areas.csv"][1]
    assert [row["display_name"] for row in areas] == [area.display_name for area in city.areas]
    for row in areas:
        assert all(re.fullmatch(r"\d{5}-\d{5}", part) for part in row["postal_code_ranges"].split(";"))

    rules = parsed["rules.csv"][1]
    assert len(rules) == len(city.rules)
    assert {row["role"] for row in rules} == {"", "special_housing"}
    assert all(bool(row["officer_id"]) != bool(row["team"]) for row in rules)

    absences = parsed["absences.csv"][1]
    assert [datetime.fromisoformat(row["start_time"]) for row in absences] == [
        absence.start_time for absence in city.absences
    ]
    assert all(row["start_time"].endswith("+01:00") for row in absences)


def test_command_line_writes_the_five_files(tmp_path: Path):
    assert main([str(tmp_path), "--seed", "3", "--officers", "120"]) == 0
    expected = directory_csv_files(generate_city(3, 120))
    written = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert written == {name: content.encode("utf-8") for name, content in expected.items()}


# ---------------------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------------------


def test_people_are_generated_lazily_and_deterministically(city: City):
    stream = generate_people(city, 10**6)
    first = [next(stream) for _ in range(500)]
    assert first == list(generate_people(city, 500))
    assert first != list(generate_people(city, 500, seed=2027))


def test_negative_count_is_refused(city: City):
    with pytest.raises(InvalidArgument):
        generate_people(city, -1)


def test_person_numbers_are_unique_and_pass_luhn_and_sex_parity(people: list[Person]):
    numbers = [person.person_number for person in people]
    assert len(set(numbers)) == len(numbers)
    for person in people:
        number = person.person_number
        assert re.fullmatch(r"\d{12}", number)
        assert luhn_valid(number[2:])
        assert (int(number[10]) % 2 == 1) == (person.sex is Sex.MALE)
        day = int(number[6:8]) - (60 if person.coordination_number else 0)
        assert date(int(number[:4]), int(number[4:6]), day) == person.birth_date


def test_person_numbers_are_accepted_by_an_independent_implementation(people: list[Person]):
    sample = people[:2000] + [person for person in people if person.coordination_number][:50]
    for person in sample:
        assert personnummer.valid(person.person_number), person.person_number
        assert personnummer.parse(person.person_number).is_male() == (person.sex is Sex.MALE)


def test_people_are_mostly_over_eighty_with_a_few_centenarians_and_coordination_numbers(
    city: City, people: list[Person]
):
    def age(person: Person) -> int:
        born = person.birth_date
        return city.today.year - born.year - ((city.today.month, city.today.day) < (born.month, born.day))

    ages = [age(person) for person in people]
    assert min(ages) >= 65
    assert min(person.birth_date.year for person in people) >= 1925
    assert max(person.birth_date.year for person in people) <= 1960
    assert sum(a >= 80 for a in ages) > 0.6 * len(people)
    assert 0 < sum(a >= 100 for a in ages) < 0.02 * len(people)
    assert 0 < sum(person.coordination_number for person in people) < 0.02 * len(people)
    assert sum(person.sex is Sex.FEMALE for person in people) > 0.55 * len(people)


def test_names_follow_sex(people: list[Person]):
    female_names = {
        name for origin in ORIGINS.values() for name in origin.given_names(female=True, older=True)
    }
    male_names = {
        name for origin in ORIGINS.values() for name in origin.given_names(female=False, older=True)
    }
    for person in people[:5000]:
        assert person.given_name in (female_names if person.sex is Sex.FEMALE else male_names)
    polish_or_russian = {"Wiśniewska", "Kamińska", "Ivanova", "Smirnova", "Papadopoulou"}
    assert all(person.sex is Sex.FEMALE for person in people if person.family_name in polish_or_russian)


def test_people_live_in_an_area_of_their_unit_and_district(city: City, people: list[Person]):
    for person in people[:20000]:
        area = city.area_for_postal_code(person.postal_code)
        assert area is not None
        assert area.area_id == person.area_id
        assert area.unit_id == person.unit_id
        assert area.postal_town == person.postal_town
        assert city.unit(person.unit_id).district_id == person.district_id
        assert re.fullmatch(r"\S.* \d+( [A-C])?", person.street_address)
    assert len({person.district_id for person in people}) == 11


def test_responsible_officer_follows_the_assignment_rules(city: City, people: list[Person]):
    for person in people:
        rule = city.rule_for(person.area_id, person.birth_date.day, person.responsible_role)
        assert (person.rule_id, person.officer_id, person.team) == (rule.rule_id, rule.officer_id, rule.team)
    team_unit = next(unit for unit in city.units if unit.team_model)
    in_team_unit = [p for p in people if p.unit_id == team_unit.unit_id and p.responsible_role is None]
    assert in_team_unit
    assert all(p.team and not p.officer_id for p in in_team_unit)


def test_coordination_numbers_are_routed_by_the_real_day_of_birth(city: City, people: list[Person]):
    coordinated = [person for person in people if person.coordination_number]
    assert coordinated
    for person in coordinated:
        assert int(person.person_number[6:8]) == person.birth_date.day + 60
        rule = city.rule_for(person.area_id, int(person.person_number[6:8]) - 60, person.responsible_role)
        assert person.rule_id == rule.rule_id
