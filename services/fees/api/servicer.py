"""The FeeService servicer: who may call each RPC, the request parsed, a use case called, the answer built.
Nothing else happens here."""

from __future__ import annotations

from datetime import date
from typing import Any

import grpc
from aldredirekt.fees.v1 import fees_pb2 as pb
from aldredirekt.fees.v1 import fees_pb2_grpc
from google.api import httpbody_pb2

from services.common.auth import Role
from services.common.commands import run_command
from services.common.errors import InvalidArgument
from services.common.grants import grant_from_metadata
from services.common.names import resource_id, resource_ids
from services.common.ocr import MAX_DIGITS, OcrControl, generate_ocr, length_digit, parse_ocr
from services.common.personnummer import parse_person_number
from services.common.protoconv import from_date_message, parse_month, timestamp
from services.common.server import allow, current_caller
from services.fees import handlers
from services.fees.api.mapping import (
    bill_message,
    care_fee_message,
    deferral_message,
    fee_inputs_from,
    input_field,
    inputs_message,
    money,
    parameter_message,
)
from services.fees.handlers import Fees
from services.fees.model import FeeInputError
from services.fees.model.deferral import is_deferral_id
from services.fees.model.issuing import IssuedBill, bill_csv

Context = grpc.aio.ServicerContext[Any, Any]

# Whoever explains a fee: the calculation from explicit inputs holds no one's data.
EXPLAINERS = (Role.AGENT, Role.CITIZEN, Role.OFFICER)
READERS_OF_FIGURES = (*EXPLAINERS, Role.FINANCE, Role.AUDITOR)
# Longer than this is no OCR reference however it is typed; refused unread.
MAX_TYPED_OCR = 100
MAX_INVOICE_NUMBER = 100


def _grant(context: Context) -> str | None:
    return grant_from_metadata(context.invocation_metadata())


def _month(raw: str, field: str) -> date | None:
    return parse_month(raw, field) if raw.strip() else None


def _person(raw: str) -> str:
    if not raw:
        raise InvalidArgument.field("person_number", "is required")
    return str(parse_person_number(raw, field="person_number"))


def _bill_month(name: str) -> date:
    return parse_month(resource_id(name, "bills", "name"), "name")


def _deferral_id(name: str) -> str:
    deferral_id = resource_id(name, "deferrals", "name")
    if not is_deferral_id(deferral_id):
        raise InvalidArgument.field("name", "is not a deferral's name: deferrals/ and 32 hexadecimal digits")
    return deferral_id


class FeeServicer(fees_pb2_grpc.FeeServiceServicer):
    def __init__(self, fees: Fees):
        self.fees = fees

    @allow(Role.AGENT, Role.CITIZEN)
    async def CalculateCareFee(
        self, request: pb.CalculateCareFeeRequest, context: Context
    ) -> pb.CalculateCareFeeResponse:
        found = await handlers.calculate_care_fee(
            fees=self.fees,
            caller=current_caller(),
            grant_token=_grant(context),
            person_number=_person(request.person_number),
            month=_month(request.month, "month"),
            purpose=request.purpose,
        )
        mapped = found.mapped
        return pb.CalculateCareFeeResponse(
            fee=care_fee_message(found.calculation),
            inputs=inputs_message(mapped.inputs),
            district=f"districts/{mapped.district_id}",
            decided_fee=money(mapped.decided_fee_ore),
            assumptions=list(mapped.assumptions),
            basis_as_of=timestamp(mapped.basis_as_of),
            basis_stale=mapped.basis_stale,
        )

    @allow(*EXPLAINERS)
    async def CalculateCareFeeWhatIf(
        self, request: pb.CalculateCareFeeWhatIfRequest, context: Context
    ) -> pb.CalculateCareFeeWhatIfResponse:
        month = _month(request.month, "month") or self.fees.current_month()
        if not request.HasField("inputs"):
            raise InvalidArgument.field("inputs", "is required: the household, incomes and services")
        inputs = fee_inputs_from(request.inputs, month)
        try:
            calculation = handlers.calculate_what_if(fees=self.fees, inputs=inputs, month=month)
        except FeeInputError as wrong:
            raise InvalidArgument.field(input_field(wrong.field), str(wrong)) from None
        return pb.CalculateCareFeeWhatIfResponse(fee=care_fee_message(calculation))

    @allow(*EXPLAINERS)
    async def GetEffectiveMonth(
        self, request: pb.GetEffectiveMonthRequest, context: Context
    ) -> pb.GetEffectiveMonthResponse:
        if not request.HasField("change_date"):
            raise InvalidArgument.field("change_date", "is required: the day the circumstances changed")
        month, line = handlers.effective_month_of(
            fees=self.fees,
            change_date=from_date_message(request.change_date, "change_date"),
            covers_whole_month=request.covers_whole_month,
        )
        return pb.GetEffectiveMonthResponse(
            month=f"{month:%Y-%m}",
            explanation=pb.ExplanationLine(text=line.text, citation=line.citation, example=line.example),
        )

    @allow(*READERS_OF_FIGURES)
    async def ListFeeParameters(
        self, request: pb.ListFeeParametersRequest, context: Context
    ) -> pb.ListFeeParametersResponse:
        on = from_date_message(request.on, "on") if request.HasField("on") else None
        listed = handlers.fee_parameters(fees=self.fees, on=on)
        return pb.ListFeeParametersResponse(parameters=[parameter_message(p) for p in listed])

    @allow(Role.AGENT)
    async def RequestDeferral(
        self, request: pb.RequestDeferralRequest, context: Context
    ) -> pb.RequestDeferralResponse:
        given = request.deferral
        invoice_number = resource_id(given.invoice, "invoices", "deferral.invoice")
        if len(invoice_number) > MAX_INVOICE_NUMBER:
            raise InvalidArgument.field(
                "deferral.invoice", f"an invoice number is at most {MAX_INVOICE_NUMBER} characters"
            )
        case = ""
        if given.case:
            case = "cases/" + resource_ids(given.case, ("cases",), "deferral.case", numeric=True)[0]
        caller = current_caller()
        grant_token = _grant(context)

        async def replayed(response: pb.RequestDeferralResponse) -> None:
            # The first answer shows the person's invoice again: shown only to a grant for that person, and
            # logged as the first call logged it.
            await handlers.check_replayed_deferral(
                fees=self.fees,
                caller=caller,
                grant_token=grant_token,
                deferral_id=_deferral_id(response.deferral.name),
            )

        return await run_command(
            "fees.RequestDeferral",
            request,
            pb.RequestDeferralResponse,
            lambda idempotency: handlers.request_deferral(
                fees=self.fees,
                caller=caller,
                grant_token=grant_token,
                invoice_number=invoice_number,
                days=given.days,
                reason=given.reason,
                case=case,
                idempotency=idempotency,
            ),
            lambda deferral: pb.RequestDeferralResponse(deferral=deferral_message(deferral)),
            replayed=replayed,
        )

    @allow(Role.AGENT, Role.CITIZEN, Role.FINANCE, Role.AUDITOR)
    async def GetDeferral(self, request: pb.GetDeferralRequest, context: Context) -> pb.GetDeferralResponse:
        deferral = await handlers.get_deferral(
            fees=self.fees,
            caller=current_caller(),
            grant_token=_grant(context),
            deferral_id=_deferral_id(request.name),
        )
        return pb.GetDeferralResponse(deferral=deferral_message(deferral))

    @allow(Role.AGENT, Role.CITIZEN, Role.OFFICER, Role.FINANCE, Role.AUDITOR)
    async def ValidateOcr(self, request: pb.ValidateOcrRequest, context: Context) -> pb.ValidateOcrResponse:
        if len(request.ocr) > MAX_TYPED_OCR:
            raise InvalidArgument.field(
                "ocr",
                f"is {len(request.ocr):,} characters: no OCR reference, however typed, is over "
                f"{MAX_TYPED_OCR}",
            )
        if not request.ocr.strip():
            return pb.ValidateOcrResponse(valid=False, problem="Ingen referens angavs.")
        try:
            digits = parse_ocr(request.ocr, control=OcrControl.HARD)
        except InvalidArgument as wrong:
            return pb.ValidateOcrResponse(valid=False, problem=wrong.violations[0].description)
        with_length = length_digit(len(digits)) == int(digits[-2])
        return pb.ValidateOcrResponse(valid=True, normalized=digits, has_length_digit=with_length)

    @allow(Role.FINANCE, Role.AGENT, Role.SERVICE)
    async def GenerateOcr(self, request: pb.GenerateOcrRequest, context: Context) -> pb.GenerateOcrResponse:
        base = request.base
        if not base:
            raise InvalidArgument.field("base", "is required: the digits the reference is built from")
        if not base.isascii() or not base.isdigit():
            raise InvalidArgument.field("base", "may hold only the digits 0 to 9")
        with_length = request.with_length_digit if request.HasField("with_length_digit") else True
        total = len(base) + (2 if with_length else 1)
        if total > MAX_DIGITS:
            raise InvalidArgument.field(
                "base", f"gives a reference of {total} digits; Bankgirot allows at most {MAX_DIGITS}"
            )
        return pb.GenerateOcrResponse(ocr=generate_ocr(base, with_length_digit=with_length))

    @allow(Role.FINANCE)
    async def BillDistricts(
        self, request: pb.BillDistrictsRequest, context: Context
    ) -> pb.BillDistrictsResponse:
        if not request.month.strip():
            raise InvalidArgument.field("month", "is required: a month that has ended, like 2026-03")
        month = parse_month(request.month, "month")
        caller = current_caller()

        def respond(answer: tuple[IssuedBill, bool]) -> pb.BillDistrictsResponse:
            issued, before = answer
            return pb.BillDistrictsResponse(bill=bill_message(issued), already_issued=before)

        return await run_command(
            "fees.BillDistricts",
            request,
            pb.BillDistrictsResponse,
            lambda idempotency: handlers.bill_districts(
                fees=self.fees, caller=caller, month=month, idempotency=idempotency
            ),
            respond,
        )

    @allow(Role.FINANCE, Role.AUDITOR)
    async def GetBill(self, request: pb.GetBillRequest, context: Context) -> pb.GetBillResponse:
        issued = await handlers.get_bill(fees=self.fees, month=_bill_month(request.name))
        return pb.GetBillResponse(bill=bill_message(issued))

    @allow(Role.FINANCE, Role.AUDITOR)
    async def ExportBill(self, request: pb.ExportBillRequest, context: Context) -> httpbody_pb2.HttpBody:
        issued = await handlers.get_bill(fees=self.fees, month=_bill_month(request.name))
        return httpbody_pb2.HttpBody(content_type="text/csv; charset=utf-8", data=bill_csv(issued).encode())
