"""resolve_in_unit: the named officer, then the rules for the need, then a specialist, then the intake."""

from __future__ import annotations

from datetime import date, timedelta

from services.common.personnummer import parse_person_number
from services.directory.model import (
    Decision,
    Officer,
    OfficerRole,
    Responsible,
    Specialty,
    UnitSnapshot,
    resolve_in_unit,
)
from tests.person_numbers import person_number
from tests.unit.directory.builders import (
    MONDAY_NOON,
    absence,
    area,
    district,
    officer,
    rule,
    snapshot,
    unit,
)

AT = MONDAY_NOON
WEEK = (AT - timedelta(days=2), AT + timedelta(days=5))

ANNA = officer("anna-berg", caseload=80)
BO = officer("bo-lind", caseload=70)
CECILIA = officer("cecilia-ek", role=OfficerRole.SPECIAL_HOUSING, caseload=50)
DAVID = officer("david-holm", caseload=65)
EVA = officer("eva-strom", caseload=75)
FRIDA = officer("frida-sjo", caseload=55)
TEAM_A = officer("gustav-nord", team="Team Norr")
TEAM_B = officer("hanna-nord", team="Team Norr")
TEAM_C = officer("ida-nord", team="Team Norr")

RULES = (
    rule("intake-1-15", 1, 15, officer_id="anna-berg"),
    rule("intake-16-31", 16, 31, officer_id="bo-lind"),
    rule("special-housing", 1, 31, role=OfficerRole.SPECIAL_HOUSING, officer_id="cecilia-ek"),
    rule("prevention-team", 1, 31, role=OfficerRole.PREVENTION, team="Team Norr"),
)
STAFF = [ANNA, BO, CECILIA, DAVID, EVA, FRIDA, TEAM_A, TEAM_B, TEAM_C]


FARSTA_AREAS = (area("farsta", ("12340", "12349")),)


def farsta(officers=STAFF, absences=(), areas=FARSTA_AREAS, rules=RULES):
    return snapshot(unit(), list(officers), areas=areas, rules=rules, absences=absences)


def resolve(
    unit_snapshot: UnitSnapshot,
    *,
    birth_day: int = 3,
    postal_code: str | None = "12345",
    need_role: OfficerRole | None = None,
    need_specialty: Specialty | None = None,
    named: Officer | None = None,
) -> Responsible:
    return resolve_in_unit(
        unit_snapshot,
        district=district(),
        birth_day=birth_day,
        postal_code=postal_code,
        need_role=need_role,
        need_specialty=need_specialty,
        named_officer=named,
        at=AT,
    )


def away(officer_id: str, substitute_id: str, start=WEEK[0], end=WEEK[1]):
    return absence(officer_id, substitute_id, start, end)


def test_the_rule_for_the_area_and_day_of_birth_names_the_officer():
    early, late = resolve(farsta(), birth_day=15), resolve(farsta(), birth_day=16)

    assert (early.decision, early.officer, early.rule_id) == (Decision.ASSIGNMENT_RULE, ANNA, "intake-1-15")
    assert (late.officer, late.rule_id, late.area_id) == (BO, "intake-16-31", "farsta")


def test_the_named_officer_wins_over_the_rules():
    found = resolve(farsta(), birth_day=3, named=DAVID)

    assert found.decision is Decision.NAMED_OFFICER
    assert found.officer == DAVID
    assert found.absent_officer is None
    assert found.rule_id == ""


def test_a_named_officer_of_another_unit_is_ignored_and_the_rules_decide():
    stranger = officer("olle-bromma", unit_id="bromma-bestallarenhet")

    found = resolve(farsta(), birth_day=3, named=stranger)

    assert (found.decision, found.officer) == (Decision.ASSIGNMENT_RULE, ANNA)


def test_an_absent_named_officer_is_replaced_by_their_substitute():
    found = resolve(farsta(absences=[away("david-holm", "eva-strom")]), named=DAVID)

    assert found.decision is Decision.NAMED_OFFICER
    assert found.officer == EVA
    assert found.absent_officer == DAVID


def test_an_absent_substitute_is_replaced_by_their_own_substitute():
    absences = [away("david-holm", "eva-strom"), away("eva-strom", "frida-sjo")]

    found = resolve(farsta(absences=absences), named=DAVID)

    assert found.officer == FRIDA
    assert found.absent_officer == DAVID


def test_an_absence_that_has_ended_no_longer_counts():
    ended = away("david-holm", "eva-strom", start=AT - timedelta(days=7), end=AT)

    found = resolve(farsta(absences=[ended]), named=DAVID)

    assert (found.officer, found.absent_officer) == (DAVID, None)


def test_an_absent_officer_named_by_a_rule_is_replaced_by_their_substitute():
    found = resolve(farsta(absences=[away("anna-berg", "frida-sjo")]), birth_day=3)

    assert found.decision is Decision.ASSIGNMENT_RULE
    assert (found.officer, found.absent_officer, found.rule_id) == (FRIDA, ANNA, "intake-1-15")


def test_substitutes_that_stand_in_for_each_other_in_a_circle_send_the_case_to_the_intake():
    absences = [away("anna-berg", "frida-sjo"), away("frida-sjo", "anna-berg")]

    found = resolve(farsta(absences=absences), birth_day=3)

    assert found.decision is Decision.UNIT_INTAKE
    assert found.officer is None
    assert found.absent_officer == ANNA


def test_a_team_rule_answers_with_the_teams_present_members():
    absences = [away("hanna-nord", "gustav-nord")]

    found = resolve(farsta(absences=absences), need_role=OfficerRole.PREVENTION)

    assert found.decision is Decision.ASSIGNMENT_RULE
    assert found.team == "Team Norr"
    assert found.team_members == (TEAM_A, TEAM_C)
    assert found.officer is None


def test_a_need_for_a_role_is_decided_by_the_rules_for_that_role():
    found = resolve(farsta(), birth_day=3, need_role=OfficerRole.SPECIAL_HOUSING)

    assert (found.decision, found.officer, found.rule_id) == (
        Decision.ASSIGNMENT_RULE,
        CECILIA,
        "special-housing",
    )


def test_a_role_without_rules_goes_to_the_least_loaded_officer_with_that_role():
    planners = [
        officer("jon-plan", role=OfficerRole.DISCHARGE_PLANNING, caseload=40),
        officer("kim-plan", role=OfficerRole.DISCHARGE_PLANNING, caseload=30),
    ]

    found = resolve(farsta([*STAFF, *planners]), need_role=OfficerRole.DISCHARGE_PLANNING)

    assert (found.decision, found.officer) == (Decision.SPECIALIST, planners[1])


def test_a_specialty_goes_to_the_least_loaded_present_active_specialist():
    specialists = [
        officer("lisa-demens", specialties=(Specialty.DEMENTIA,), caseload=70),
        officer("mats-demens", specialties=(Specialty.DEMENTIA,), caseload=40),
        officer("nils-demens", specialties=(Specialty.DEMENTIA,), caseload=10, active=False),
        officer("ola-demens", specialties=(Specialty.DEMENTIA,), caseload=5),
    ]
    absences = [away("ola-demens", "lisa-demens")]

    found = resolve(farsta([*STAFF, *specialists], absences=absences), need_specialty=Specialty.DEMENTIA)

    assert (found.decision, found.officer) == (Decision.SPECIALIST, specialists[1])


def test_the_unit_intake_takes_the_case_when_nothing_decides():
    two_areas = (area("farsta", ("12340", "12349")), area("sked", ("12350", "12359")))

    found = resolve(farsta(areas=two_areas), postal_code="99999", need_specialty=Specialty.LSS)

    assert found.decision is Decision.UNIT_INTAKE
    assert (found.officer, found.team, found.rule_id, found.area_id) == (None, "", "", "")
    assert found.unit == unit()


def test_a_unit_with_one_area_uses_it_when_the_postal_code_is_unknown():
    found = resolve(farsta(), postal_code=None, birth_day=20)

    assert (found.area_id, found.officer) == ("farsta", BO)


def test_a_coordination_number_is_routed_by_its_day_of_birth_minus_sixty():
    born = date(1941, 5, 20)
    number = parse_person_number(person_number(born, coordination=True))

    found = resolve(farsta(), birth_day=number.birth_date.day)

    assert number.is_coordination_number
    assert number.digits[6:8] == "80"
    assert (found.officer, found.rule_id) == (BO, "intake-16-31")
