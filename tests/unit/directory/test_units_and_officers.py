"""The rules for a unit's contact policy, who may see direct numbers, and what an officer may hold."""

from __future__ import annotations

from datetime import time

import pytest

from services.directory.model import (
    ContactPolicy,
    WeeklyPeriod,
    may_see_direct_numbers,
    officer_violations,
    public_route,
    unit_violations,
)
from tests.unit.directory.builders import officer, unit

TUESDAY_PHONE_HOURS = (WeeklyPeriod(2, time(9, 0), time(11, 0)),)
CONTACT_CENTER = "08-80 65 65"


def fields(violations) -> list[str]:
    return [v.field for v in violations]


def test_a_unit_with_phone_hours_and_a_reception_phone_is_valid():
    assert (
        unit_violations(unit(contact_policy=ContactPolicy.PHONE_HOURS, phone_hours=TUESDAY_PHONE_HOURS)) == []
    )


def test_the_phone_hours_policy_needs_phone_hours():
    found = unit_violations(unit(contact_policy=ContactPolicy.PHONE_HOURS, phone_hours=()))

    assert fields(found) == ["unit.phone_hours"]
    assert "required" in found[0].description


def test_phone_hours_are_refused_for_a_policy_without_them():
    found = unit_violations(unit(contact_policy=ContactPolicy.OPEN_PHONE, phone_hours=TUESDAY_PHONE_HOURS))

    assert fields(found) == ["unit.phone_hours"]


def test_a_unit_reached_only_through_the_contact_center_has_no_reception_phone():
    found = unit_violations(
        unit(contact_policy=ContactPolicy.CONTACT_CENTER_ONLY, reception_phone="08-508 18 100")
    )

    assert fields(found) == ["unit.reception_phone"]
    assert "must be empty" in found[0].description


def test_a_unit_reached_only_through_the_contact_center_is_valid_without_a_reception_phone():
    assert unit_violations(unit(contact_policy=ContactPolicy.CONTACT_CENTER_ONLY, reception_phone="")) == []


@pytest.mark.parametrize("policy", [ContactPolicy.OPEN_PHONE, ContactPolicy.PHONE_HOURS])
def test_policies_that_give_out_the_reception_phone_need_one(policy):
    hours = TUESDAY_PHONE_HOURS if policy is ContactPolicy.PHONE_HOURS else ()

    found = unit_violations(unit(contact_policy=policy, reception_phone="", phone_hours=hours))

    assert fields(found) == ["unit.reception_phone"]


def test_overlapping_acute_hours_on_one_day_are_refused():
    hours = (WeeklyPeriod(1, time(8, 0), time(12, 0)), WeeklyPeriod(1, time(11, 0), time(15, 0)))

    assert fields(unit_violations(unit(acute_hours=hours))) == ["unit.acute_hours"]


def test_every_bad_field_of_a_unit_is_reported_at_once():
    found = unit_violations(unit(unit_id="Farsta!", mailbox="nope", acute_phone="ring mig"))

    assert set(fields(found)) == {"unit.name", "unit.mailbox", "unit.acute_phone"}


def test_the_public_is_sent_to_the_contact_center_for_a_unit_reached_only_through_it():
    route = public_route(
        unit(contact_policy=ContactPolicy.CONTACT_CENTER_ONLY, reception_phone=""), CONTACT_CENTER
    )

    assert (route.phone, route.hours) == (CONTACT_CENTER, ())


def test_the_public_is_given_the_phone_hours_of_a_phone_hours_unit():
    route = public_route(
        unit(contact_policy=ContactPolicy.PHONE_HOURS, phone_hours=TUESDAY_PHONE_HOURS), CONTACT_CENTER
    )

    assert (route.phone, route.hours) == ("08-508 18 100", TUESDAY_PHONE_HOURS)


CLOSED = unit(contact_policy=ContactPolicy.CONTACT_CENTER_ONLY, reception_phone="")


@pytest.mark.parametrize(
    ("caller_unit_id", "is_admin", "allowed"),
    [
        (None, False, False),  # an agent of the contact center
        ("bromma-bestallarenhet", False, False),  # staff of another unit
        ("farsta-bestallarenhet", False, True),  # the unit's own staff
        (None, True, True),  # a directory administrator
    ],
)
def test_direct_numbers_of_a_unit_reached_only_through_the_contact_center_stay_with_its_staff(
    caller_unit_id, is_admin, allowed
):
    assert may_see_direct_numbers(unit=CLOSED, caller_unit_id=caller_unit_id, is_admin=is_admin) is allowed


@pytest.mark.parametrize(
    "policy", [ContactPolicy.DIRECT_NUMBERS, ContactPolicy.OPEN_PHONE, ContactPolicy.PHONE_HOURS]
)
def test_direct_numbers_of_other_units_are_visible_to_everyone(policy):
    assert may_see_direct_numbers(unit=unit(contact_policy=policy), caller_unit_id=None, is_admin=False)


def test_an_officer_with_good_fields_is_valid():
    assert officer_violations(officer("anna-berg")) == []


def test_an_e_mail_address_longer_than_its_column_is_refused():
    long_address = "a" * 190 + "@example.stockholm.se"

    found = officer_violations(officer("anna-berg", email=long_address))

    assert fields(found) == ["officer.email"]
    assert "at most 200" in found[0].description


def test_a_mailbox_longer_than_its_column_is_refused():
    found = unit_violations(unit(mailbox="a" * 190 + "@example.stockholm.se"))

    assert fields(found) == ["unit.mailbox"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"languages": ("svenska",)}, "officer.languages[0]"),
        ({"languages": ("sv", "sv")}, "officer.languages"),
        ({"team": "Team <script>"}, "officer.team"),
        ({"caseload": -1}, "officer.caseload"),
        ({"given_name": "  "}, "officer.given_name"),
        ({"phone": "123"}, "officer.phone"),
    ],
)
def test_bad_officer_fields_are_refused_naming_the_field(changes, field):
    assert fields(officer_violations(officer("anna-berg", **changes))) == [field]
