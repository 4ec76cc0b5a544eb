"""Payment deferral: asked for by an agent holding the person's grant, recorded with its hand-off to the
finance system in one transaction, answered by the finance system through the outbox, and read by the agent
(with a grant), the person, or finance and auditors."""

from __future__ import annotations

from services.common.auth import Caller, Role
from services.common.db import Idempotency
from services.common.errors import NotFound, PermissionDenied
from services.fees.handlers.fees import Fees, log_read
from services.fees.model.deferral import (
    Deferral,
    DeferralState,
    FinanceAnswer,
    already_deferred,
    check_request,
    refusal_for,
)

INVOICES_SCOPE = "invoices"


def _not_covered() -> PermissionDenied:
    # The one answer for a deferral that does not exist and for one of a person the caller may not see.
    return PermissionDenied("no deferral with that name is one you may read", reason="DEFERRAL_NOT_COVERED")


def _invoice_not_covered() -> PermissionDenied:
    return PermissionDenied(
        "the access grant covers no invoice with this number or reference", reason="INVOICE_NOT_COVERED"
    )


async def request_deferral(
    *,
    fees: Fees,
    caller: Caller,
    grant_token: str | None,
    invoice_number: str,
    days: int,
    reason: str,
    case: str,
    idempotency: Idempotency | None = None,
) -> Deferral:
    """Defers a care-fee invoice of the grant's person; refusals come before anything is written."""
    reason = check_request(days=days, reason=reason)
    grant = await fees.grants.valid_grant(grant_token, caller=caller)
    if INVOICES_SCOPE not in grant.scopes:
        raise PermissionDenied(
            "the access grant does not cover invoices",
            reason="GRANT_SCOPE_MISSING",
            metadata={"scope": INVOICES_SCOPE},
        )
    case_name = case or grant.case
    if case_name != grant.case:
        raise PermissionDenied(
            f"the access grant was given in {grant.case}: a deferral is asked for in the case of the consent",
            reason="GRANT_OTHER_CASE",
            metadata={"case": grant.case},
        )
    if idempotency is not None:
        # A retry of a request already answered gets the first answer, without asking about the invoice
        # again (it is deferred by now, which would otherwise refuse the retry).
        async with fees.uow(write=False, idempotency=idempotency):
            pass
    invoice = await fees.mirror.invoice(
        caller, grant_token=grant_token, invoice_number=invoice_number, purpose=case_name
    )
    if invoice.person_number != grant.person_number:
        raise _invoice_not_covered()
    refusal = refusal_for(invoice)
    if refusal is not None:
        raise refusal
    now = fees.clock()
    deferral = Deferral(
        deferral_id=fees.new_id(),
        invoice_number=invoice.invoice_number,
        person_number=invoice.person_number,
        case=case_name,
        days=days,
        reason=reason,
        requested_by=caller.subject,
        amount_ore=invoice.remaining_ore,
        original_due_date=invoice.due_date,
        state=DeferralState.REQUESTED,
        refusal_reason="",
        new_due_date=None,
        finance_reference="",
        create_time=now,
        update_time=now,
    )
    async with fees.uow(idempotency=idempotency) as uow:
        if await uow.fees.deferral_of_invoice(invoice.invoice_number) is not None:
            raise already_deferred(invoice.invoice_number)
        await uow.fees.add_deferral(deferral)
        await uow.commit(deferral)
    fees.deferral_queued()
    await log_read(fees, caller, deferral.person_number, "RequestDeferral", case_name)
    return deferral


async def get_deferral(*, fees: Fees, caller: Caller, grant_token: str | None, deferral_id: str) -> Deferral:
    """A deferral, for finance and auditors, the person it concerns, or an agent holding a grant for that
    person with scope invoices. Anyone else gets the same refusal whether it exists or not."""
    if caller.has_role(Role.FINANCE, Role.AUDITOR):
        async with fees.uow(write=False) as uow:
            found = await uow.fees.deferral(deferral_id)
        if found is None:
            raise NotFound(f"deferrals/{deferral_id}")
        purpose = "ekonomiuppföljning" if caller.has_role(Role.FINANCE) else "granskning"
    elif caller.has_role(Role.AGENT):
        # The grant is checked before the deferral is looked up: its refusals say nothing of the deferral.
        grant = await fees.grants.valid_grant(grant_token, caller=caller)
        if INVOICES_SCOPE not in grant.scopes:
            raise PermissionDenied(
                "the access grant does not cover invoices",
                reason="GRANT_SCOPE_MISSING",
                metadata={"scope": INVOICES_SCOPE},
            )
        async with fees.uow(write=False) as uow:
            found = await uow.fees.deferral(deferral_id)
        if found is None or found.person_number != grant.person_number:
            raise _not_covered()
        purpose = grant.case
    else:
        async with fees.uow(write=False) as uow:
            found = await uow.fees.deferral(deferral_id)
        if found is None or caller.person_number is None or found.person_number != caller.person_number:
            raise _not_covered()
        purpose = "Mina sidor"
    await log_read(fees, caller, found.person_number, "GetDeferral", purpose)
    return found


async def check_replayed_deferral(
    *, fees: Fees, caller: Caller, grant_token: str | None, deferral_id: str
) -> None:
    """Before a replayed RequestDeferral answers with the first answer: the caller's grant must still cover
    the deferral's person, and the read is logged as the first call logged it."""
    grant = await fees.grants.valid_grant(grant_token, caller=caller)
    async with fees.uow(write=False) as uow:
        found = await uow.fees.deferral(deferral_id)
    if found is None or found.person_number != grant.person_number:
        raise _invoice_not_covered()
    await log_read(fees, caller, found.person_number, "RequestDeferral (replayed)", found.case)


async def deferral_to_send(*, fees: Fees, deferral_id: str) -> Deferral | None:
    async with fees.uow(write=False) as uow:
        return await uow.fees.deferral(deferral_id)


async def record_finance_answer(*, fees: Fees, deferral_id: str, answer: FinanceAnswer) -> None:
    """Records the finance system's answer on the deferral."""
    async with fees.uow() as uow:
        current = await uow.fees.deferral(deferral_id)
        if current is None:
            return
        await uow.fees.save_answer(current.answered(answer, fees.clock()))
        await uow.commit()
