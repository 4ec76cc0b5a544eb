"""Protobuf ⇄ domain for the fees service: the inputs of a fee checked field by field, and every answer
built."""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from fractions import Fraction

from aldredirekt.common.v1 import common_pb2
from aldredirekt.fees.v1 import fees_pb2 as pb

from services.common.errors import FieldViolation, InvalidArgument
from services.common.protoconv import date_message, timestamp
from services.fees.model import (
    Cohabiting,
    FeeCalculation,
    FeeInputs,
    Household,
    IncomeKind,
    LineKind,
    MinimumAdjustment,
    Relation,
    Services,
    Single,
    SpecialHousing,
)
from services.fees.model.basis import MAX_HOURS_PER_MONTH
from services.fees.model.deferral import Deferral, DeferralState
from services.fees.model.issuing import IssuedBill, payer_name
from services.fees.model.listing import ListedParameter

# What the inputs of a fee may hold: 10 million kronor a month of income (the contract's limit), a million
# of housing cost or rent, a million either way of adjustment.
MAX_INCOME_ORE = 10_000_000 * 100
MAX_HOUSING_ORE = 1_000_000 * 100
MAX_ADJUSTMENT_ORE = 1_000_000 * 100
MAX_ADJUSTMENT_REASON = 500

INCOME_KINDS: dict[pb.IncomeKind.ValueType, IncomeKind] = {
    pb.INCOME_KIND_PENSION: IncomeKind.PENSION,
    pb.INCOME_KIND_BOSTADSTILLAGG: IncomeKind.BOSTADSTILLAGG,
    pb.INCOME_KIND_TJANSTEPENSION: IncomeKind.TJANSTEPENSION,
    pb.INCOME_KIND_ARBETSINKOMST: IncomeKind.ARBETSINKOMST,
    pb.INCOME_KIND_KAPITAL: IncomeKind.KAPITAL,
    pb.INCOME_KIND_OVRIGT: IncomeKind.OVRIGT,
}
INCOME_NUMBERS = {kind: number for number, kind in INCOME_KINDS.items()}
RELATIONS = {
    pb.RELATION_UNSPECIFIED: Relation.MAKAR,
    pb.RELATION_SPOUSES: Relation.MAKAR,
    pb.RELATION_SAMBOR: Relation.SAMBOR,
}
DEFERRAL_STATES = {
    DeferralState.REQUESTED: pb.DEFERRAL_STATE_REQUESTED,
    DeferralState.ACCEPTED: pb.DEFERRAL_STATE_ACCEPTED,
    DeferralState.REFUSED: pb.DEFERRAL_STATE_REFUSED,
}
LINE_KINDS = {
    LineKind.GRUNDAVGIFT: pb.BILL_LINE_KIND_BASE_FEE,
    LineKind.SAMTAL: pb.BILL_LINE_KIND_CALLS,
    LineKind.RATTELSE: pb.BILL_LINE_KIND_CORRECTION,
}
# The model's names of the inputs, as the request names them.
_INPUT_FIELDS = {
    "incomes": "incomes",
    "household.partner_incomes": "household.partner_incomes",
    "housing_cost_ore": "housing_cost",
    "special_housing.rent_ore": "special_housing.rent",
    "services.hemtjanst_hours": "services.hemtjanst_hours",
    "services.dagverksamhet_days_per_week": "services.dagverksamhet_days_per_week",
    "services.korttidsvard_days": "services.korttidsvard_days",
    "adjustment.amount_ore": "adjustment.amount",
    "adjustment.reason": "adjustment.reason",
}

Bad = Callable[[str, str], None]


def money(ore: int) -> common_pb2.Money:
    return common_pb2.Money(ore=ore)


def input_field(model_field: str | None, prefix: str = "inputs") -> str:
    """A field the model names, as the request names it."""
    if model_field is None:
        return "month"
    return f"{prefix}.{_INPUT_FIELDS.get(model_field, model_field)}"


def _amount(value: common_pb2.Money, path: str, bad: Bad, *, most: int, least: int = 0) -> int:
    ore = int(value.ore)
    if not least <= ore <= most:
        bad(path, f"must be {least / 100:,.0f} to {most / 100:,.0f} kr (given in öre), got {ore:,} öre")
        return 0
    return ore


def _incomes(items: Sequence[pb.Income], path: str, bad: Bad) -> dict[IncomeKind, int]:
    incomes: dict[IncomeKind, int] = {}
    for index, item in enumerate(items):
        where = f"{path}[{index}]"
        kind = INCOME_KINDS.get(item.kind)
        if kind is None:
            bad(f"{where}.kind", "is required: one of " + ", ".join(k.value for k in IncomeKind))
        elif kind in incomes:
            bad(f"{where}.kind", f"{kind.value} is given twice: one entry per kind of income")
        if not item.HasField("monthly"):
            bad(f"{where}.monthly", "is required: the month's income after tax, in öre")
            continue
        amount = _amount(item.monthly, f"{where}.monthly", bad, most=MAX_INCOME_ORE)
        if kind is not None and kind not in incomes:
            incomes[kind] = amount
    return incomes


def _household(message: pb.Household, prefix: str, bad: Bad) -> Household:
    if message.cohabiting:
        relation = RELATIONS.get(message.relation)
        if relation is None:
            bad(f"{prefix}.household.relation", f"{message.relation} is not a known relation")
            relation = Relation.MAKAR
        partner = _incomes(message.partner_incomes, f"{prefix}.household.partner_incomes", bad)
        return Cohabiting(partner_incomes=partner, relation=relation)
    if message.partner_incomes:
        bad(
            f"{prefix}.household.partner_incomes",
            "is only for a cohabiting household: set household.cohabiting",
        )
    if message.relation != pb.RELATION_UNSPECIFIED:
        bad(f"{prefix}.household.relation", "is only for a cohabiting household: set household.cohabiting")
    return Single()


def _hours(value: float, path: str, bad: Bad) -> Fraction:
    if not math.isfinite(value):
        bad(path, "must be a number of hours, not NaN or infinity")
        return Fraction(0)
    if not 0 <= value <= MAX_HOURS_PER_MONTH:
        bad(path, f"must be 0 to {MAX_HOURS_PER_MONTH} hours a month")
        return Fraction(0)
    hours = Fraction(value)
    if (hours * 4).denominator != 1:
        bad(path, "is given in steps of a quarter of an hour (e.g. 12.25)")
        return Fraction(0)
    return hours


def fee_inputs_from(message: pb.FeeInputs, month: date, *, prefix: str = "inputs") -> FeeInputs:
    """The inputs of a what-if; InvalidArgument naming every field that is wrong, with its path."""
    violations: list[FieldViolation] = []

    def bad(path: str, description: str) -> None:
        violations.append(FieldViolation(path, description))

    incomes = _incomes(message.incomes, f"{prefix}.incomes", bad)
    household = _household(message.household, prefix, bad)
    housing = _amount(message.housing_cost, f"{prefix}.housing_cost", bad, most=MAX_HOUSING_ORE)
    given = message.services
    where = f"{prefix}.services"
    hours = _hours(given.hemtjanst_hours, f"{where}.hemtjanst_hours", bad)
    day_activities = given.dagverksamhet_days_per_week
    if not 0 <= day_activities <= 7:
        bad(f"{where}.dagverksamhet_days_per_week", "must be 0 to 7 days a week")
        day_activities = 0
    month_days = calendar.monthrange(month.year, month.month)[1]
    short_days = given.korttidsvard_days
    if not 0 <= short_days <= month_days:
        bad(f"{where}.korttidsvard_days", f"must be 0 to {month_days}, the days of {month:%Y-%m}")
        short_days = 0
    special = None
    if message.HasField("special_housing"):
        if not message.special_housing.HasField("rent"):
            bad(f"{prefix}.special_housing.rent", "is required: the month's rent for the home")
        rent = _amount(
            message.special_housing.rent, f"{prefix}.special_housing.rent", bad, most=MAX_HOUSING_ORE
        )
        special = SpecialHousing(rent_ore=rent, under_tenancy_act=message.special_housing.under_tenancy_act)
        if housing:
            bad(
                f"{prefix}.housing_cost",
                "in special housing the rent is the housing cost: give it as special_housing.rent only",
            )
    adjustment = None
    if message.HasField("adjustment"):
        amount = _amount(
            message.adjustment.amount,
            f"{prefix}.adjustment.amount",
            bad,
            most=MAX_ADJUSTMENT_ORE,
            least=-MAX_ADJUSTMENT_ORE,
        )
        reason = message.adjustment.reason.strip()
        if len(message.adjustment.reason) > MAX_ADJUSTMENT_REASON:
            bad(f"{prefix}.adjustment.reason", f"must be at most {MAX_ADJUSTMENT_REASON} characters")
        elif amount and not reason:
            bad(f"{prefix}.adjustment.reason", "is required: say why the minimibelopp is raised or cut")
        if amount:
            adjustment = MinimumAdjustment(amount_ore=amount, reason=reason)
    if violations:
        raise InvalidArgument(violations)
    return FeeInputs(
        household=household,
        incomes=incomes,
        housing_cost_ore=housing,
        services=Services(
            hemtjanst_hours=hours,
            trygghetslarm=given.trygghetslarm,
            dagverksamhet_days_per_week=day_activities,
            matdistribution=given.matdistribution,
            korttidsvard_days=short_days,
        ),
        special_housing=special,
        adjustment=adjustment,
    )


def _income_messages(incomes: Mapping[IncomeKind, int]) -> list[pb.Income]:
    return [pb.Income(kind=INCOME_NUMBERS[kind], monthly=money(ore)) for kind, ore in incomes.items()]


def inputs_message(inputs: FeeInputs) -> pb.FeeInputs:
    """The inputs a calculation was given, as the contract writes them."""
    household = inputs.household
    message = pb.FeeInputs(
        incomes=_income_messages(inputs.incomes),
        housing_cost=money(inputs.housing_cost_ore),
        services=pb.ServicesReceived(
            hemtjanst_hours=float(Fraction(inputs.services.hemtjanst_hours)),
            trygghetslarm=inputs.services.trygghetslarm,
            dagverksamhet_days_per_week=inputs.services.dagverksamhet_days_per_week,
            matdistribution=inputs.services.matdistribution,
            korttidsvard_days=inputs.services.korttidsvard_days,
        ),
    )
    if isinstance(household, Cohabiting):
        message.household.CopyFrom(
            pb.Household(
                cohabiting=True,
                relation=pb.RELATION_SPOUSES if household.relation is Relation.MAKAR else pb.RELATION_SAMBOR,
                partner_incomes=_income_messages(household.partner_incomes),
            )
        )
    else:
        message.household.CopyFrom(pb.Household(cohabiting=False))
    if inputs.special_housing is not None:
        message.special_housing.CopyFrom(
            pb.SpecialHousing(
                rent=money(inputs.special_housing.rent_ore),
                under_tenancy_act=inputs.special_housing.under_tenancy_act,
            )
        )
    if inputs.adjustment is not None:
        message.adjustment.CopyFrom(
            pb.MinimumAdjustment(amount=money(inputs.adjustment.amount_ore), reason=inputs.adjustment.reason)
        )
    return message


def care_fee_message(calculation: FeeCalculation) -> pb.CareFee:
    message = pb.CareFee(
        month=f"{calculation.month:%Y-%m}",
        prisbasbelopp=money(calculation.prisbasbelopp_ore),
        avgiftsunderlag=money(calculation.avgiftsunderlag_ore),
        minimibelopp=money(calculation.minimibelopp_ore),
        adjustment=money(calculation.adjustment_ore),
        housing_cost=money(calculation.housing_cost_ore),
        forbehallsbelopp=money(calculation.forbehallsbelopp_ore),
        avgiftsutrymme=money(calculation.avgiftsutrymme_ore),
        maxtaxa=money(calculation.maxtaxa_ore),
        lines=[
            pb.FeeLine(
                service=line.service.value,
                description=line.description,
                tariff=money(line.tariff_ore),
                fee=money(line.fee_ore),
                within_maxtaxa=line.within_maxtaxa,
            )
            for line in calculation.lines
        ],
        care_total=money(calculation.care_total_ore),
        housing_fee=money(calculation.housing_fee_ore),
        total=money(calculation.total_ore),
        explanation=[
            pb.ExplanationLine(text=line.text, citation=line.citation, example=line.example)
            for line in calculation.explanation
        ],
        uses_example_figures=any(line.example for line in calculation.explanation),
    )
    if calculation.rent_cap_ore is not None:
        message.rent_cap.CopyFrom(money(calculation.rent_cap_ore))
    return message


def parameter_message(listed: ListedParameter) -> pb.FeeParameter:
    return pb.FeeParameter(
        name=listed.name,
        description=listed.description,
        value=listed.value,
        valid_from=date_message(listed.valid_from),
        citation=listed.citation,
        source=listed.source,
        example=listed.example,
    )


def deferral_message(deferral: Deferral) -> pb.Deferral:
    return pb.Deferral(
        name=deferral.name,
        invoice=f"invoices/{deferral.invoice_number}",
        days=deferral.days,
        reason=deferral.reason,
        case=deferral.case,
        state=DEFERRAL_STATES[deferral.state],
        refusal_reason=deferral.refusal_reason,
        original_due_date=date_message(deferral.original_due_date),
        new_due_date=date_message(deferral.new_due_date),
        requested_by=deferral.requested_by,
        create_time=timestamp(deferral.create_time),
        update_time=timestamp(deferral.update_time),
        amount=money(deferral.amount_ore),
    )


def bill_message(issued: IssuedBill) -> pb.Bill:
    bill = issued.bill
    lines = []
    for line in bill.lines:
        entry = pb.BillLine(
            payer=payer_name(line.payer),
            kind=LINE_KINDS[line.kind],
            text=line.text,
            amount=money(line.amount_ore),
            refers_to_month=f"{line.refers_to:%Y-%m}",
            quantity=line.quantity or 0,
        )
        if line.unit_price_ore is not None:
            entry.unit_price.CopyFrom(money(line.unit_price_ore))
        lines.append(entry)
    return pb.Bill(
        name=issued.name,
        month=f"{bill.month:%Y-%m}",
        lines=lines,
        totals=[pb.PayerTotal(payer=payer_name(p), total=money(t)) for p, t in bill.totals.items()],
        base_fee=money(bill.base_fee_ore),
        total=money(bill.total_ore),
        issue_time=timestamp(issued.issue_time),
        issued_by=issued.issued_by,
        uses_example_figures=issued.uses_example_figures,
        unattributed_contacts=issued.unattributed_contacts,
    )
