"""Forwarding to the responsible unit: routing from the directory, the deadline, and the mail to the unit's
functional mailbox, sent over real SMTP."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case import handlers
from services.case.handlers import Cases
from services.case.model import CaseStatus
from services.common.errors import FailedPrecondition, Unavailable
from services.common.outbox import OutboxSender
from support.smtp_sink import MailStore
from tests.integration.case.support import SQLITE_ONLY, forward, outbox_rows, register, row_counts
from tests.unit.case.builders import AGENT, ASTRID, Clock, FakeDirectory, local, routing_for

SUMMARY = "Mamma har ramlat och behöver hjälp med att duscha."


async def test_a_forwarded_case_goes_to_the_unit_and_officer_the_directory_names(
    cases: Cases, directory: FakeDirectory
) -> None:
    created = await register(cases, district_id="bromma")

    forwarded = await forward(cases, created)

    expected = routing_for("bromma")
    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=created.case_id)
    assert stored.status is CaseStatus.FORWARDED
    assert (stored.unit_id, stored.officer_id) == (expected.unit_id, expected.officer_id)
    assert stored.unit_mailbox == expected.mailbox
    assert stored.deadline == forwarded.deadline
    [call] = directory.resolved
    assert (call.person_number, call.district_id, call.purpose) == (ASTRID, "bromma", created.name)


async def test_a_case_without_a_district_is_routed_by_postal_code_and_takes_the_units_district(
    cases: Cases, directory: FakeDirectory
) -> None:
    created = await register(cases, district_id=None)

    forwarded = await forward(cases, created, postal_code="16771")

    assert forwarded.unit_id == routing_for("bromma").unit_id
    assert forwarded.district_id == "bromma"
    assert directory.resolved[0].postal_code == "16771"


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("forwarded_at", "acute", "due"),
    [
        (local(2026, 12, 3, 10, 0), False, local(2026, 12, 7, 16, 30)),  # Thursday → Monday
        (local(2026, 12, 4, 16, 30), False, local(2026, 12, 9, 16, 30)),  # Friday after closing
        (local(2026, 12, 3, 10, 0), True, local(2026, 12, 3, 16, 30)),  # acute: the same day
        (local(2026, 12, 3, 17, 0), True, local(2026, 12, 4, 16, 0)),  # acute after hours: next day
        (local(2026, 12, 23, 10, 0), False, local(2026, 12, 29, 16, 30)),  # over Christmas: 24th, 25th off
    ],
    ids=["thursday", "friday-after-closing", "acute", "acute-after-hours", "christmas"],
)
async def test_the_deadline_is_the_end_of_the_working_day_the_rules_give(
    cases: Cases, clock: Clock, forwarded_at: datetime, acute: bool, due: datetime
) -> None:
    created = await register(cases, acute=acute)
    clock.set(forwarded_at)

    await forward(cases, created)

    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=created.case_id)
    assert stored.deadline == due
    assert stored.forward_time == forwarded_at


async def test_a_housing_case_is_routed_to_a_special_housing_officer(
    cases: Cases, directory: FakeDirectory
) -> None:
    housing = await register(cases, case_type="boende")
    home_help = await register(cases, case_type="hemtjanst")

    await forward(cases, housing)
    await forward(cases, home_help)

    assert [call.need_role for call in directory.resolved] == ["special_housing", ""]


async def test_forwarding_a_closed_case_is_refused_without_asking_the_directory(
    cases: Cases, directory: FakeDirectory, engine: AsyncEngine
) -> None:
    created = await register(cases)
    await handlers.resolve_case(cases=cases, caller=AGENT, case_id=created.case_id, resolution="Svar.")
    before = await row_counts(engine)

    with pytest.raises(FailedPrecondition) as refused:
        await forward(cases, created)

    assert refused.value.reason == "CASE_CLOSED"
    assert directory.resolved == []
    assert await row_counts(engine) == before


async def test_when_the_directory_is_down_nothing_changes_and_no_mail_is_queued(
    cases: Cases, directory: FakeDirectory, engine: AsyncEngine
) -> None:
    created = await register(cases)
    before = await row_counts(engine)
    directory.down = True

    with pytest.raises(Unavailable):
        await forward(cases, created)

    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=created.case_id)
    assert stored.status is CaseStatus.OPEN
    assert stored.revision == created.revision
    assert await row_counts(engine) == before


async def test_the_unit_gets_a_mail_in_its_functional_mailbox_over_smtp(
    cases: Cases,
    engine: AsyncEngine,
    mailbox: MailStore,
    dispatcher: OutboxSender,
    clock: Clock,
) -> None:
    created = await register(cases, district_id="farsta", summary=SUMMARY)
    clock.set(local(2026, 12, 3, 10, 0))
    await forward(cases, created, note="Behöver ny bedömning.")

    sent = await dispatcher.send_due()

    assert sent == 1
    [message] = mailbox.messages
    [row] = await outbox_rows(engine)
    assert message["To"] == routing_for("farsta").mailbox
    assert message["Message-ID"] == row.delivery_key
    assert (row.kind, row.subject_ref) == ("mail", created.name)
    assert row.sent_time is not None
    assert f"Ärende {created.case_id}" in message["Subject"]
    assert "2026-12-07 16:30" in message["Subject"]
    assert message["Importance"] is None
    text = message.as_string()
    assert ASTRID not in text
    assert SUMMARY not in text
    assert "Behöver ny bedömning." in message.get_content()
    assert await dispatcher.send_due() == 0
    assert len(mailbox.messages) == 1


async def test_an_acute_case_mail_is_marked_urgent_and_carries_no_person_data(
    cases: Cases, mailbox: MailStore, dispatcher: OutboxSender
) -> None:
    created = await register(cases, acute=True, summary=SUMMARY)
    await forward(cases, created)

    await dispatcher.send_due()

    [message] = mailbox.messages
    assert message["Importance"] == "high"
    assert message["Subject"].startswith("AKUT")
    text = message.as_string()
    assert ASTRID not in text
    assert ASTRID[2:] not in text
    assert SUMMARY not in text
