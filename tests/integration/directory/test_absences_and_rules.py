"""Absences with their substitutes, and ReplaceAssignmentRules, checked whole before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.common.errors import InvalidArgument, NotFound, StaleEtag
from services.common.etags import etag_for
from services.common.pagination import PageTokens, development_key
from services.directory import handlers
from services.directory.model import OfficerRole, RuleSet
from tests.unit.directory.builders import ADMIN, absence, area, officer, rule, unit

CET = timezone(timedelta(hours=1))
FARSTA = unit()
SKARHOLMEN = unit("skarholmen-bestallarenhet", district_id="skarholmen")
ANNA = officer("anna-berg")
BO = officer("bo-lind")
CECILIA = officer("cecilia-ek", role=OfficerRole.SPECIAL_HOUSING)
OLLE = officer("olle-sater", unit_id=SKARHOLMEN.unit_id)
MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=CET)
PAGES = PageTokens([development_key("directory")], service="directory")


@pytest.fixture
async def staffed(directory):
    for the_unit in (FARSTA, SKARHOLMEN):
        await handlers.create_unit(directory=directory, caller=ADMIN, unit=the_unit)
    for the_officer in (ANNA, BO, CECILIA, OLLE):
        await handlers.create_officer(directory=directory, caller=ADMIN, officer=the_officer)
    return directory


async def add_absence(directory, start, end, *, substitute="bo-lind", officer_id="anna-berg"):
    return await handlers.create_absence(
        directory=directory, absence=absence(officer_id, substitute, start, end)
    )


async def absences_of(directory, officer_id="anna-berg"):
    items, _ = await handlers.list_absences(
        directory=directory,
        officer_id=officer_id,
        page=PAGES.page(0, "", {"absences": officer_id}, owner=ADMIN),
    )
    return items


async def field_of_refusal(directory, start, end, **kwargs) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        await add_absence(directory, start, end, **kwargs)
    return [v.field for v in caught.value.violations]


async def test_an_absence_is_read_back_at_the_moments_it_was_given(staffed):
    await add_absence(staffed, MONDAY, MONDAY + timedelta(days=4, hours=9))

    (stored,) = await absences_of(staffed)

    assert stored.start == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert stored.end == MONDAY + timedelta(days=4, hours=9)
    assert stored.substitute_id == "bo-lind"


async def test_an_absence_that_ends_before_it_starts_is_refused(staffed):
    fields = await field_of_refusal(staffed, MONDAY, MONDAY - timedelta(hours=1))

    assert fields == ["absence.end_time"]
    assert await absences_of(staffed) == []


async def test_a_substitute_from_another_unit_is_refused_naming_the_substitute(staffed):
    with pytest.raises(InvalidArgument) as caught:
        await add_absence(staffed, MONDAY, MONDAY + timedelta(days=1), substitute="olle-sater")

    assert [v.field for v in caught.value.violations] == ["absence.substitute"]
    assert "same unit" in caught.value.violations[0].description
    assert await absences_of(staffed) == []


async def test_a_substitute_who_does_not_exist_is_refused_naming_the_substitute(staffed):
    fields = await field_of_refusal(staffed, MONDAY, MONDAY + timedelta(days=1), substitute="nils-nobody")

    assert fields == ["absence.substitute"]


async def test_an_absence_overlapping_another_of_the_same_officer_is_refused(staffed):
    await add_absence(staffed, MONDAY, MONDAY + timedelta(days=2))

    fields = await field_of_refusal(
        staffed, MONDAY + timedelta(days=1), MONDAY + timedelta(days=3), substitute="cecilia-ek"
    )

    assert fields == ["absence.start_time"]
    assert len(await absences_of(staffed)) == 1


async def test_an_absence_that_starts_when_the_last_one_ends_is_accepted(staffed):
    await add_absence(staffed, MONDAY, MONDAY + timedelta(days=2))

    await add_absence(staffed, MONDAY + timedelta(days=2), MONDAY + timedelta(days=3))

    assert len(await absences_of(staffed)) == 2


async def test_absences_given_in_different_offsets_are_compared_as_moments(staffed):
    # 08:00–12:00 in Stockholm is 07:00–11:00 UTC, so one starting at 11:00 UTC follows it.
    await add_absence(staffed, MONDAY, MONDAY + timedelta(hours=4))

    await add_absence(
        staffed, datetime(2026, 11, 23, 11, 0, tzinfo=UTC), datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    )
    fields = await field_of_refusal(
        staffed, datetime(2026, 11, 23, 10, 59, tzinfo=UTC), datetime(2026, 11, 23, 10, 59, 30, tzinfo=UTC)
    )

    assert fields == ["absence.start_time"]


async def test_a_deleted_absence_is_gone_and_a_second_delete_is_not_found(staffed):
    created = await add_absence(staffed, MONDAY, MONDAY + timedelta(days=1))

    await handlers.delete_absence(
        directory=staffed, officer_id=created.officer_id, absence_id=created.absence_id
    )

    assert await absences_of(staffed) == []
    with pytest.raises(NotFound):
        await handlers.delete_absence(
            directory=staffed, officer_id=created.officer_id, absence_id=created.absence_id
        )


# ---- assignment rules -------------------------------------------------------------------------------------

AREAS = (area("farsta", ("12340", "12349")),)


def rules_of(*rules) -> RuleSet:
    return RuleSet(unit_id=FARSTA.unit_id, areas=AREAS, rules=tuple(rules))


async def current_rules(directory) -> RuleSet:
    return await handlers.get_assignment_rules(directory=directory, unit_id=FARSTA.unit_id)


async def replace_rules(directory, rule_set: RuleSet, *, etag: str | None = None) -> RuleSet:
    if etag is None:
        current = await current_rules(directory)
        etag = etag_for(current.name, current.revision)
    return await handlers.replace_assignment_rules(directory=directory, rule_set=rule_set, etag=etag)


GOOD = rules_of(
    rule("intake-1-15", 1, 15, officer_id="anna-berg"),
    rule("intake-16-31", 16, 31, officer_id="bo-lind"),
    rule("special", 1, 31, role=OfficerRole.SPECIAL_HOUSING, officer_id="cecilia-ek"),
)


async def test_a_complete_rule_set_replaces_the_units_rules(staffed):
    stored = await replace_rules(staffed, GOOD)

    found = await current_rules(staffed)

    assert (found.areas, found.rules) == (GOOD.areas, GOOD.rules)
    assert found.revision == stored.revision == 1


@pytest.mark.parametrize(
    ("rules", "bad_rule", "description"),
    [
        (
            (rule("early", 1, 14, officer_id="anna-berg"), rule("late", 16, 31, officer_id="bo-lind")),
            "rule_set.rules[1]",
            "'late' leaves days 15–15 uncovered",
        ),
        (
            (rule("early", 1, 16, officer_id="anna-berg"), rule("late", 16, 31, officer_id="bo-lind")),
            "rule_set.rules[1]",
            "'late' overlaps days 16–16",
        ),
    ],
    ids=["gap", "overlap"],
)
async def test_rules_with_a_gap_or_overlap_are_refused_naming_the_rule_and_nothing_is_written(
    staffed, rules, bad_rule, description
):
    await replace_rules(staffed, GOOD)
    before = await current_rules(staffed)

    with pytest.raises(InvalidArgument) as caught:
        await replace_rules(staffed, rules_of(*rules))

    assert [v.field for v in caught.value.violations] == [bad_rule]
    assert description in caught.value.violations[0].description
    assert await current_rules(staffed) == before


async def test_rules_naming_an_officer_of_another_unit_are_refused(staffed):
    with pytest.raises(InvalidArgument) as caught:
        await replace_rules(staffed, rules_of(rule("intake", 1, 31, officer_id="olle-sater")))

    assert [v.field for v in caught.value.violations] == ["rule_set.rules[0].officer"]


async def test_an_area_overlapping_another_units_area_is_refused(staffed):
    skarholmen = RuleSet(
        unit_id=SKARHOLMEN.unit_id,
        areas=(area("satra", ("12345", "12359")),),
        rules=(rule("intake", 1, 31, area_id="satra", officer_id="olle-sater"),),
    )
    await replace_rules(staffed, GOOD)

    with pytest.raises(InvalidArgument) as caught:
        await handlers.replace_assignment_rules(
            directory=staffed, rule_set=skarholmen, etag=etag_for(skarholmen.name, 0)
        )

    assert [v.field for v in caught.value.violations] == ["rule_set.areas"]
    assert "units/farsta-bestallarenhet" in caught.value.violations[0].description


async def test_rules_replaced_with_a_stale_etag_are_aborted(staffed):
    first_etag = etag_for(GOOD.name, 0)
    await replace_rules(staffed, GOOD, etag=first_etag)

    with pytest.raises(StaleEtag):
        await replace_rules(staffed, rules_of(rule("all", 1, 31, officer_id="bo-lind")), etag=first_etag)

    assert (await current_rules(staffed)).rules == GOOD.rules
