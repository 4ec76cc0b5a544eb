"""The contact center's bill through the real services: cases registered in the case service in a month,
counted for the fees service under a token of its own, billed exact to the öre, frozen once issued, a later
change of counts carried to the next bill as a correction, the CSV; and the service's own token from an
identity provider that answers, refuses, or is down."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from fractions import Fraction

import grpc
import pytest_asyncio
from aldredirekt.case.v1 import case_pb2
from aldredirekt.fees.v1 import fees_pb2 as pb
from aldredirekt.fees.v1 import fees_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.business_calendar import STOCKHOLM
from support.ports import free_port
from tests.e2e.fees.conftest import MODULE_LOOP, FeesStack, start_fees
from tests.rich_errors import reason_of, refused
from upstreams.server import Listener

pytestmark = MODULE_LOOP

OCTOBER, NOVEMBER = "2026-10", "2026-11"
# 2026's example figures: a base fee of 10 230 000 kr a year, 79 kr a call.
MONTH_BASE_FEE = 1_023_000_000 // 12
PER_CALL = 7_900


async def register_in(stack: FeesStack, moment: datetime, districts: list[str]) -> list[case_pb2.Case]:
    """Cases registered at `moment` (Stockholm time) by the case service, one per district given."""
    stack.case_clock.at(moment.replace(tzinfo=STOCKHOLM))
    try:
        person = stack.person(lambda r: True).person_number
        return [await stack.open_case(person, district=d) for d in districts]
    finally:
        stack.case_clock.reset()


async def bill(stack: FeesStack, month: str, **request: object) -> pb.BillDistrictsResponse:
    answer: pb.BillDistrictsResponse = await stack.stub.BillDistricts(
        pb.BillDistrictsRequest(month=month, **request),  # type: ignore[arg-type]
        metadata=stack.auth("finance", subject="finance-frida"),
    )
    return answer


def amounts(answer: pb.BillDistrictsResponse, kind: int) -> dict[str, int]:
    return {line.payer: line.amount.ore for line in answer.bill.lines if line.kind == kind}


async def test_a_month_is_billed_exactly_frozen_and_later_changes_become_a_correction(
    stack: FeesStack,
) -> None:
    cases = await register_in(
        stack, datetime(2026, 10, 14, 10, 0), ["districts/bromma"] * 3 + ["districts/farsta", ""]
    )
    # A second call about the first case: calls are billed, not cases.
    stack.case_clock.at(datetime(2026, 10, 20, 13, 0, tzinfo=STOCKHOLM))
    try:
        await stack.cases.AddContact(
            case_pb2.AddContactRequest(
                name=cases[0].name,
                contact=case_pb2.Contact(
                    channel=case_pb2.CHANNEL_PHONE, party=case_pb2.CONTACT_PARTY_SELF, summary="Ringer igen."
                ),
            ),
            metadata=stack.auth("agent", subject="agent-astrid"),
        )
    finally:
        stack.case_clock.reset()
    october = await bill(stack, OCTOBER, request_id="bill-2026-10")

    assert not october.already_issued
    base = amounts(october, pb.BILL_LINE_KIND_BASE_FEE)
    assert len(base) == 12
    assert "aldrenamnden" in base
    assert sum(base.values()) == october.bill.base_fee.ore == MONTH_BASE_FEE
    assert amounts(october, pb.BILL_LINE_KIND_CALLS) == {
        "districts/bromma": 4 * PER_CALL,
        "districts/farsta": 1 * PER_CALL,
    }
    assert october.bill.total.ore == MONTH_BASE_FEE + 5 * PER_CALL
    assert sum(t.total.ore for t in october.bill.totals) == october.bill.total.ore
    assert october.bill.unattributed_contacts == 1
    assert october.bill.uses_example_figures
    assert october.bill.issued_by == "finance-frida"

    # Issued again, by request_id or not: the frozen bill, whatever the counts say now.
    await register_in(stack, datetime(2026, 10, 28, 15, 0), ["districts/farsta", "districts/farsta"])
    replay = await bill(stack, OCTOBER, request_id="bill-2026-10")
    again = await bill(stack, OCTOBER)
    assert replay == october
    assert again.already_issued
    assert again.bill == october.bill

    await register_in(stack, datetime(2026, 11, 3, 9, 30), ["districts/skarholmen"])
    november = await bill(stack, NOVEMBER)
    corrections = [line for line in november.bill.lines if line.kind == pb.BILL_LINE_KIND_CORRECTION]
    assert [(c.payer, c.refers_to_month, c.quantity, c.amount.ore) for c in corrections] == [
        ("districts/farsta", OCTOBER, 2, 2 * PER_CALL)
    ]
    assert amounts(november, pb.BILL_LINE_KIND_CALLS) == {"districts/skarholmen": PER_CALL}
    assert november.bill.total.ore == MONTH_BASE_FEE + PER_CALL + 2 * PER_CALL

    exported = await stack.stub.ExportBill(
        pb.ExportBillRequest(name="bills/2026-11"), metadata=stack.auth("auditor")
    )
    assert exported.content_type == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(exported.data.decode("utf-8")), delimiter=";"))
    assert rows[0][0] == "månad"
    assert len(rows) == 1 + len(november.bill.lines)
    correction = next(r for r in rows if r[2] == "rättelse")
    assert correction[1:] == [
        "districts/farsta",
        "rättelse",
        corrections[0].text,
        OCTOBER,
        "2",
        "79,00",
        "158,00",
    ]
    assert sum(Fraction(r[7].replace(",", ".")) for r in rows[1:]) * 100 == november.bill.total.ore
    got = await stack.stub.GetBill(pb.GetBillRequest(name="bills/2026-10"), metadata=stack.auth("auditor"))
    assert got.bill == october.bill


async def test_a_month_not_over_or_a_bill_not_issued_is_refused_and_only_finance_issues(
    stack: FeesStack,
) -> None:
    today = datetime.now(STOCKHOLM)
    running = await refused(bill(stack, f"{today:%Y-%m}"))
    assert (running.code(), reason_of(running)) == (grpc.StatusCode.FAILED_PRECONDITION, "MONTH_NOT_ENDED")
    missing = await refused(
        stack.stub.GetBill(pb.GetBillRequest(name="bills/2025-01"), metadata=stack.auth("finance"))
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    for role in ("agent", "auditor", "citizen"):
        claims = {"person_number": "194001011230"} if role == "citizen" else {}
        error = await refused(
            stack.stub.BillDistricts(
                pb.BillDistrictsRequest(month="2026-09"), metadata=stack.auth(role, **claims)
            )
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, role
    for month in ("9999-12", "2026-13", "0000-01", "", "x" * 20_000):
        error = await refused(bill(stack, month))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, month


# ---- the service's own token ----------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def identity_provider(stack: FeesStack) -> AsyncIterator[tuple[Listener, list[str]]]:
    """A token endpoint that issues the fees client a `service` token of the stack's issuer, and refuses
    any other client."""
    asked: list[str] = []

    async def token(request: Request) -> JSONResponse:
        asked.append(request.headers.get("authorization", ""))
        if request.headers.get("authorization") != "Basic ZmVlczp0aGUtc2VjcmV0":  # fees:the-secret
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        issued = stack.issuer.mint(role="service", subject="fees", ttl_seconds=600)
        return JSONResponse({"access_token": issued, "token_type": "Bearer", "expires_in": 600})

    listener = Listener(
        "identity-provider", Starlette(routes=[Route("/token", token, methods=["POST"])]), "127.0.0.1", 0
    )
    await listener.start()
    yield listener, asked
    await listener.stop()


async def billed_with_token(stack: FeesStack, url: str, secret: str, month: str) -> pb.BillDistrictsResponse:
    secret_file = stack.folder / f"client-secret-{free_port()}"
    secret_file.write_text(secret)
    alone = await start_fees(
        stack,
        FEES_TOKEN_URL=url,
        FEES_CLIENT_ID="fees",
        FEES_CLIENT_SECRET_FILE=str(secret_file),
        FEES_TOKEN_TIMEOUT_SECONDS="1",
    )
    try:
        async with grpc.aio.insecure_channel(alone.address) as channel:
            stub = fees_pb2_grpc.FeeServiceStub(channel)  # type: ignore[no-untyped-call]
            answer: pb.BillDistrictsResponse = await stub.BillDistricts(
                pb.BillDistrictsRequest(month=month), metadata=stack.auth("finance")
            )
            return answer
    finally:
        await alone.stop(0)


async def test_the_counts_are_asked_for_with_a_token_from_the_identity_provider(
    stack: FeesStack, identity_provider: tuple[Listener, list[str]]
) -> None:
    listener, asked = identity_provider
    url = f"http://127.0.0.1:{listener.port}/token"
    await register_in(stack, datetime(2026, 9, 10, 11, 0), ["districts/jarva"])
    september = await billed_with_token(stack, url, "the-secret", "2026-09")
    assert amounts(september, pb.BILL_LINE_KIND_CALLS) == {"districts/jarva": PER_CALL}
    assert len(asked) == 1

    refused_client = await refused(billed_with_token(stack, url, "not-the-secret", "2026-08"))
    assert (refused_client.code(), reason_of(refused_client)) == (
        grpc.StatusCode.UNAVAILABLE,
        "SERVICE_TOKEN_REFUSED",
    )
    assert "not-the-secret" not in (refused_client.details() or "")

    await listener.stop()
    down = await refused(billed_with_token(stack, url, "the-secret", "2026-08"))
    assert (down.code(), reason_of(down)) == (grpc.StatusCode.UNAVAILABLE, "SERVICE_TOKEN_UNAVAILABLE")
