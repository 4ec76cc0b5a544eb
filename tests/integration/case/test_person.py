"""What the person sees and says: their own cases on Mina sidor, the timeline, and their satisfaction."""

from __future__ import annotations

import pytest

from services.case import handlers
from services.case.handlers import Cases
from services.case.model import CaseStatus, EventKind, FeedbackChannel, next_step
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.pagination import PageRequest, PageTokens, development_key
from tests.integration.case.support import SQLITE_ONLY, forward, register
from tests.unit.case.builders import (
    AGENT,
    ASTRID,
    BERTIL,
    Clock,
    citizen,
    contact,
    local,
    manager,
    officer,
    unit_id_of,
    violated_fields,
)

FARSTA = unit_id_of("farsta")
PAGES = PageTokens([development_key("case")], service="case")


def my_page(page_size: int = 0, page_token: str = "") -> PageRequest:
    return PAGES.page(page_size, page_token, {"mine": True}, owner=citizen(ASTRID))


# ---- Mina sidor ----


async def test_a_citizen_lists_only_their_own_cases_with_status_next_step_and_deadline(
    cases: Cases, clock: Clock
) -> None:
    clock.set(local(2026, 12, 3, 10, 0))
    answered = await register(cases)
    await handlers.resolve_case(cases=cases, caller=AGENT, case_id=answered.case_id, resolution="Svar.")
    waiting = await forward(cases, await register(cases))
    await register(cases, person=BERTIL)
    await register(cases, person=None)

    mine, token = await handlers.list_my_cases(cases=cases, caller=citizen(ASTRID), page=my_page())

    assert [c.name for c in mine] == [waiting.name, answered.name]  # newest first
    assert token == ""
    assert [c.status for c in mine] == [CaseStatus.FORWARDED, CaseStatus.CLOSED]
    assert mine[0].deadline == local(2026, 12, 7, 16, 30)
    assert next_step(mine[0]) == "Din fråga har skickats till beställarenheten, som återkommer till dig."
    assert next_step(mine[1]) == "Ärendet är avslutat."
    assert mine[1].resolution == "Svar."


async def test_a_citizens_own_cases_come_in_pages(cases: Cases) -> None:
    created = [await register(cases) for _ in range(3)]

    first, token = await handlers.list_my_cases(cases=cases, caller=citizen(ASTRID), page=my_page(2))
    rest, last = await handlers.list_my_cases(cases=cases, caller=citizen(ASTRID), page=my_page(2, token))

    assert [c.name for c in [*first, *rest]] == [c.name for c in reversed(created)]
    assert last == ""


async def test_a_citizen_asking_for_someone_elses_case_hears_the_same_as_for_a_missing_one(
    cases: Cases,
) -> None:
    someone_elses = await register(cases, person=BERTIL)
    anonymous = await register(cases, person=None)
    missing = someone_elses.case_id + 100

    messages = {}
    for case_id in (someone_elses.case_id, anonymous.case_id, missing):
        with pytest.raises(NotFound) as refused:
            await handlers.get_case(cases=cases, caller=citizen(ASTRID), case_id=case_id)
        name = f"cases/{case_id}"
        messages[case_id] = (refused.value.message.replace(name, "<name>"), refused.value.reason)

    assert len(set(messages.values())) == 1
    assert messages[missing] == ("<name> was not found", "NOT_FOUND")


async def test_a_citizen_reads_their_own_case(cases: Cases) -> None:
    mine = await register(cases)

    read = await handlers.get_case(cases=cases, caller=citizen(ASTRID), case_id=mine.case_id)

    assert read.name == mine.name


# ---- the timeline ----


async def test_every_step_of_a_case_appears_in_its_timeline_in_order(cases: Cases, clock: Clock) -> None:
    case = await register(cases)
    steps = [
        lambda: handlers.add_contact(
            cases=cases, caller=AGENT, case_id=case.case_id, contact=contact(summary="Ringer igen.")
        ),
        lambda: forward(cases, case),
        lambda: handlers.acknowledge_case(cases=cases, caller=officer(FARSTA), case_id=case.case_id),
        lambda: handlers.assign_case(
            cases=cases, caller=manager(FARSTA), case_id=case.case_id, officer_id="farsta-handlaggare-2"
        ),
        lambda: handlers.return_case(
            cases=cases, caller=officer(FARSTA), case_id=case.case_id, reason="Fel enhet."
        ),
        lambda: forward(cases, case),
        lambda: handlers.record_feedback(
            cases=cases,
            caller=officer(FARSTA),
            case_id=case.case_id,
            channel=FeedbackChannel.PHONE,
            note="Ringt.",
        ),
        lambda: handlers.reopen_case(cases=cases, caller=AGENT, case_id=case.case_id, reason="Ny fråga."),
        lambda: handlers.resolve_case(
            cases=cases, caller=AGENT, case_id=case.case_id, resolution="Besvarat."
        ),
    ]
    for step in steps:
        clock.advance(minutes=10)
        await step()

    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=case.case_id)

    assert [e.kind for e in stored.events] == [
        EventKind.CREATED,
        EventKind.CONTACT_ADDED,
        EventKind.FORWARDED,
        EventKind.ACKNOWLEDGED,
        EventKind.ASSIGNED,
        EventKind.RETURNED,
        EventKind.FORWARDED,
        EventKind.FEEDBACK,
        EventKind.CLOSED,
        EventKind.REOPENED,
        EventKind.CLOSED,
    ]
    times = [e.time for e in stored.events]
    assert times == sorted(times)
    assert stored.events[2].detail == f"units/{FARSTA}"
    assert stored.events[4].detail == "officers/farsta-handlaggare-2"
    assert stored.events[5].detail == "Fel enhet."
    assert {e.actor for e in stored.events[3:6]} == {"officer-olle", "manager-maja"}


# ---- satisfaction ----


async def test_satisfaction_is_recorded_once_after_close(cases: Cases) -> None:
    case = await register(cases)
    with pytest.raises(FailedPrecondition) as too_early:
        await handlers.record_satisfaction(cases=cases, caller=citizen(ASTRID), case_id=case.case_id, score=4)
    await handlers.resolve_case(cases=cases, caller=AGENT, case_id=case.case_id, resolution="Svar.")

    answered = await handlers.record_satisfaction(
        cases=cases, caller=citizen(ASTRID), case_id=case.case_id, score=4
    )
    with pytest.raises(FailedPrecondition) as twice:
        await handlers.record_satisfaction(cases=cases, caller=AGENT, case_id=case.case_id, score=5)

    assert too_early.value.reason == "CASE_NOT_CLOSED"
    assert twice.value.reason == "SATISFACTION_RECORDED"
    assert answered.satisfaction == 4
    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=case.case_id)
    assert stored.satisfaction == 4


@SQLITE_ONLY
@pytest.mark.parametrize("score", [0, 6])
async def test_satisfaction_outside_one_to_five_is_refused_naming_score(cases: Cases, score: int) -> None:
    case = await register(cases)
    await handlers.resolve_case(cases=cases, caller=AGENT, case_id=case.case_id, resolution="Svar.")

    with pytest.raises(InvalidArgument) as refused:
        await handlers.record_satisfaction(cases=cases, caller=AGENT, case_id=case.case_id, score=score)

    assert violated_fields(refused.value) == ["score"]
    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=case.case_id)
    assert stored.satisfaction is None


@SQLITE_ONLY
async def test_a_citizen_cannot_answer_for_someone_elses_case(cases: Cases) -> None:
    case = await register(cases, person=BERTIL)
    await handlers.resolve_case(cases=cases, caller=AGENT, case_id=case.case_id, resolution="Svar.")

    with pytest.raises(NotFound):
        await handlers.record_satisfaction(cases=cases, caller=citizen(ASTRID), case_id=case.case_id, score=1)
