"""Forwarding a case to the responsible unit: routing by the directory, a deadline of working days, and a
notice to the unit's functional mailbox through the outbox, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from services.case import model
from services.case.handlers.cases import Cases, load_for_update, log_reads, reference_items
from services.case.model import Case, ReferenceKind, Routing, RoutingBasis
from services.common.auth import Caller
from services.common.db import Idempotency
from services.common.errors import InvalidArgument, NotFound, Unavailable


@dataclass(frozen=True)
class Forwarded:
    case: Case
    basis: RoutingBasis
    # Why the rules decided when the care system might have.
    note: str = ""


async def forward_case(
    *,
    cases: Cases,
    caller: Caller,
    case_id: int,
    postal_code: str,
    named_officer: str,
    note: str,
    idempotency: Idempotency | None = None,
) -> Forwarded:
    if len(note) > model.MAX_TEXT:
        raise InvalidArgument.field("note", f"must be at most {model.MAX_TEXT:,} characters")
    # The request is looked up here already: a retry of a forward that succeeded finds the case forwarded,
    # and must get the first answer back rather than the refusal below.
    async with cases.uow(write=False, idempotency=idempotency) as uow:
        current = await uow.cases.get(case_id)
        if current is None:
            raise NotFound(f"cases/{case_id}")
    items = await reference_items(cases)
    # Refuse early, so a closed or forwarded case never costs a directory call.
    model.check_forwardable(current)
    if not (current.district_id or postal_code or named_officer or current.person_number):
        raise _where_to()
    need_role = next(
        (i.need_role for i in items if i.kind is ReferenceKind.CASE_TYPE and i.item_id == current.case_type),
        "",
    )
    # The officer named in the person's district's care system wins over the rules; asked before the
    # transaction, like the directory: when one is down nothing is written.
    basis = RoutingBasis.AGENT if named_officer else RoutingBasis.DIRECTORY_RULES
    why = ""
    district_id = current.district_id
    if not named_officer and current.person_number and cases.care_system is not None:
        try:
            found = await cases.care_system.routing(
                caller, person_number=current.person_number, purpose=current.name
            )
        except Unavailable:
            why = "the districts' care systems did not answer: routed by the directory's rules"
        else:
            if found is None:
                why = "no district's care system holds the person: routed by the directory's rules"
            elif found.officer_id:
                named_officer = f"officers/{found.officer_id}"
                district_id = district_id or found.district_id
                postal_code = postal_code or found.postal_code
                basis = RoutingBasis.CARE_SYSTEM
            else:
                district_id = district_id or found.district_id
                postal_code = postal_code or found.postal_code
                why = "the care system names no single officer: routed by the directory's rules"

    if not (district_id or postal_code or named_officer):
        # Neither the agent nor the care system says where the person belongs.
        raise _where_to()

    async def resolve(named: str) -> Routing:
        return await cases.directory.resolve(
            caller,
            person_number=current.person_number,
            district_id=district_id,
            postal_code=postal_code,
            named_officer=named,
            need_role=need_role,
            purpose=current.name,
        )

    try:
        routing = await resolve(named_officer)
    except NotFound:
        if basis is not RoutingBasis.CARE_SYSTEM:
            raise
        # The care system names an officer the directory does not know (left, or not yet entered).
        basis = RoutingBasis.DIRECTORY_RULES
        why = "the officer the care system names is not in the directory: routed by the directory's rules"
        routing = await resolve("")
    now = cases.clock()
    async with cases.uow(idempotency=idempotency) as uow:
        before = await load_for_update(uow, case_id)
        after = await uow.cases.save(before, model.forward(before, routing, actor=caller.subject, now=now))
        await uow.cases.queue_mail(
            model.forward_mail(after, note), message_domain=cases.message_domain, now=now
        )
        forwarded = Forwarded(after, basis, why)
        await uow.commit(forwarded)
    cases.mail_queued()
    await log_reads(cases, caller, [after.person_number], "ForwardCase", after.name)
    return forwarded


def _where_to() -> InvalidArgument:
    return InvalidArgument.field(
        "postal_code", "give the person's postal code or named officer, or set the district"
    )
