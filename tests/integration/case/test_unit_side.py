"""The unit's side of a forwarded case: its queue, acknowledging, assigning, feedback and returning."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case import handlers
from services.case.handlers import Cases
from services.case.model import Case, CaseStatus, FeedbackChannel
from services.common.auth import Caller
from services.common.errors import InvalidArgument, PermissionDenied
from services.common.pagination import PageRequest, PageTokens, development_key
from tests.integration.case.support import SQLITE_ONLY, forward, register, row_counts
from tests.unit.case.builders import (
    AGENT,
    BERTIL,
    Clock,
    local,
    manager,
    officer,
    unit_id_of,
    violated_fields,
)

FARSTA = unit_id_of("farsta")
BROMMA = unit_id_of("bromma")
PAGES = PageTokens([development_key("case")], service="case")


def queue_page(caller: Caller, unit_id: str, page_size: int = 0, page_token: str = "") -> PageRequest:
    return PAGES.page(page_size, page_token, {"queue": unit_id}, owner=caller)


async def forwarded_case(cases: Cases, **changes: Any) -> Case:
    return await forward(cases, await register(cases, **changes))


async def test_a_units_queue_holds_its_forwarded_cases_by_deadline(cases: Cases, clock: Clock) -> None:
    clock.set(local(2026, 12, 3, 10, 0))
    ordinary = await forwarded_case(cases)  # due Monday
    clock.set(local(2026, 12, 3, 11, 0))
    acute = await forwarded_case(cases, acute=True)  # due Thursday
    await forwarded_case(cases, district_id="bromma")  # another unit's
    await register(cases)  # never forwarded

    queue, token = await handlers.list_unit_queue(
        cases=cases, caller=officer(FARSTA), unit_id=FARSTA, page=queue_page(officer(FARSTA), FARSTA)
    )

    assert [c.name for c in queue] == [acute.name, ordinary.name]
    assert token == ""


async def test_a_units_queue_pages_in_deadline_order(cases: Cases, clock: Clock) -> None:
    names = []
    for day in (7, 3, 4):
        clock.set(local(2026, 12, day, 10, 0))
        names.append((day, (await forwarded_case(cases)).name))
    expected = [name for _, name in sorted(names)]
    reader = manager(FARSTA)

    first, token = await handlers.list_unit_queue(
        cases=cases, caller=reader, unit_id=FARSTA, page=queue_page(reader, FARSTA, 2)
    )
    rest, last_token = await handlers.list_unit_queue(
        cases=cases, caller=reader, unit_id=FARSTA, page=queue_page(reader, FARSTA, 2, token)
    )

    assert [c.name for c in [*first, *rest]] == expected
    assert token
    assert last_token == ""


# An agent, whose role may not call ListUnitQueue at all, is refused by the server before the call runs:
# see tests/e2e/case/test_case_service.py. Another unit's officer is refused here, by the unit in the token.
@SQLITE_ONLY
async def test_only_the_units_own_staff_see_its_queue(cases: Cases) -> None:
    await forwarded_case(cases)
    reader = officer(BROMMA)

    with pytest.raises(PermissionDenied) as refused:
        await handlers.list_unit_queue(
            cases=cases, caller=reader, unit_id=FARSTA, page=queue_page(reader, FARSTA)
        )

    assert refused.value.reason == "OTHER_UNIT"


async def test_the_unit_acknowledges_assigns_and_answers_and_the_case_closes(
    cases: Cases, clock: Clock
) -> None:
    clock.set(local(2026, 12, 3, 10, 0))
    case = await forwarded_case(cases)
    staff = officer(FARSTA)

    clock.set(local(2026, 12, 3, 13, 0))
    acknowledged = await handlers.acknowledge_case(cases=cases, caller=staff, case_id=case.case_id)
    assigned = await handlers.assign_case(
        cases=cases, caller=manager(FARSTA), case_id=case.case_id, officer_id="farsta-handlaggare-2"
    )
    clock.set(local(2026, 12, 4, 9, 30))
    answered = await handlers.record_feedback(
        cases=cases, caller=staff, case_id=case.case_id, channel=FeedbackChannel.PHONE, note="Ringde dottern."
    )

    assert acknowledged.status is CaseStatus.ACKNOWLEDGED
    assert (assigned.status, assigned.officer_id) == (CaseStatus.ASSIGNED, "farsta-handlaggare-2")
    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=case.case_id)
    assert answered.status is stored.status is CaseStatus.CLOSED
    assert stored.feedback_time == stored.close_time == local(2026, 12, 4, 9, 30)
    assert stored.resolution == "Ringde dottern."
    assert stored.deadline_kept is True


async def test_an_officer_of_another_unit_cannot_be_assigned(cases: Cases, engine: AsyncEngine) -> None:
    case = await forwarded_case(cases)
    before = await row_counts(engine)

    with pytest.raises(InvalidArgument) as refused:
        await handlers.assign_case(
            cases=cases, caller=manager(FARSTA), case_id=case.case_id, officer_id="bromma-handlaggare"
        )

    assert violated_fields(refused.value) == ["officer"]
    assert await row_counts(engine) == before


async def test_feedback_from_an_officer_of_another_unit_is_refused(cases: Cases, engine: AsyncEngine) -> None:
    case = await forwarded_case(cases)
    before = await row_counts(engine)

    with pytest.raises(PermissionDenied) as refused:
        await handlers.record_feedback(
            cases=cases,
            caller=officer(BROMMA),
            case_id=case.case_id,
            channel=FeedbackChannel.PHONE,
            note="Ringde.",
        )

    assert refused.value.reason == "OTHER_UNIT"
    assert await row_counts(engine) == before
    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=case.case_id)
    assert stored.status is CaseStatus.FORWARDED


async def test_a_returned_case_is_open_again_and_can_be_forwarded_elsewhere(cases: Cases) -> None:
    case = await forwarded_case(cases, person=BERTIL)

    returned = await handlers.return_case(
        cases=cases, caller=officer(FARSTA), case_id=case.case_id, reason="Bor i Bromma sedan i somras."
    )
    again = (
        await handlers.forward_case(
            cases=cases,
            caller=AGENT,
            case_id=case.case_id,
            postal_code="",
            named_officer="officers/bromma-handlaggare",
            note="",
        )
    ).case

    assert returned.status is CaseStatus.OPEN
    assert (returned.unit_id, returned.deadline) == (None, None)
    assert again.status is CaseStatus.FORWARDED
    assert again.unit_id == BROMMA
    queue, _ = await handlers.list_unit_queue(
        cases=cases, caller=officer(FARSTA), unit_id=FARSTA, page=queue_page(officer(FARSTA), FARSTA)
    )
    assert queue == []


@SQLITE_ONLY
async def test_a_units_staff_cannot_tell_another_units_case_from_a_missing_one(cases: Cases) -> None:
    elsewhere = await forwarded_case(cases, district_id="bromma")
    missing = elsewhere.case_id + 100

    refusals = []
    for case_id in (elsewhere.case_id, missing):
        name = f"cases/{case_id}"
        for attempt in (
            handlers.get_case(cases=cases, caller=officer(FARSTA), case_id=case_id),
            handlers.acknowledge_case(cases=cases, caller=officer(FARSTA), case_id=case_id),
        ):
            with pytest.raises(PermissionDenied) as refused:
                await attempt
            refusals.append(
                (
                    refused.value.message.replace(name, "<name>"),
                    refused.value.reason,
                    refused.value.metadata == {"case": name},
                )
            )

    assert len(set(refusals)) == 1
    assert refusals[0][1:] == ("OTHER_UNIT", True)
