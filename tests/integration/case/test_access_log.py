"""Every read of a person's cases leaves an entry in the hash-chained access log, which auditors and the
person can read."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case import handlers
from services.case.handlers import Cases
from services.case.store import access_log
from services.common.audit import verify_chain
from services.common.errors import NotFound, PermissionDenied
from services.common.pagination import page_request
from tests.integration.case.support import SQLITE_ONLY, forward, register
from tests.unit.case.builders import AGENT, ASTRID, AUDITOR, BERTIL, citizen, officer, unit_id_of

FARSTA = unit_id_of("farsta")


async def entries_of(cases: Cases, person: str) -> list[tuple[str, str, str, str]]:
    found, _ = await handlers.list_access_log(
        cases=cases, caller=AUDITOR, person_number=person, page=page_request(0, "", {"access": person})
    )
    return [(e.action, e.actor, e.actor_role, e.purpose) for e in found]


async def test_each_read_of_a_persons_cases_is_logged_with_actor_and_purpose(
    cases: Cases, engine: AsyncEngine
) -> None:
    case = await forward(cases, await register(cases))
    await register(cases, person=BERTIL)

    await handlers.get_case(cases=cases, caller=AGENT, name=case.name)
    await handlers.find_open_cases(cases=cases, caller=AGENT, person_number=ASTRID)
    await handlers.list_unit_queue(
        cases=cases,
        caller=officer(FARSTA),
        unit=f"units/{FARSTA}",
        page=page_request(0, "", {"queue": f"units/{FARSTA}"}),
    )
    await handlers.list_my_cases(
        cases=cases, caller=citizen(ASTRID), page=page_request(0, "", {"mine": True})
    )

    assert await entries_of(cases, ASTRID) == [
        ("case.GetCase", AGENT.subject, "agent", case.name),
        ("case.FindOpenCases", AGENT.subject, "agent", "registering a contact"),
        ("case.ListUnitQueue", "officer-olle", "officer", f"units/{FARSTA}"),
        ("case.ListMyCases", "citizen", "citizen", "Mina sidor"),
    ]
    assert await entries_of(cases, BERTIL) == []  # nobody read Bertil's case
    async with engine.connect() as conn:
        report = await verify_chain(conn, access_log)
    assert report.ok, report.problem
    assert report.entries == 6  # the two ListAccessLog reads are logged as well


async def test_reads_that_show_no_person_leave_no_entry(cases: Cases) -> None:
    anonymous = await register(cases, person=None)
    someone_elses = await register(cases, person=BERTIL)

    await handlers.get_case(cases=cases, caller=AGENT, name=anonymous.name)
    with pytest.raises(NotFound):
        await handlers.get_case(cases=cases, caller=citizen(ASTRID), name=someone_elses.name)

    assert await entries_of(cases, BERTIL) == []
    assert await entries_of(cases, ASTRID) == []


async def test_a_citizen_reads_who_has_read_their_data_and_nobody_elses(cases: Cases) -> None:
    case = await register(cases)
    await handlers.get_case(cases=cases, caller=AGENT, name=case.name)

    own, _ = await handlers.list_access_log(
        cases=cases, caller=citizen(ASTRID), person_number="", page=page_request(0, "", {"access": ""})
    )
    with pytest.raises(PermissionDenied) as refused:
        await handlers.list_access_log(
            cases=cases,
            caller=citizen(ASTRID),
            person_number=BERTIL,
            page=page_request(0, "", {"access": BERTIL}),
        )

    assert [(e.action, e.actor) for e in own] == [("case.GetCase", AGENT.subject)]
    assert refused.value.reason == "OTHER_PERSON"


@SQLITE_ONLY
async def test_agents_do_not_read_the_access_log(cases: Cases) -> None:
    with pytest.raises(PermissionDenied):
        await handlers.list_access_log(
            cases=cases, caller=AGENT, person_number=ASTRID, page=page_request(0, "", {"access": ASTRID})
        )
