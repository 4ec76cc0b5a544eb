"""The fees service as a hostile client meets it: forged grants and page tokens, months and dates outside
every calendar the service deals in, strings of twenty thousand characters, OCR references of every shape,
and probing for other people's deferrals. Each gets a refusal naming what is wrong; none an INTERNAL, and
none a hint of what exists."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
from aldredirekt.common.v1 import access_log_pb2
from aldredirekt.common.v1.common_pb2 import Money
from aldredirekt.fees.v1 import fees_pb2 as pb
from google.type import date_pb2

from services.common.grants import GRANT_METADATA_KEY
from services.common.ocr import generate_ocr
from tests.e2e.fees.conftest import MODULE_LOOP, FeesStack
from tests.rich_errors import field_violations, reason_of, refused

pytestmark = MODULE_LOOP

HUGE = "ä" * 20_000


async def test_months_outside_the_calendar_are_named_field_violations(stack: FeesStack) -> None:
    record = stack.person(lambda r: r.fee_basis is not None and r.district_id == "bromma")
    agent = stack.agent(record.person_number)
    for month in ("9999-12", "2026-13", "0000-01", "2026-1", HUGE):
        fee = await refused(
            stack.stub.CalculateCareFee(
                pb.CalculateCareFeeRequest(person_number=record.person_number, month=month), metadata=agent
            )
        )
        what_if = await refused(
            stack.stub.CalculateCareFeeWhatIf(
                pb.CalculateCareFeeWhatIfRequest(inputs=pb.FeeInputs(), month=month), metadata=agent
            )
        )
        assert field_violations(fee) == field_violations(what_if) == ["month"], month
    # A month the law's figures are not held for is no one's fault but the data files'.
    unheld = await refused(
        stack.stub.CalculateCareFeeWhatIf(
            pb.CalculateCareFeeWhatIfRequest(inputs=pb.FeeInputs(), month="1999-03"), metadata=agent
        )
    )
    assert (unheld.code(), reason_of(unheld)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "PARAMETERS_NOT_IN_FORCE",
    )
    for day in (date_pb2.Date(year=9999, month=12, day=31), date_pb2.Date(year=2026, month=2, day=30)):
        error = await refused(
            stack.stub.GetEffectiveMonth(pb.GetEffectiveMonthRequest(change_date=day), metadata=agent)
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        listing = await refused(
            stack.stub.ListFeeParameters(pb.ListFeeParametersRequest(on=day), metadata=agent)
        )
        assert listing.code() == grpc.StatusCode.INVALID_ARGUMENT
    last = await stack.stub.GetEffectiveMonth(
        pb.GetEffectiveMonthRequest(change_date=date_pb2.Date(year=2199, month=12, day=31)), metadata=agent
    )
    assert last.month == "2200-01"


async def test_strings_of_twenty_thousand_characters_are_refused_naming_their_field(stack: FeesStack) -> None:
    record = stack.person(lambda r: r.fee_basis is not None and r.district_id == "hagersten-alvsjo")
    agent = stack.agent(record.person_number)
    calls: dict[str, Awaitable[Any]] = {
        "person_number": stack.stub.CalculateCareFee(
            pb.CalculateCareFeeRequest(person_number=HUGE), metadata=agent
        ),
        "purpose": stack.stub.CalculateCareFee(
            pb.CalculateCareFeeRequest(person_number=record.person_number, month="2026-11", purpose=HUGE),
            metadata=agent,
        ),
        "deferral.invoice": stack.stub.RequestDeferral(
            pb.RequestDeferralRequest(deferral=pb.Deferral(invoice=f"invoices/{HUGE}", days=3, reason="x")),
            metadata=agent,
        ),
        "deferral.reason": stack.stub.RequestDeferral(
            pb.RequestDeferralRequest(
                deferral=pb.Deferral(invoice="invoices/F2026-000001", days=3, reason=HUGE)
            ),
            metadata=agent,
        ),
        "request_id": stack.stub.RequestDeferral(
            pb.RequestDeferralRequest(
                deferral=pb.Deferral(invoice="invoices/F2026-000001", days=3, reason="x"), request_id=HUGE
            ),
            metadata=agent,
        ),
        "ocr": stack.stub.ValidateOcr(pb.ValidateOcrRequest(ocr=HUGE), metadata=agent),
        "base": stack.stub.GenerateOcr(
            pb.GenerateOcrRequest(base="1" * 20_000), metadata=stack.auth("finance")
        ),
        "name": stack.stub.GetDeferral(pb.GetDeferralRequest(name=HUGE), metadata=agent),
        "inputs.adjustment.reason": stack.stub.CalculateCareFeeWhatIf(
            pb.CalculateCareFeeWhatIfRequest(
                inputs=pb.FeeInputs(adjustment=pb.MinimumAdjustment(amount=Money(ore=100), reason=HUGE))
            ),
            metadata=agent,
        ),
    }
    for field, call in calls.items():
        error = await refused(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field_violations(error)[0] == field, field


async def test_forged_grants_and_page_tokens_are_refused_as_such(stack: FeesStack) -> None:
    record = stack.person(lambda r: r.fee_basis is not None and r.district_id == "kungsholmen")
    agent = stack.auth("agent", subject="agent-astrid")
    forged = (
        "x",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZ2VudC1hc3RyaWQifQ.",
        stack.grant(record.person_number)[:-4] + "AAAA",
    )
    for grant in forged:
        error = await refused(
            stack.stub.CalculateCareFee(
                pb.CalculateCareFeeRequest(person_number=record.person_number, month="2026-11"),
                metadata=(*agent, (GRANT_METADATA_KEY, grant)),
            )
        )
        assert (error.code(), reason_of(error)) == (grpc.StatusCode.PERMISSION_DENIED, "GRANT_INVALID")
    citizen = stack.citizen(record.person_number)
    for token in ("eyJxIjoiYSIsImEiOnt9fQ", "eyJxIjoiYSIsImEiOnt9fQ.AAAA", HUGE):
        error = await refused(
            stack.access_stub.ListAccessLog(
                access_log_pb2.ListAccessLogRequest(person_number=record.person_number, page_token=token),
                metadata=citizen,
            )
        )
        assert field_violations(error) == ["page_token"]


async def test_every_typed_ocr_gets_an_answer_and_generation_round_trips(stack: FeesStack) -> None:
    agent = stack.auth("agent")
    generated = await stack.stub.GenerateOcr(pb.GenerateOcrRequest(base="1001232026"), metadata=agent)
    fixed = await stack.stub.GenerateOcr(
        pb.GenerateOcrRequest(base="1001232026", with_length_digit=False), metadata=agent
    )
    assert generated.ocr == generate_ocr("1001232026")
    assert fixed.ocr == generate_ocr("1001232026", with_length_digit=False)
    typed = f"{generated.ocr[:4]} {generated.ocr[4:8]}-{generated.ocr[8:]}"
    valid = await stack.stub.ValidateOcr(pb.ValidateOcrRequest(ocr=typed), metadata=agent)
    assert (valid.valid, valid.normalized, valid.has_length_digit) == (True, generated.ocr, True)
    without = await stack.stub.ValidateOcr(pb.ValidateOcrRequest(ocr=fixed.ocr), metadata=agent)
    assert without.valid
    assert not without.has_length_digit
    mistyped = generated.ocr[:-1] + str((int(generated.ocr[-1]) + 1) % 10)
    for bad in ("", "1", "12345", "12ab34", "٣٣٣٣", "1" * 26, "1 " * 50, mistyped):
        answer = await stack.stub.ValidateOcr(pb.ValidateOcrRequest(ocr=bad), metadata=agent)
        assert not answer.valid, bad
        assert answer.problem, bad
    for base in ("", "12a", "١٢٣", "1" * 24):
        error = await refused(stack.stub.GenerateOcr(pb.GenerateOcrRequest(base=base), metadata=agent))
        assert field_violations(error) == ["base"], base
    longest = await stack.stub.GenerateOcr(pb.GenerateOcrRequest(base="1" * 23), metadata=agent)
    assert len(longest.ocr) == 25
