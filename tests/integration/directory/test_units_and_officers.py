"""Creating and updating units and officers: etags against lost updates, masks for partial updates."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest

from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, StaleEtag
from services.common.etags import etag_for
from services.common.status import status_code
from services.directory import handlers
from services.directory.model import ContactPolicy, OfficerRole, RuleSet
from tests.unit.directory.builders import ADMIN, area, officer, rule, unit

UNIT = unit()
ANNA = officer("anna-berg")


def etag(resource) -> str:
    return etag_for(resource.name, resource.revision)


async def create_unit(directory, the_unit=UNIT):
    return (await handlers.create_unit(directory=directory, caller=ADMIN, unit=the_unit)).unit


async def create_officer(directory, the_officer=ANNA):
    return (await handlers.create_officer(directory=directory, caller=ADMIN, officer=the_officer)).officer


async def update_unit(directory, the_unit, *, etag: str, mask=()):
    view = await handlers.update_unit(
        directory=directory, caller=ADMIN, unit=the_unit, etag=etag, update_mask=list(mask)
    )
    return view.unit


async def update_officer(directory, the_officer, *, etag: str, mask=()):
    view = await handlers.update_officer(
        directory=directory, caller=ADMIN, officer=the_officer, etag=etag, update_mask=list(mask)
    )
    return view.officer


async def stored_unit(directory):
    return (await handlers.get_unit(directory=directory, caller=ADMIN, unit_id=UNIT.unit_id)).unit


async def stored_officer(directory):
    return (await handlers.get_officer(directory=directory, caller=ADMIN, officer_id=ANNA.officer_id)).officer


async def test_a_created_unit_is_read_back_as_it_was_given(directory):
    created = await create_unit(directory)

    found = await stored_unit(directory)

    assert found == created
    assert replace(found, revision=1, create_time=None, update_time=None) == UNIT
    assert found.create_time is not None


async def test_a_unit_of_an_unknown_district_is_not_found(directory):
    with pytest.raises(NotFound) as caught:
        await create_unit(directory, unit(district_id="atlantis"))

    assert caught.value.resource_name == "districts/atlantis"


async def test_a_unit_id_that_is_taken_is_refused(directory):
    await create_unit(directory)

    with pytest.raises(AlreadyExists) as caught:
        await create_unit(directory, unit(display_name="Another"))

    assert caught.value.reason == "ALREADY_EXISTS"
    assert (await stored_unit(directory)).display_name == UNIT.display_name


async def test_an_update_with_the_current_etag_is_applied_and_changes_the_etag(directory):
    created = await create_unit(directory)

    updated = await update_unit(directory, replace(created, display_name="Nya namnet"), etag=etag(created))

    assert updated.display_name == "Nya namnet"
    assert etag(updated) != etag(created)
    assert (await stored_unit(directory)).display_name == "Nya namnet"


async def test_an_update_with_a_stale_etag_is_aborted_and_changes_nothing(directory):
    created = await create_unit(directory)
    await update_unit(directory, replace(created, display_name="Först"), etag=etag(created))

    with pytest.raises(StaleEtag) as caught:
        await update_unit(directory, replace(created, display_name="Sist"), etag=etag(created))

    assert status_code(caught.value) is grpc.StatusCode.ABORTED
    assert (await stored_unit(directory)).display_name == "Först"


async def test_an_update_without_an_etag_is_refused_naming_the_etag(directory):
    created = await create_unit(directory)

    with pytest.raises(InvalidArgument) as caught:
        await update_unit(directory, replace(created, display_name="Blind"), etag="")

    assert [v.field for v in caught.value.violations] == ["unit.etag"]
    assert status_code(caught.value) is grpc.StatusCode.INVALID_ARGUMENT
    assert (await stored_unit(directory)).display_name == UNIT.display_name


async def test_an_update_mask_applies_only_the_fields_it_lists(directory):
    created = await create_unit(directory)
    sent = replace(
        created,
        display_name="Ska inte ändras",
        mailbox="ny.brevlada@example.stockholm.se",
        acute_phone="08-508 99 999",
    )

    updated = await update_unit(directory, sent, etag=etag(created), mask=["mailbox"])

    assert updated.mailbox == "ny.brevlada@example.stockholm.se"
    assert (updated.display_name, updated.acute_phone) == (UNIT.display_name, UNIT.acute_phone)
    assert await stored_unit(directory) == updated


async def test_a_change_of_contact_policy_is_checked_against_the_whole_unit(directory):
    created = await create_unit(directory)
    closed = replace(created, contact_policy=ContactPolicy.CONTACT_CENTER_ONLY)

    # The unit still has its reception phone, which a unit reached only through Äldre direkt may not have.
    with pytest.raises(InvalidArgument) as caught:
        await update_unit(directory, closed, etag=etag(created), mask=["contact_policy"])

    assert [v.field for v in caught.value.violations] == ["unit.reception_phone"]


async def test_an_update_mask_naming_a_field_that_cannot_be_written_is_refused(directory):
    created = await create_unit(directory)

    with pytest.raises(InvalidArgument) as caught:
        await update_unit(directory, created, etag=etag(created), mask=["mailbox", "revision"])

    assert [v.field for v in caught.value.violations] == ["update_mask[1]"]


async def test_an_update_of_a_unit_that_does_not_exist_is_not_found(directory):
    with pytest.raises(NotFound):
        await update_unit(directory, unit("ghost"), etag=etag_for("units/ghost", 1))


async def test_a_created_officer_is_read_back_as_it_was_given(directory):
    await create_unit(directory)
    created = await create_officer(directory, replace(ANNA, languages=("sv", "fi", "ar"), team="Team Ö"))

    found = await stored_officer(directory)

    assert found == created
    assert (found.languages, found.team) == (("sv", "fi", "ar"), "Team Ö")


async def test_an_officer_of_a_unit_that_does_not_exist_is_not_found(directory):
    with pytest.raises(NotFound) as caught:
        await create_officer(directory)

    assert caught.value.resource_name == "units/farsta-bestallarenhet"


async def test_an_officer_with_an_e_mail_address_too_long_to_store_is_refused(directory):
    await create_unit(directory)
    too_long = replace(ANNA, email="a" * 190 + "@example.stockholm.se")

    with pytest.raises(InvalidArgument) as caught:
        await create_officer(directory, too_long)

    assert [v.field for v in caught.value.violations] == ["officer.email"]


async def test_an_officer_update_with_a_stale_etag_is_aborted(directory):
    await create_unit(directory)
    created = await create_officer(directory)
    await update_officer(directory, replace(created, caseload=61), etag=etag(created))

    with pytest.raises(StaleEtag):
        await update_officer(directory, replace(created, caseload=99), etag=etag(created))

    assert (await stored_officer(directory)).caseload == 61


async def test_an_officer_update_without_an_etag_is_refused_naming_the_etag(directory):
    await create_unit(directory)
    created = await create_officer(directory)

    with pytest.raises(InvalidArgument) as caught:
        await update_officer(directory, replace(created, caseload=99), etag="")

    assert [v.field for v in caught.value.violations] == ["officer.etag"]


async def test_an_officer_update_mask_applies_only_the_fields_it_lists(directory):
    await create_unit(directory)
    created = await create_officer(directory)
    sent = replace(created, caseload=12, languages=("ar",), given_name="Ignored", role=OfficerRole.PREVENTION)

    updated = await update_officer(directory, sent, etag=etag(created), mask=["caseload", "languages"])

    assert (updated.caseload, updated.languages) == (12, ("ar",))
    assert (updated.given_name, updated.role) == (ANNA.given_name, ANNA.role)
    assert await stored_officer(directory) == updated


async def test_an_officer_still_named_by_a_rule_cannot_be_made_inactive(directory):
    await create_unit(directory)
    created = await create_officer(directory)
    rules = RuleSet(
        unit_id=UNIT.unit_id, areas=(area(),), rules=(rule("intake", 1, 31, officer_id="anna-berg"),)
    )
    await handlers.replace_assignment_rules(directory=directory, rule_set=rules, etag=etag_for(rules.name, 0))

    with pytest.raises(FailedPrecondition) as caught:
        await update_officer(directory, replace(created, active=False), etag=etag(created), mask=["active"])

    assert caught.value.reason == "OFFICER_IN_USE"
    assert (await stored_officer(directory)).active
