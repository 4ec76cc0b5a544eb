"""The unit's side of a forwarded case: its queue, acknowledging, assigning, feedback and returning."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case import handlers
from services.case.handlers import Cases
from services.case.model import Case, CaseStatus, FeedbackChannel
from services.common.errors import InvalidArgument, PermissionDenied
from services.common.pagination import page_request
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
        cases=cases,
        caller=officer(FARSTA),
        unit=f"units/{FARSTA}",
        page=page_request(0, "", {"queue": f"units/{FARSTA}"}),
    )

    assert [c.name for c in queue] == [acute.name, ordinary.name]
    assert token == ""


async def test_a_units_queue_pages_in_deadline_order(cases: Cases, clock: Clock) -> None:
    names = []
    for day in (7, 3, 4):
        clock.set(local(2026, 12, day, 10, 0))
        names.append((day, (await forwarded_case(cases)).name))
    expected = [name for _, name in sorted(names)]
    unit = f"units/{FARSTA}"

    first, token = await handlers.list_unit_queue(
        cases=cases, caller=manager(FARSTA), unit=unit, page=page_request(2, "", {"queue": unit})
    )
    rest, last_token = await handlers.list_unit_queue(
        cases=cases, caller=manager(FARSTA), unit=unit, page=page_request(2, token, {"queue": unit})
    )

    assert [c.name for c in [*first, *rest]] == expected
    assert token
    assert last_token == ""


@SQLITE_ONLY
@pytest.mark.parametrize("who", ["other-unit-officer", "agent"])
async def test_only_the_units_own_staff_see_its_queue(cases: Cases, who: str) -> None:
    await forwarded_case(cases)
    reader = officer(BROMMA) if who == "other-unit-officer" else AGENT

    with pytest.raises(PermissionDenied):
        await handlers.list_unit_queue(
            cases=cases,
            caller=reader,
            unit=f"units/{FARSTA}",
            page=page_request(0, "", {"queue": f"units/{FARSTA}"}),
        )


async def test_the_unit_acknowledges_assigns_and_answers_and_the_case_closes(
    cases: Cases, clock: Clock
) -> None:
    clock.set(local(2026, 12, 3, 10, 0))
    case = await forwarded_case(cases)
    staff = officer(FARSTA)

    clock.set(local(2026, 12, 3, 13, 0))
    acknowledged = await handlers.acknowledge_case(cases=cases, caller=staff, name=case.name)
    assigned = await handlers.assign_case(
        cases=cases, caller=manager(FARSTA), name=case.name, officer="officers/farsta-handlaggare-2"
    )
    clock.set(local(2026, 12, 4, 9, 30))
    answered = await handlers.record_feedback(
        cases=cases, caller=staff, name=case.name, channel=FeedbackChannel.PHONE, note="Ringde dottern."
    )

    assert acknowledged.status is CaseStatus.ACKNOWLEDGED
    assert (assigned.status, assigned.officer_id) == (CaseStatus.ASSIGNED, "farsta-handlaggare-2")
    stored = await handlers.get_case(cases=cases, caller=AGENT, name=case.name)
    assert answered.status is stored.status is CaseStatus.CLOSED
    assert stored.feedback_time == stored.close_time == local(2026, 12, 4, 9, 30)
    assert stored.resolution == "Ringde dottern."
    assert stored.deadline_kept is True


async def test_an_officer_of_another_unit_cannot_be_assigned(cases: Cases, engine: AsyncEngine) -> None:
    case = await forwarded_case(cases)
    before = await row_counts(engine)

    with pytest.raises(InvalidArgument) as refused:
        await handlers.assign_case(
            cases=cases, caller=manager(FARSTA), name=case.name, officer="officers/bromma-handlaggare"
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
            name=case.name,
            channel=FeedbackChannel.PHONE,
            note="Ringde.",
        )

    assert refused.value.reason == "OTHER_UNIT"
    assert await row_counts(engine) == before
    stored = await handlers.get_case(cases=cases, caller=AGENT, name=case.name)
    assert stored.status is CaseStatus.FORWARDED


async def test_a_returned_case_is_open_again_and_can_be_forwarded_elsewhere(cases: Cases) -> None:
    case = await forwarded_case(cases, person=BERTIL)

    returned = await handlers.return_case(
        cases=cases, caller=officer(FARSTA), name=case.name, reason="Bor i Bromma sedan i somras."
    )
    again = await handlers.forward_case(
        cases=cases,
        caller=AGENT,
        name=case.name,
        postal_code="",
        named_officer="officers/bromma-handlaggare",
        note="",
    )

    assert returned.status is CaseStatus.OPEN
    assert (returned.unit_id, returned.deadline) == (None, None)
    assert again.status is CaseStatus.FORWARDED
    assert again.unit_id == BROMMA
    queue, _ = await handlers.list_unit_queue(
        cases=cases,
        caller=officer(FARSTA),
        unit=f"units/{FARSTA}",
        page=page_request(0, "", {"queue": f"units/{FARSTA}"}),
    )
    assert queue == []
