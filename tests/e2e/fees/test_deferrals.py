"""Payment deferral through the real services: asked for by an agent with the person's grant, checked against
the invoice the mirror shows, handed to Agresso's deferral desk through the outbox, the due date moved there
and seen in the mirror after its next sync; every refusal with nothing written; the finance system down and
back, and the deferral delivered once; a retry by request_id; and who may read a deferral."""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta
from typing import Any

import grpc
from aldredirekt.common.v1 import access_log_pb2, outbox_pb2
from aldredirekt.fees.v1 import fees_pb2 as pb
from aldredirekt.mirror.v1 import mirror_pb2
from sqlalchemy import select

from services.common.outbox import OutboxMessage
from services.fees.finance import DeferralDelivery
from services.fees.store import outbox
from synthcity.care import InvoiceKind
from tests.e2e.fees.conftest import MODULE_LOOP, FeesStack
from tests.rich_errors import field_violations, reason_of, refused

pytestmark = MODULE_LOOP

REASON = "Pensionen betalas ut först den 20:e denna månad."


def fee_payer(stack: FeesStack) -> str:
    """A person with an unpaid care-fee invoice and a paid one, outside Skärholmen."""
    invoiced: dict[str, set[bool]] = {}
    for invoice in stack.care.invoices:
        if invoice.kind is InvoiceKind.CARE_FEE:
            invoiced.setdefault(invoice.person_number, set()).add(invoice.remaining_ore > 0)
    return stack.person(lambda r: invoiced.get(r.person_number) == {True, False}).person_number


def request(number: str, days: int = 14, **changes: object) -> pb.RequestDeferralRequest:
    deferral = pb.Deferral(invoice=f"invoices/{number}", days=days, reason=REASON)
    request_id = str(changes.pop("request_id", ""))
    for name, value in changes.items():
        setattr(deferral, name, value)
    return pb.RequestDeferralRequest(deferral=deferral, request_id=request_id)


async def settled(stack: FeesStack, name: str, metadata: object, *, within: float = 30.0) -> pb.Deferral:
    """The deferral once the finance system has answered it."""
    deadline = time.monotonic() + within
    while True:
        found = (await stack.stub.GetDeferral(pb.GetDeferralRequest(name=name), metadata=metadata)).deferral  # type: ignore[arg-type]
        if found.state != pb.DEFERRAL_STATE_REQUESTED:
            return found
        assert time.monotonic() < deadline, f"{name} still waits for the finance system"
        await asyncio.sleep(0.05)


async def sent(stack: FeesStack, key: str, *, within: float = 30.0) -> Any:
    """The outbox row of `key` once it is marked sent."""
    deadline = time.monotonic() + within
    while True:
        async with stack.fees.wiring.engine.connect() as conn:
            row = (await conn.execute(select(outbox).where(outbox.c.delivery_key == key))).one()
        if row.sent_time is not None:
            return row
        assert time.monotonic() < deadline, f"{key} was delivered but never marked sent"
        await asyncio.sleep(0.05)


async def test_a_deferral_is_accepted_by_finance_and_the_mirror_shows_the_new_due_date(
    stack: FeesStack,
) -> None:
    person = fee_payer(stack)
    invoice = stack.unpaid_care_fee_invoice(person)
    agent = stack.agent(person, case="cases/7")
    answer = await stack.stub.RequestDeferral(request(invoice.invoice_ref, days=21), metadata=agent)
    asked = answer.deferral

    assert asked.state == pb.DEFERRAL_STATE_REQUESTED
    assert (asked.case, asked.requested_by, asked.days, asked.reason) == (
        "cases/7",
        "agent-astrid",
        21,
        REASON,
    )
    assert asked.amount.ore == invoice.remaining_ore
    assert date(asked.original_due_date.year, asked.original_due_date.month, asked.original_due_date.day) == (
        invoice.due_date
    )
    done = await settled(stack, asked.name, agent)
    moved = invoice.due_date + timedelta(days=21)
    assert done.state == pb.DEFERRAL_STATE_ACCEPTED
    assert (done.new_due_date.year, done.new_due_date.month, done.new_due_date.day) == (
        moved.year,
        moved.month,
        moved.day,
    )
    stored = stack.upstreams.store("agresso").get(invoice.record_id)
    assert stored is not None
    assert stored.record.due_date == moved
    # The mirror takes a change once it has settled upstream (MIRROR_SETTLE_SECONDS): it shows after a sync.
    deadline = time.monotonic() + 10
    while True:
        await stack.mirror.sync("agresso")
        found = await stack.mirror.stub.FindInvoice(
            mirror_pb2.FindInvoiceRequest(invoice_number=invoice.invoice_ref), metadata=agent
        )
        shown = found.invoice.due_date
        if (shown.year, shown.month, shown.day) == (moved.year, moved.month, moved.day):
            break
        assert time.monotonic() < deadline, "the mirror never showed the new due date"
        await asyncio.sleep(0.1)
    # The read of the person's invoice is in the fees service's access log, under the case.
    log = await stack.access_stub.ListAccessLog(
        access_log_pb2.ListAccessLogRequest(person_number=person), metadata=stack.citizen(person)
    )
    assert any(e.action == "fees.RequestDeferral" and e.purpose == "cases/7" for e in log.entries)


async def test_what_cannot_be_deferred_is_refused_with_its_reason_and_nothing_is_written(
    stack: FeesStack,
) -> None:
    person = fee_payer(stack)
    agent = stack.agent(person)
    paid = next(
        i for i in stack.invoices_of(person) if i.kind is InvoiceKind.CARE_FEE and i.remaining_ore == 0
    )
    other_person = fee_payer(stack)
    theirs = stack.unpaid_care_fee_invoice(other_person)
    added = stack.upstreams.mutate(
        "agresso", "add_invoice", person_number=person, kind="other", amount_ore=45_000, period="2026-10"
    )
    await stack.mirror.sync("agresso")
    not_care_fee = stack.upstreams.store("agresso").get(added["changes"][0]["id"])
    assert not_care_fee is not None
    before = await stack.stored()

    cases = [
        (request(paid.invoice_ref), grpc.StatusCode.FAILED_PRECONDITION, "INVOICE_PAID"),
        (
            request(not_care_fee.record.invoice_ref),
            grpc.StatusCode.FAILED_PRECONDITION,
            "INVOICE_NOT_CARE_FEE",
        ),
        (request(theirs.invoice_ref), grpc.StatusCode.PERMISSION_DENIED, "INVOICE_NOT_COVERED"),
        (request("F1999-999999"), grpc.StatusCode.PERMISSION_DENIED, "INVOICE_NOT_COVERED"),
    ]
    for sent, code, reason in cases:
        error = await refused(stack.stub.RequestDeferral(sent, metadata=agent))
        assert (error.code(), reason_of(error)) == (code, reason), reason
    too_long = await refused(stack.stub.RequestDeferral(request(paid.invoice_ref, days=31), metadata=agent))
    assert field_violations(too_long) == ["deferral.days"]
    assert await stack.stored() == before


async def test_an_invoice_is_deferred_once_and_a_retry_by_request_id_gets_the_first_answer(
    stack: FeesStack,
) -> None:
    person = fee_payer(stack)
    invoice = stack.unpaid_care_fee_invoice(person)
    agent = stack.agent(person)
    first = await stack.stub.RequestDeferral(
        request(invoice.invoice_ref, request_id="retry-1"), metadata=agent
    )
    again = await stack.stub.RequestDeferral(
        request(invoice.invoice_ref, request_id="retry-1"), metadata=agent
    )
    assert again.deferral == first.deferral
    second = await refused(stack.stub.RequestDeferral(request(invoice.invoice_ref, days=3), metadata=agent))
    assert (second.code(), reason_of(second)) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_DEFERRED")
    reused = await refused(
        stack.stub.RequestDeferral(request(invoice.invoice_ref, days=3, request_id="retry-1"), metadata=agent)
    )
    assert reason_of(reused) == "IDEMPOTENCY_KEY_REUSED"
    # The first answer is not shown to a grant of another person.
    other = fee_payer(stack)
    leak = await refused(
        stack.stub.RequestDeferral(
            request(invoice.invoice_ref, request_id="retry-1"), metadata=stack.agent(other)
        )
    )
    assert leak.code() == grpc.StatusCode.PERMISSION_DENIED
    await settled(stack, first.deferral.name, agent)


async def test_with_finance_down_the_deferral_waits_and_is_delivered_once_when_it_is_back(
    stack: FeesStack,
) -> None:
    person = fee_payer(stack)
    invoice = stack.unpaid_care_fee_invoice(person)
    agent = stack.agent(person)
    desk = stack.upstreams.instance("agresso")
    issued_before = desk.deferrals.issued  # type: ignore[attr-defined]
    await stack.upstreams.set_knobs("agresso", down=True)
    try:
        asked = (
            await stack.stub.RequestDeferral(request(invoice.invoice_ref, days=10), metadata=agent)
        ).deferral
        key = f"fees-deferral-{asked.name.removeprefix('deferrals/')}"
        deadline = time.monotonic() + 10
        while True:
            async with stack.fees.wiring.engine.connect() as conn:
                row = (await conn.execute(select(outbox).where(outbox.c.delivery_key == key))).one()
            if row.attempts >= 1:
                break
            assert time.monotonic() < deadline, "the outbox never tried"
            await asyncio.sleep(0.05)
        assert "cannot be reached" in row.last_error
        waiting = (
            await stack.stub.GetDeferral(pb.GetDeferralRequest(name=asked.name), metadata=agent)
        ).deferral
        assert waiting.state == pb.DEFERRAL_STATE_REQUESTED
        assert key not in desk.deferrals.answers  # type: ignore[attr-defined]
    finally:
        await stack.upstreams.set_knobs("agresso", down=False)
    # Its next attempt is due after the backoff: move the fees service's clock there.
    stack.fees_clock.skip(minutes=15)
    try:
        done = await settled(stack, asked.name, agent)
        # The answer is recorded before the message is marked sent, in a transaction of its own.
        row = await sent(stack, key)
    finally:
        stack.fees_clock.reset()
    assert done.state == pb.DEFERRAL_STATE_ACCEPTED
    assert desk.deferrals.issued == issued_before + 1  # type: ignore[attr-defined]
    assert key in desk.deferrals.answers  # type: ignore[attr-defined]
    moved = invoice.due_date + timedelta(days=10)
    stored = stack.upstreams.store("agresso").get(invoice.record_id)
    assert stored is not None
    assert stored.record.due_date == moved

    # A sender that crashed before marking it sent would send it again, under the same key: Agresso
    # answers its first answer, and the due date moves no further.
    sender = stack.fees.wiring.outbox
    assert sender is not None
    deliver = sender.deliverers["deferral"]
    assert isinstance(deliver, DeferralDelivery)
    await deliver(
        OutboxMessage(
            id=row.id,
            kind=row.kind,
            delivery_key=row.delivery_key,
            payload=bytes(row.payload),
            subject_ref=row.subject_ref,
            attempts=row.attempts,
            create_time=row.create_time,
        )
    )
    assert desk.deferrals.issued == issued_before + 1  # type: ignore[attr-defined]
    stored = stack.upstreams.store("agresso").get(invoice.record_id)
    assert stored is not None
    assert stored.record.due_date == moved
    again = (await stack.stub.GetDeferral(pb.GetDeferralRequest(name=asked.name), metadata=agent)).deferral
    assert again.state == pb.DEFERRAL_STATE_ACCEPTED
    pending = await stack.outbox_stub.ListOutboxMessages(
        outbox_pb2.ListOutboxMessagesRequest(state=outbox_pb2.OUTBOX_STATE_SENT),
        metadata=stack.auth("operator"),
    )
    assert any(m.delivery_key == key for m in pending.messages)


async def test_a_deferral_is_read_by_its_person_finance_or_an_agent_with_a_grant_and_no_one_can_probe_others(
    stack: FeesStack,
) -> None:
    person = fee_payer(stack)
    invoice = stack.unpaid_care_fee_invoice(person)
    agent = stack.agent(person)
    name = (await stack.stub.RequestDeferral(request(invoice.invoice_ref), metadata=agent)).deferral.name
    unknown = "deferrals/" + "0" * 32

    async def read(deferral: str, metadata: object) -> str:
        try:
            await stack.stub.GetDeferral(pb.GetDeferralRequest(name=deferral), metadata=metadata)  # type: ignore[arg-type]
        except grpc.aio.AioRpcError as error:
            return f"{error.code().name} {reason_of(error)} {error.details()}"
        return "OK"

    assert await read(name, agent) == "OK"
    assert await read(name, stack.citizen(person)) == "OK"
    assert await read(name, stack.auth("finance")) == "OK"
    assert await read(name, stack.auth("auditor")) == "OK"
    stranger = fee_payer(stack)
    for metadata in (stack.citizen(stranger), stack.agent(stranger)):
        assert await read(name, metadata) == await read(unknown, metadata)
        assert (await read(name, metadata)).startswith("PERMISSION_DENIED DEFERRAL_NOT_COVERED")
    assert (await read(name, stack.auth("officer", unit="units/bromma-bestallarenhet"))).startswith(
        "PERMISSION_DENIED ROLE_NOT_ALLOWED"
    )
    assert (await read("deferrals/../../x", agent)).startswith("INVALID_ARGUMENT")
