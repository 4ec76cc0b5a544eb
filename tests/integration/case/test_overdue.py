"""Deadlines that pass: cases marked overdue, one mail to the unit's managers, and the overdue list."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case import handlers
from services.case.handlers import Cases, escalate_overdue
from services.case.model import EventKind, FeedbackChannel, Mail
from services.common.errors import PermissionDenied
from services.common.outbox import OutboxSender
from services.common.pagination import PageTokens, development_key
from support.smtp_sink import MailStore
from tests.integration.case.support import forward, outbox_rows, register
from tests.unit.case.builders import AGENT, AUDITOR, Clock, local, officer, unit_id_of

FARSTA = unit_id_of("farsta")
PAGES = PageTokens([development_key("case")], service="case")


async def queued_mails(engine: AsyncEngine) -> list[Mail]:
    """The mails in the shared outbox, oldest first, as the case service queued them."""
    rows = await outbox_rows(engine)
    assert {r.kind for r in rows} <= {"mail"}
    return [Mail.decode(r.payload) for r in rows]


async def test_a_case_past_its_deadline_is_marked_overdue_and_mailed_about_once(
    cases: Cases,
    clock: Clock,
    engine: AsyncEngine,
    mailbox: MailStore,
    dispatcher: OutboxSender,
) -> None:
    clock.set(local(2026, 12, 3, 10, 0))
    late = await forward(cases, await register(cases, acute=True))  # due Thursday 16:30
    in_time = await forward(cases, await register(cases))  # due Monday 16:30
    await dispatcher.send_due()  # the two forward mails
    mailbox.messages.clear()
    clock.set(local(2026, 12, 3, 16, 31))

    first_round = await escalate_overdue(cases=cases)
    clock.advance(minutes=5)
    second_round = await escalate_overdue(cases=cases)

    assert (first_round, second_round) == (1, 0)
    overdue_mails = [m for m in await queued_mails(engine) if m.kind == "overdue"]
    assert len(overdue_mails) == 1
    assert overdue_mails[0].recipients == ("chef.farsta@stockholm.example",)
    assert await dispatcher.send_due() == 1
    [message] = mailbox.messages
    assert message["To"] == "chef.farsta@stockholm.example"
    assert message["Importance"] == "high"
    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=late.case_id)
    assert stored.overdue is True
    assert stored.events[-1].kind is EventKind.OVERDUE
    assert (await handlers.get_case(cases=cases, caller=AGENT, case_id=in_time.case_id)).overdue is False


async def test_a_case_answered_in_time_is_never_escalated(
    cases: Cases, clock: Clock, engine: AsyncEngine
) -> None:
    clock.set(local(2026, 12, 3, 10, 0))
    case = await forward(cases, await register(cases, acute=True))
    clock.set(local(2026, 12, 3, 15, 0))
    await handlers.record_feedback(
        cases=cases,
        caller=officer(FARSTA),
        case_id=case.case_id,
        channel=FeedbackChannel.PHONE,
        note="Klart.",
    )
    clock.set(local(2026, 12, 10, 9, 0))

    assert await escalate_overdue(cases=cases) == 0
    assert [m.kind for m in await queued_mails(engine)] == ["forwarded"]


async def test_overdue_cases_are_listed_for_the_contact_center_and_the_units_own_staff(
    cases: Cases, clock: Clock
) -> None:
    clock.set(local(2026, 12, 3, 10, 0))
    farsta_case = await forward(cases, await register(cases))
    bromma_case = await forward(cases, await register(cases, district_id="bromma"))
    answered_late = await forward(cases, await register(cases, district_id="jarva"))
    clock.set(local(2026, 12, 8, 8, 0))
    assert await escalate_overdue(cases=cases) == 3
    # A case answered late is no longer waiting, so it leaves the list.
    await handlers.record_feedback(
        cases=cases,
        caller=officer(unit_id_of("jarva")),
        case_id=answered_late.case_id,
        channel=FeedbackChannel.PHONE,
        note="Sent.",
    )

    everyone, _ = await handlers.list_overdue_cases(
        cases=cases, caller=AUDITOR, unit_id=None, page=PAGES.page(0, "", {"overdue": None}, owner=AUDITOR)
    )
    farsta_only, _ = await handlers.list_overdue_cases(
        cases=cases,
        caller=officer(FARSTA),
        unit_id=FARSTA,
        page=PAGES.page(0, "", {"overdue": FARSTA}, owner=officer(FARSTA)),
    )

    assert [c.name for c in everyone] == [farsta_case.name, bromma_case.name]
    assert [c.name for c in farsta_only] == [farsta_case.name]
    with pytest.raises(PermissionDenied):
        await handlers.list_overdue_cases(
            cases=cases,
            caller=officer(FARSTA),
            unit_id=unit_id_of("bromma"),
            page=PAGES.page(0, "", {"overdue": unit_id_of("bromma")}, owner=officer(FARSTA)),
        )
