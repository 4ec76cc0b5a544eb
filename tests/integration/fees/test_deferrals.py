"""Deferrals on a real database: stored with their hand-off to finance in one transaction, once per invoice
even when two requests race, nothing written on a refusal, a retry by request_id answered with the first
answer, and read only by those who may."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aldredirekt.fees.v1 import fees_pb2 as pb
from sqlalchemy import select

from services.common.auth import Caller, Role
from services.common.db import Idempotency
from services.common.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from services.common.idempotency import Replayed, request_key
from services.common.runtime import Wiring
from services.fees import handlers
from services.fees.api.mapping import deferral_message
from services.fees.handlers import Fees
from services.fees.model.deferral import Deferral, DeferralState, FinanceAnswer
from services.fees.store import outbox
from tests.integration.fees.support import (
    AGENT,
    ASTRID,
    AUDITOR,
    BERTIL,
    FINANCE,
    OTHER_AGENT,
    FakeMirror,
    Grants,
    caller,
    invoice,
    row_counts,
)


async def defer(
    fees: Fees,
    grants: Grants,
    number: str,
    *,
    person: str = ASTRID,
    days: int = 14,
    idempotency: Idempotency | None = None,
    **grant: object,
) -> Deferral:
    return await handlers.request_deferral(
        fees=fees,
        caller=AGENT,
        grant_token=grants.grant(person, **grant),  # type: ignore[arg-type]
        invoice_number=number,
        days=days,
        reason="Pensionen kommer sent den här månaden.",
        case="",
        idempotency=idempotency,
    )


async def test_a_deferral_is_stored_with_its_handoff_to_finance(
    wiring: Wiring[Fees], mirror: FakeMirror, grants: Grants
):
    mirror.invoices["F2026-000001"] = invoice("F2026-000001", remaining_ore=120_000)
    deferral = await defer(wiring.core, grants, "F2026-000001")

    assert deferral.state is DeferralState.REQUESTED
    assert (deferral.case, deferral.requested_by, deferral.amount_ore) == ("cases/12", "agent-anna", 120_000)
    async with wiring.engine.connect() as conn:
        message = (await conn.execute(select(outbox))).one()
    assert message.kind == "deferral"
    assert message.delivery_key == deferral.delivery_key
    assert message.subject_ref == deferral.name
    # The message holds which deferral, nothing of the person.
    assert json.loads(message.payload) == {"deferral": deferral.deferral_id}
    async with wiring.core.uow(write=False) as uow:
        assert await uow.fees.deferral(deferral.deferral_id) == deferral


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"remaining_ore": 0}, "INVOICE_PAID"), ({"care_fee": False}, "INVOICE_NOT_CARE_FEE")],
)
async def test_an_invoice_that_cannot_be_deferred_is_refused_and_nothing_is_written(
    wiring: Wiring[Fees], mirror: FakeMirror, grants: Grants, changes: dict[str, Any], reason: str
):
    mirror.invoices["F2026-000002"] = invoice("F2026-000002", **changes)
    before = await row_counts(wiring.engine)
    with pytest.raises(FailedPrecondition) as caught:
        await defer(wiring.core, grants, "F2026-000002")
    assert caught.value.reason == reason
    assert await row_counts(wiring.engine) == before


async def test_an_invoice_of_another_person_than_the_grants_is_refused_as_not_covered(
    wiring: Wiring[Fees], mirror: FakeMirror, grants: Grants
):
    mirror.invoices["F2026-000003"] = invoice("F2026-000003", person=BERTIL)
    with pytest.raises(PermissionDenied) as caught:
        await defer(wiring.core, grants, "F2026-000003")
    assert caught.value.reason == "INVOICE_NOT_COVERED"
    assert (await row_counts(wiring.engine))["deferrals"] == 0


async def test_a_grant_without_invoices_or_of_another_case_is_refused_before_the_invoice_is_read(
    wiring: Wiring[Fees], mirror: FakeMirror, grants: Grants
):
    mirror.invoices["F2026-000004"] = invoice("F2026-000004")
    with pytest.raises(PermissionDenied) as scope:
        await defer(wiring.core, grants, "F2026-000004", scopes=("fees",))
    with pytest.raises(PermissionDenied) as other_case:
        await handlers.request_deferral(
            fees=wiring.core,
            caller=AGENT,
            grant_token=grants.grant(ASTRID, case="cases/12"),
            invoice_number="F2026-000004",
            days=10,
            reason="Sjukhusvistelse.",
            case="cases/13",
        )
    assert (scope.value.reason, other_case.value.reason) == ("GRANT_SCOPE_MISSING", "GRANT_OTHER_CASE")
    assert mirror.reads == 0


async def test_an_invoice_is_deferred_once_and_a_second_request_writes_nothing(
    wiring: Wiring[Fees], mirror: FakeMirror, grants: Grants
):
    mirror.invoices["F2026-000005"] = invoice("F2026-000005")
    await defer(wiring.core, grants, "F2026-000005")
    before = await row_counts(wiring.engine)
    with pytest.raises(FailedPrecondition) as caught:
        await defer(wiring.core, grants, "F2026-000005", days=5)
    assert caught.value.reason == "ALREADY_DEFERRED"
    assert await row_counts(wiring.engine) == before


async def test_two_requests_racing_for_one_invoice_make_one_deferral(
    wiring: Wiring[Fees], mirror: FakeMirror, grants: Grants
):
    mirror.invoices["F2026-000006"] = invoice("F2026-000006")
    outcomes = await asyncio.gather(
        *(defer(wiring.core, grants, "F2026-000006", days=d) for d in (3, 4, 5, 6)), return_exceptions=True
    )
    made = [o for o in outcomes if isinstance(o, Deferral)]
    refused = [o for o in outcomes if isinstance(o, FailedPrecondition)]
    assert len(made) == 1
    assert len(refused) == 3
    assert {r.reason for r in refused} == {"ALREADY_DEFERRED"}
    counts = await row_counts(wiring.engine)
    assert (counts["deferrals"], counts["outbox_messages"]) == (1, 1)


def _idempotency(request_id: str, number: str, days: int = 14) -> Idempotency:
    request = pb.RequestDeferralRequest(
        deferral=pb.Deferral(invoice=f"invoices/{number}", days=days, reason="x"), request_id=request_id
    )
    key = request_key("fees.RequestDeferral", AGENT.idempotency_scope, request)
    assert key is not None

    def encode(answer: Deferral) -> bytes:
        return pb.RequestDeferralResponse(deferral=deferral_message(answer)).SerializeToString()

    return Idempotency(key, encode=encode)


async def test_a_retry_with_the_same_request_id_gets_the_first_answer_and_another_payload_is_refused(
    wiring: Wiring[Fees], mirror: FakeMirror, grants: Grants
):
    mirror.invoices["F2026-000007"] = invoice("F2026-000007")
    first = await defer(wiring.core, grants, "F2026-000007", idempotency=_idempotency("r-1", "F2026-000007"))
    with pytest.raises(Replayed) as replayed:
        await defer(wiring.core, grants, "F2026-000007", idempotency=_idempotency("r-1", "F2026-000007"))
    answer = pb.RequestDeferralResponse.FromString(replayed.value.response)
    assert answer.deferral.name == first.name
    with pytest.raises(AlreadyExists) as reused:
        await defer(
            wiring.core, grants, "F2026-000007", days=9, idempotency=_idempotency("r-1", "F2026-000007", 9)
        )
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert (await row_counts(wiring.engine))["deferrals"] == 1


async def test_the_finance_systems_answer_is_recorded(
    wiring: Wiring[Fees], mirror: FakeMirror, grants: Grants
):
    from datetime import date

    mirror.invoices["F2026-000008"] = invoice("F2026-000008")
    deferral = await defer(wiring.core, grants, "F2026-000008")
    await handlers.record_finance_answer(
        fees=wiring.core,
        deferral_id=deferral.deferral_id,
        answer=FinanceAnswer(True, "", date(2027, 1, 14), "def-000042"),
    )
    read = await handlers.get_deferral(
        fees=wiring.core, caller=FINANCE, grant_token=None, deferral_id=deferral.deferral_id
    )
    assert (read.state, read.new_due_date, read.finance_reference) == (
        DeferralState.ACCEPTED,
        date(2027, 1, 14),
        "def-000042",
    )


async def test_a_deferral_is_read_by_finance_its_person_or_a_granted_agent_and_no_one_can_tell_it_exists(
    wiring: Wiring[Fees], mirror: FakeMirror, grants: Grants
):
    mirror.invoices["F2026-000009"] = invoice("F2026-000009")
    deferral = await defer(wiring.core, grants, "F2026-000009")
    fees, known, unknown = wiring.core, deferral.deferral_id, "0" * 32

    async def read(who: Caller, token: str | None, deferral_id: str) -> object:
        try:
            return await handlers.get_deferral(
                fees=fees, caller=who, grant_token=token, deferral_id=deferral_id
            )
        except (PermissionDenied, NotFound) as refused:
            return (type(refused).__name__, refused.reason, refused.message)

    assert isinstance(await read(FINANCE, None, known), Deferral)
    assert isinstance(await read(AUDITOR, None, known), Deferral)
    assert isinstance(await read(AGENT, grants.grant(ASTRID), known), Deferral)
    assert isinstance(await read(caller(Role.CITIZEN, person=ASTRID), None, known), Deferral)
    assert (await read(FINANCE, None, unknown))[0] == "NotFound"  # type: ignore[index]
    # Another person's grant, another citizen, or nothing at all: one and the same answer.
    other_grant = await read(AGENT, grants.grant(BERTIL), known)
    assert other_grant == await read(AGENT, grants.grant(BERTIL), unknown)
    other_citizen = await read(caller(Role.CITIZEN, person=BERTIL), None, known)
    assert other_citizen == await read(caller(Role.CITIZEN, person=BERTIL), None, unknown)
    assert other_grant[1] == other_citizen[1] == "DEFERRAL_NOT_COVERED"  # type: ignore[index]
    # A grant held by someone else is refused for what it is, whether the deferral exists or not.
    not_yours = await read(OTHER_AGENT, grants.grant(ASTRID), known)
    assert not_yours == await read(OTHER_AGENT, grants.grant(ASTRID), unknown)
    assert not_yours[1] == "GRANT_NOT_YOURS"  # type: ignore[index]
