"""Every read of a person's cases leaves an entry in the hash-chained access log, which auditors and the
person can read (through the AccessLogService every service serves, newest entry first)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case import handlers
from services.case.handlers import Cases
from services.case.store import access_log
from services.common.access_log_service import AccessLogBook, list_person_access, whose_log
from services.common.audit import AccessEntry, verify_chain
from services.common.auth import Caller
from services.common.errors import NotFound, PermissionDenied
from services.common.pagination import PageTokens, development_key
from tests.integration.case.support import forward, register
from tests.unit.case.builders import AGENT, ASTRID, AUDITOR, BERTIL, citizen, officer, unit_id_of

FARSTA = unit_id_of("farsta")
PAGES = PageTokens([development_key("case")], service="case")


async def read_log(
    cases: Cases, engine: AsyncEngine, caller: Caller, person_number: str
) -> list[AccessEntry]:
    """The entries the caller may read about the person, as the case service's AccessLogService lists them."""
    person = whose_log(caller, person_number)
    book = AccessLogBook(
        service="case", engine=engine, tables=access_log, access_log=cases.access_log, clock=cases.clock
    )
    found, _ = await list_person_access(
        book=book, caller=caller, person=person, page=PAGES.page(0, "", {"access_log": person}, owner=caller)
    )
    return found


async def entries_of(cases: Cases, engine: AsyncEngine, person: str) -> list[tuple[str, str, str, str]]:
    found = await read_log(cases, engine, AUDITOR, person)
    return [(e.action, e.actor, e.actor_role, e.purpose) for e in found]


async def test_each_read_of_a_persons_cases_is_logged_with_actor_and_purpose(
    cases: Cases, engine: AsyncEngine
) -> None:
    case = await forward(cases, await register(cases))
    await register(cases, person=BERTIL)

    await handlers.get_case(cases=cases, caller=AGENT, case_id=case.case_id)
    await handlers.find_open_cases(
        cases=cases,
        caller=AGENT,
        person=ASTRID,
        page=PAGES.page(0, "", {"open_cases": ASTRID}, owner=AGENT),
    )
    await handlers.list_unit_queue(
        cases=cases,
        caller=officer(FARSTA),
        unit_id=FARSTA,
        page=PAGES.page(0, "", {"queue": FARSTA}, owner=officer(FARSTA)),
    )
    await handlers.list_my_cases(
        cases=cases,
        caller=citizen(ASTRID),
        page=PAGES.page(0, "", {"mine": True}, owner=citizen(ASTRID)),
    )

    # Newest first; the forward logged its read too.
    assert await entries_of(cases, engine, ASTRID) == [
        ("case.ListMyCases", "citizen", "citizen", "Mina sidor"),
        ("case.ListUnitQueue", "officer-olle", "officer", f"units/{FARSTA}"),
        ("case.FindOpenCases", AGENT.subject, "agent", "registering a contact"),
        ("case.GetCase", AGENT.subject, "agent", case.name),
        ("case.ForwardCase", AGENT.subject, "agent", case.name),
    ]
    assert await entries_of(cases, engine, BERTIL) == []  # nobody read Bertil's case
    async with engine.connect() as conn:
        report = await verify_chain(conn, access_log)
    assert report.ok, report.problem
    assert report.entries == 7  # the two reads of the access log are logged as well


async def test_reads_that_show_no_person_leave_no_entry(cases: Cases, engine: AsyncEngine) -> None:
    anonymous = await register(cases, person=None)
    someone_elses = await register(cases, person=BERTIL)

    await handlers.get_case(cases=cases, caller=AGENT, case_id=anonymous.case_id)
    with pytest.raises(NotFound):
        await handlers.get_case(cases=cases, caller=citizen(ASTRID), case_id=someone_elses.case_id)

    assert await entries_of(cases, engine, BERTIL) == []
    assert await entries_of(cases, engine, ASTRID) == []


async def test_a_citizen_reads_who_has_read_their_data_and_nobody_elses(
    cases: Cases, engine: AsyncEngine
) -> None:
    case = await register(cases)
    await handlers.get_case(cases=cases, caller=AGENT, case_id=case.case_id)

    own = await read_log(cases, engine, citizen(ASTRID), "")
    with pytest.raises(PermissionDenied) as refused:
        await read_log(cases, engine, citizen(ASTRID), BERTIL)

    assert [(e.action, e.actor) for e in own] == [("case.GetCase", AGENT.subject)]
    assert refused.value.reason == "OTHER_PERSON"


# That agents do not read the access log is declared on the AccessLogService and checked by the server
# before the call runs: see tests/e2e/case/test_case_service.py.
