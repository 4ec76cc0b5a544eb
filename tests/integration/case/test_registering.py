"""Registering contacts as cases, linking new contacts to open ones, and resolving at the contact center."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case import handlers
from services.case.handlers import Cases
from services.case.model import CaseStatus, Channel, ContactParty, EventKind, FeedbackChannel, ReferenceKind
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.pagination import PageTokens, development_key
from tests.integration.case.support import (
    SQLITE_ONLY,
    case_settings,
    forward,
    register,
    row_counts,
    running_cases,
)
from tests.unit.case.builders import (
    AGENT,
    ASTRID,
    BERTIL,
    Clock,
    FakeDirectory,
    contact,
    new_case,
    officer,
    routing_for,
    violated_fields,
)

PAGES = PageTokens([development_key("case")], service="case")


async def test_a_burst_of_registrations_beyond_the_pool_on_a_fresh_service_is_served(
    database_url: str, tmp_path: Path, directory: FakeDirectory, clock: Clock
) -> None:
    # Two connections, one of them for the access log; the reference data is not loaded yet. Each registration
    # must never hold one connection while it waits for another.
    settings = case_settings(database_url, tmp_path, CASE_DB_POOL_SIZE="2")
    async with running_cases(settings, directory=directory, clock=clock) as wiring:
        created = await asyncio.wait_for(
            asyncio.gather(*(register(wiring.core, summary=f"Samtal {n}") for n in range(40))), timeout=20
        )

        assert len({case.name for case in created}) == 40
        assert (await row_counts(wiring.engine))["cases"] == 40


async def test_a_case_is_stored_with_every_field_it_was_registered_with(cases: Cases, clock: Clock) -> None:
    created = await handlers.create_case(
        cases=cases,
        caller=AGENT,
        case=new_case(
            category="aldreomsorg",
            case_type="boende",
            case_class="ny-ansokan",
            district_id="bromma",
            provider="Hemtjänst Nockeby AB",
            acute=True,
            feedback_channel=FeedbackChannel.EMAIL,
            feedback_window="vardagar 10-12",
            person_number=ASTRID,
        ),
        contact=contact(
            channel=Channel.EMAIL,
            party=ContactParty.RELATIVE,
            contact_name="Eva Lind",
            contact_phone="070-123 45 67",
            contact_email="eva.lind@example.org",
            summary="Dottern ansöker om särskilt boende för sin mamma.",
        ),
        anonymous=False,
    )

    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=created.case_id)

    assert stored.name == created.name
    assert (stored.category, stored.case_type, stored.case_class) == ("aldreomsorg", "boende", "ny-ansokan")
    assert stored.district_id == "bromma"
    assert stored.provider == "Hemtjänst Nockeby AB"
    assert stored.person_number == ASTRID
    assert stored.acute is True
    assert stored.feedback_channel is FeedbackChannel.EMAIL
    assert stored.feedback_window == "vardagar 10-12"
    assert stored.status is CaseStatus.OPEN
    assert stored.first_channel is Channel.EMAIL
    assert stored.create_time == clock.now
    assert stored.contact_count == 1
    [first] = stored.contacts
    assert first.contact_id > 0
    assert (first.channel, first.party) == (Channel.EMAIL, ContactParty.RELATIVE)
    assert (first.contact_name, first.contact_phone, first.contact_email) == (
        "Eva Lind",
        "070-123 45 67",
        "eva.lind@example.org",
    )
    assert first.summary == "Dottern ansöker om särskilt boende för sin mamma."
    assert first.registered_by == AGENT.subject
    assert first.create_time == clock.now
    assert [(e.kind, e.actor) for e in stored.events] == [(EventKind.CREATED, AGENT.subject)]


async def test_reference_data_comes_from_the_database(cases: Cases) -> None:
    items = await handlers.list_reference_data(cases=cases)
    by_kind = {kind: [i.item_id for i in items if i.kind is kind] for kind in ReferenceKind}

    assert by_kind[ReferenceKind.CATEGORY] == ["aldreomsorg"]
    assert "hemtjanst" in by_kind[ReferenceKind.CASE_TYPE]
    assert "trygghetslarm" in by_kind[ReferenceKind.CASE_TYPE]
    assert by_kind[ReferenceKind.CASE_CLASS] == [
        "information-och-vagledning",
        "ny-ansokan",
        "status-pa-anmalan-arende",
        "synpunkter-central-forvaltning",
        "synpunkter-utforarverksamheter",
    ]
    assert next(i for i in items if i.item_id == "boende").need_role == "special_housing"


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"category": "barnomsorg"}, "case.category"),
        ({"case_type": "snoskottning"}, "case.case_type"),
        ({"case_class": "klagomal"}, "case.case_class"),
        ({"district_id": "gamla-stan"}, "case.district"),
        ({"category": ""}, "case.category"),
    ],
)
async def test_a_case_outside_the_reference_data_is_refused_naming_the_field(
    cases: Cases, engine: AsyncEngine, changes: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await register(cases, **changes)

    assert violated_fields(refused.value) == [field]
    assert set((await row_counts(engine)).values()) == {0}


# A person number with a wrong check digit is refused by the servicer, which parses it before this use case
# runs: see tests/e2e/case/test_case_service.py.
@SQLITE_ONLY
@pytest.mark.parametrize(
    ("person", "anonymous", "summary", "field"),
    [
        (None, False, "Fråga.", "case.person_number"),
        (ASTRID, True, "Fråga.", "case.person_number"),
        (ASTRID, False, "", "contact.summary"),
        (ASTRID, False, "x" * 4001, "contact.summary"),
    ],
    ids=["missing", "anonymous-with-number", "empty-summary", "summary-4001"],
)
async def test_a_case_with_bad_person_number_or_summary_is_refused_and_nothing_is_written(
    cases: Cases, engine: AsyncEngine, person: str | None, anonymous: bool, summary: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await handlers.create_case(
            cases=cases,
            caller=AGENT,
            case=new_case(person_number=person),
            contact=contact(summary=summary),
            anonymous=anonymous,
        )

    assert violated_fields(refused.value) == [field]
    assert set((await row_counts(engine)).values()) == {0}


async def test_a_summary_of_4000_characters_is_accepted(cases: Cases) -> None:
    created = await register(cases, summary="x" * 4000)

    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=created.case_id)

    assert len(stored.contacts[0].summary) == 4000


async def test_an_anonymous_case_has_no_person(cases: Cases) -> None:
    created = await register(cases, person=None)

    assert created.person_number is None
    assert created.anonymous is True


async def test_a_case_in_a_retired_district_is_stored_under_its_successor(cases: Cases) -> None:
    created = await register(cases, district_id="spanga-tensta")

    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=created.case_id)

    assert stored.district_id == "jarva"


# ---- linking contacts ----


async def test_open_cases_of_a_person_are_found_and_nobody_elses(cases: Cases) -> None:
    first = await register(cases)
    second = await register(cases, case_type="trygghetslarm")
    closed = await register(cases)
    await handlers.resolve_case(cases=cases, caller=AGENT, case_id=closed.case_id, resolution="Svar.")
    await register(cases, person=BERTIL)
    await register(cases, person=None)

    found, next_page = await handlers.find_open_cases(
        cases=cases, caller=AGENT, person=ASTRID, page=PAGES.page(0, "", {"open_cases": ASTRID}, owner=AGENT)
    )

    assert sorted(c.name for c in found) == sorted([first.name, second.name])
    assert {c.person_number for c in found} == {ASTRID}
    assert next_page == ""


async def test_a_new_contact_is_linked_to_the_open_case_and_counted(cases: Cases, clock: Clock) -> None:
    created = await register(cases)
    clock.advance(hours=2)

    linked = await handlers.add_contact(
        cases=cases,
        caller=AGENT,
        case_id=created.case_id,
        contact=contact(channel=Channel.LETTER, summary="Brev med ny information."),
    )

    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=created.case_id)
    assert linked.contact_count == stored.contact_count == 2
    assert [c.summary for c in stored.contacts] == ["Frågar om hemtjänsten.", "Brev med ny information."]
    assert stored.contacts[1].create_time == clock.now
    assert stored.first_channel is Channel.PHONE
    assert [e.kind for e in stored.events] == [EventKind.CREATED, EventKind.CONTACT_ADDED]


async def test_a_closed_case_takes_no_new_contact(cases: Cases, engine: AsyncEngine) -> None:
    created = await register(cases)
    await handlers.resolve_case(cases=cases, caller=AGENT, case_id=created.case_id, resolution="Svar.")
    before = await row_counts(engine)

    with pytest.raises(FailedPrecondition) as refused:
        await handlers.add_contact(cases=cases, caller=AGENT, case_id=created.case_id, contact=contact())

    assert refused.value.reason == "CASE_CLOSED"
    assert await row_counts(engine) == before


# ---- resolving ----


async def test_only_a_case_resolved_in_its_only_contact_and_never_forwarded_counts_as_first_contact(
    cases: Cases,
) -> None:
    at_once = await register(cases)
    two_contacts = await register(cases)
    bounced = await register(cases)
    await handlers.add_contact(cases=cases, caller=AGENT, case_id=two_contacts.case_id, contact=contact())
    await forward(cases, bounced)
    await handlers.return_case(
        cases=cases,
        caller=officer(routing_for("farsta").unit_id),
        case_id=bounced.case_id,
        reason="Hör till en annan enhet.",
    )

    results = {
        case.name: await handlers.resolve_case(
            cases=cases, caller=AGENT, case_id=case.case_id, resolution="Svar."
        )
        for case in (at_once, two_contacts, bounced)
    }

    assert results[at_once.name].resolved_at_first_contact is True
    assert results[two_contacts.name].resolved_at_first_contact is False
    assert results[bounced.name].resolved_at_first_contact is False
    assert {r.status for r in results.values()} == {CaseStatus.CLOSED}


async def test_a_forwarded_case_cannot_be_resolved_by_the_contact_center(
    cases: Cases, engine: AsyncEngine
) -> None:
    created = await register(cases)
    await forward(cases, created)
    before = await row_counts(engine)

    with pytest.raises(FailedPrecondition) as refused:
        await handlers.resolve_case(cases=cases, caller=AGENT, case_id=created.case_id, resolution="Svar.")

    assert refused.value.reason == "CASE_FORWARDED"
    assert await row_counts(engine) == before
