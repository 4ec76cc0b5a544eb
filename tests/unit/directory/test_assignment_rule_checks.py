"""rule_set_violations: every (area, need) covers the days of birth 1–31 once, with people who can take it."""

from __future__ import annotations

import pytest

from services.common.errors import FieldViolation
from services.directory.model import OfficerRole, RuleSet, rule_set_violations
from tests.unit.directory.builders import area, officer, rule

UNIT_ID = "farsta-bestallarenhet"
OFFICERS = {
    o.officer_id: o
    for o in (
        officer("anna-berg", team="Team Norr"),
        officer("bo-lind", team="Team Norr"),
        officer("cecilia-ek", role=OfficerRole.SPECIAL_HOUSING),
        officer("dan-wik", team="Team Syd", active=False),
    )
}

ONE_AREA = (area(),)


def violations(*rules, areas=ONE_AREA, others=()) -> list[FieldViolation]:
    rule_set = RuleSet(unit_id=UNIT_ID, areas=tuple(areas), rules=tuple(rules))
    return rule_set_violations(rule_set, officers=OFFICERS, other_units_areas=others)


def test_rules_that_cover_every_day_once_per_need_are_accepted():
    assert (
        violations(
            rule("intake-1", 1, 15),
            rule("intake-2", 16, 31, officer_id="bo-lind"),
            rule("special", 1, 31, role=OfficerRole.SPECIAL_HOUSING, officer_id="cecilia-ek"),
            rule("team", 1, 31, role=OfficerRole.PREVENTION, team="Team Norr"),
        )
        == []
    )


def test_a_gap_between_rules_is_refused_naming_the_rule_after_it():
    found = violations(rule("early", 1, 10), rule("late", 12, 31))

    assert [v.field for v in found] == ["rule_set.rules[1]"]
    assert "'late' leaves days 11–11 uncovered" in found[0].description
    assert "area 'farsta'" in found[0].description


def test_a_gap_before_the_first_rule_is_refused():
    found = violations(rule("late", 3, 31))

    assert [v.field for v in found] == ["rule_set.rules[0]"]
    assert "leaves days 1–2 uncovered" in found[0].description


def test_overlapping_rules_are_refused_naming_the_overlapping_days():
    found = violations(rule("first-half", 1, 15), rule("second-half", 14, 31))

    assert [v.field for v in found] == ["rule_set.rules[1]"]
    assert "'second-half' overlaps days 14–15" in found[0].description


@pytest.mark.parametrize("last_day", [27, 28, 29, 30])
def test_rules_that_stop_before_the_31st_leave_the_end_of_the_month_uncovered(last_day):
    found = violations(rule("intake", 1, last_day))

    assert [v.field for v in found] == ["rule_set.rules[0]"]
    assert f"leaves days {last_day + 1}–31 uncovered" in found[0].description


def test_coverage_is_checked_per_need_so_a_role_of_its_own_must_cover_the_month_too():
    found = violations(
        rule("intake", 1, 31),
        rule("special", 1, 20, role=OfficerRole.SPECIAL_HOUSING, officer_id="cecilia-ek"),
    )

    assert [v.field for v in found] == ["rule_set.rules[1]"]
    assert "days 21–31 uncovered" in found[0].description
    assert "(special_housing)" in found[0].description


@pytest.mark.parametrize(("first", "last"), [(0, 31), (1, 32), (20, 10)])
def test_days_outside_one_to_thirty_one_or_reversed_are_refused(first, last):
    found = violations(rule("odd", first, last))

    assert "rule_set.rules[0].first_birth_day" in [v.field for v in found]


def test_a_rule_for_an_area_the_unit_does_not_have_is_refused():
    found = violations(rule("intake", 1, 31, area_id="atlantis"))

    assert [v.field for v in found] == ["rule_set.rules[0].area_id"]
    assert "'atlantis'" in found[0].description


def test_a_rule_naming_an_officer_of_another_unit_is_refused():
    # The officers passed in are the unit's own; anyone else is, from the unit's view, not there.
    found = violations(rule("intake", 1, 31, officer_id="erik-from-bromma"))

    assert [v.field for v in found] == ["rule_set.rules[0].officer"]
    assert "officers/erik-from-bromma is not in this unit" in found[0].description


def test_a_rule_naming_an_inactive_officer_is_refused():
    found = violations(rule("intake", 1, 31, officer_id="dan-wik"))

    assert [v.field for v in found] == ["rule_set.rules[0].officer"]
    assert "is not active" in found[0].description


def test_a_rule_for_a_team_with_no_active_member_is_refused():
    found = violations(rule("intake", 1, 31, team="Team Syd"))

    assert [v.field for v in found] == ["rule_set.rules[0].team"]
    assert "'Team Syd' has no active officer" in found[0].description


def test_a_rule_naming_both_an_officer_and_a_team_is_refused():
    found = violations(rule("intake", 1, 31, officer_id="anna-berg", team="Team Norr"))

    assert [v.field for v in found] == ["rule_set.rules[0].responsible"]


def test_a_rule_id_used_twice_is_refused():
    found = violations(rule("intake", 1, 15), rule("intake", 16, 31))

    assert [v.field for v in found] == ["rule_set.rules[1].rule_id"]


def test_areas_of_one_unit_whose_postal_codes_overlap_are_refused():
    found = violations(
        rule("north", 1, 31, area_id="north"),
        rule("south", 1, 31, area_id="south"),
        areas=(area("north", ("12340", "12349")), area("south", ("12349", "12359"))),
    )

    assert {v.field for v in found} == {"rule_set.areas"}
    assert any("12340-12349 of area 'north' overlap 12349-12359 of south" in v.description for v in found)


def test_areas_of_one_unit_that_only_touch_are_accepted():
    found = violations(
        rule("north", 1, 31, area_id="north"),
        rule("south", 1, 31, area_id="south"),
        areas=(area("north", ("12340", "12349")), area("south", ("12350", "12359"))),
    )

    assert found == []


def test_an_area_whose_postal_codes_belong_to_another_unit_is_refused():
    bromma = ("bromma-bestallarenhet", area("alvik", ("12300", "12345")))

    found = violations(rule("intake", 1, 31), others=[bromma])

    assert [v.field for v in found] == ["rule_set.areas"]
    assert "units/bromma-bestallarenhet area alvik" in found[0].description


def test_an_area_next_to_another_units_area_is_accepted():
    bromma = ("bromma-bestallarenhet", area("alvik", ("12300", "12339")))

    assert violations(rule("intake", 1, 31), others=[bromma]) == []


@pytest.mark.parametrize(
    ("ranges", "description"),
    [((("1234", "12349"),), "five digits"), ((("12349", "12340"),), "last must not be before first")],
)
def test_malformed_postal_code_ranges_are_refused(ranges, description):
    found = violations(rule("intake", 1, 31), areas=(area("farsta", *ranges),))

    assert [v.field for v in found] == ["rule_set.areas[0].postal_code_ranges[0]"]
    assert description in found[0].description
