"""The unit's side: its queue, acknowledging, assigning an officer, feedback that closes a case, sending a
case back; and the cases past their deadline, escalated once each."""

from __future__ import annotations

import logging
from datetime import datetime

from services.case import model
from services.case.handlers.cases import Cases, acts_as_unit_staff, log_reads, transition
from services.case.model import AT_UNIT, Case, FeedbackChannel
from services.common.auth import Caller, Role
from services.common.db import Fence, Idempotency
from services.common.errors import InvalidArgument, NotFound, PermissionDenied, StaleEtag
from services.common.pagination import PageRequest

log = logging.getLogger("aldredirekt.case")


async def list_unit_queue(
    *, cases: Cases, caller: Caller, unit_id: str, page: PageRequest
) -> tuple[list[Case], str]:
    if caller.unit_id != unit_id:
        raise PermissionDenied("a unit's queue is for the unit's own staff", reason="OTHER_UNIT")
    after = page.after_text_and_int()
    async with cases.uow(write=False) as uow:
        found = await uow.cases.unit_queue(unit_id, after=after, limit=page.size + 1)
    items = found[: page.size]
    await log_reads(cases, caller, [c.person_number for c in items], "ListUnitQueue", f"units/{unit_id}")
    last = items[-1] if items else None
    token = page.next_token(
        [last.deadline.isoformat() if last and last.deadline else "", last.case_id if last else 0],
        more=len(found) > page.size,
    )
    return items, token


async def acknowledge_case(
    *, cases: Cases, caller: Caller, case_id: int, idempotency: Idempotency | None = None
) -> Case:
    return await transition(
        cases,
        caller,
        case_id,
        lambda c, now: model.acknowledge(c, actor=caller.subject, now=now),
        "AcknowledgeCase",
        idempotency,
        unit_staff=True,
    )


async def assign_case(
    *, cases: Cases, caller: Caller, case_id: int, officer_id: str, idempotency: Idempotency | None = None
) -> Case:
    unit_of_officer = await cases.directory.officer_unit(caller, officer_id)
    if unit_of_officer is None:
        raise NotFound(f"officers/{officer_id}")

    def assign(case: Case, now: datetime) -> Case:
        if unit_of_officer != case.unit_id:
            raise InvalidArgument.field(
                "officer", f"officers/{officer_id} is not an officer of units/{case.unit_id}"
            )
        return model.assign(case, officer_id, actor=caller.subject, now=now)

    return await transition(cases, caller, case_id, assign, "AssignCase", idempotency, unit_staff=True)


async def record_feedback(
    *,
    cases: Cases,
    caller: Caller,
    case_id: int,
    channel: FeedbackChannel,
    note: str,
    idempotency: Idempotency | None = None,
) -> Case:
    return await transition(
        cases,
        caller,
        case_id,
        lambda c, now: model.record_feedback(c, channel, note, actor=caller.subject, now=now),
        "RecordFeedback",
        idempotency,
        unit_staff=True,
    )


async def return_case(
    *, cases: Cases, caller: Caller, case_id: int, reason: str, idempotency: Idempotency | None = None
) -> Case:
    return await transition(
        cases,
        caller,
        case_id,
        lambda c, now: model.return_to_contact_center(c, reason, actor=caller.subject, now=now),
        "ReturnCase",
        idempotency,
        unit_staff=True,
    )


async def list_overdue_cases(
    *, cases: Cases, caller: Caller, unit_id: str | None, page: PageRequest
) -> tuple[list[Case], str]:
    staff_only = acts_as_unit_staff(caller) and not caller.has_role(Role.AUDITOR)
    if staff_only and unit_id != caller.unit_id:
        raise PermissionDenied("a unit's staff see the overdue cases of their own unit", reason="OTHER_UNIT")
    async with cases.uow(write=False) as uow:
        found = await uow.cases.overdue(unit_id, after=page.after_int(), limit=page.size + 1)
    items = found[: page.size]
    purpose = f"units/{unit_id}" if unit_id else "all units"
    await log_reads(cases, caller, [c.person_number for c in items], "ListOverdueCases", purpose)
    return items, page.next_token(items[-1].case_id if items else None, more=len(found) > page.size)


async def escalate_overdue(*, cases: Cases, fence: Fence | None = None, batch: int = 100) -> int:
    """Marks cases past their deadline overdue and mails the unit's managers, once per case.

    Run under a lease: `fence` is checked before each case's transaction commits, so a replica that lost
    its lease writes nothing more; the case's revision makes a second escalation of it impossible anyway.
    """
    now = cases.clock()
    async with cases.uow(write=False) as uow:
        due = await uow.cases.due_for_escalation(now, limit=batch)
    escalated = 0
    for case_id in due:
        try:
            async with cases.uow(fence=fence) as uow:
                before = await uow.cases.get(case_id, for_update=True)
                if (
                    before is None
                    or before.overdue
                    or before.status not in AT_UNIT
                    or before.deadline is None
                    or before.deadline >= now
                ):
                    continue
                after = await uow.cases.save(before, model.mark_overdue(before, now=now))
                mail = model.escalation_mail(after)
                if mail.recipients:
                    await uow.cases.queue_mail(mail, message_domain=cases.message_domain, now=now)
                await uow.commit()
                escalated += 1
        except StaleEtag:
            continue  # a user got there first; the next round looks again
    if escalated:
        cases.mail_queued()
        log.info("marked %d cases overdue", escalated)
    return escalated
