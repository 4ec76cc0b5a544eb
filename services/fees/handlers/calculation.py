"""A person's care fee for a month, from what their district records; the same from explicit inputs; from
which month a change counts; the figures in force on a day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.common.auth import Caller
from services.common.errors import FailedPrecondition, PermissionDenied
from services.common.grants import read_purpose
from services.fees.handlers.fees import Fees, figures_in_force, log_read
from services.fees.model import ExplanationLine, FeeCalculation, FeeInputError, FeeInputs, calculate
from services.fees.model.basis import MappedInputs, inputs_for_month
from services.fees.model.changes import effective_month
from services.fees.model.listing import ListedParameter, parameters_in_force
from services.fees.model.money import format_month

# What a fee needs besides the fee basis: the services the person gets.
DECISIONS_SCOPE = "decisions"
FEES_SCOPE = "fees"


@dataclass(frozen=True)
class PersonFee:
    calculation: FeeCalculation
    mapped: MappedInputs


async def calculate_care_fee(
    *,
    fees: Fees,
    caller: Caller,
    grant_token: str | None,
    person_number: str,
    month: date | None,
    purpose: str,
) -> PersonFee:
    """The fee for `month` (the current one when None) from the person's fee basis and decisions, read
    through the mirror with the caller's grant passed on. The read is logged before the answer leaves."""
    grant = await fees.grants.require(
        grant_token, caller=caller, person_number=person_number, scope=FEES_SCOPE
    )
    if grant is not None and DECISIONS_SCOPE not in grant.scopes:
        raise PermissionDenied(
            "a fee is worked out from the decisions as well as the fee basis: the access grant covers fees "
            "but not decisions",
            reason="GRANT_SCOPE_MISSING",
            metadata={"scope": DECISIONS_SCOPE},
        )
    why = read_purpose(purpose, grant, caller)
    chosen = month or fees.current_month()
    with figures_in_force():
        # Asked first, so that a month without figures costs no read of the person.
        fees.parameters.amount("prisbasbelopp", chosen)
        under_act = fees.parameters.flag("sarskilt_boende_hyreslagen", chosen).value
    person = await fees.mirror.person_fees(
        caller, grant_token=grant_token, person_number=person_number, purpose=why
    )
    mapped = inputs_for_month(
        person, chosen, rent_under_tenancy_act=under_act, current_month=fees.current_month()
    )
    with figures_in_force():
        try:
            calculation = calculate(mapped.inputs, chosen, fees.parameters)
        except FeeInputError as unusable:
            raise FailedPrecondition(
                f"the fee basis of districts/{mapped.district_id} cannot make a fee: {unusable}",
                reason="FEE_BASIS_UNUSABLE",
                metadata={"district": f"districts/{mapped.district_id}"},
            ) from None
    await log_read(fees, caller, person_number, f"CalculateCareFee {chosen:%Y-%m}", why)
    return PersonFee(calculation, mapped)


def calculate_what_if(*, fees: Fees, inputs: FeeInputs, month: date | None) -> FeeCalculation:
    """The fee from explicit inputs; FeeInputError for inputs no month of a person has."""
    chosen = month or fees.current_month()
    with figures_in_force():
        return calculate(inputs, chosen, fees.parameters)


def effective_month_of(
    *, fees: Fees, change_date: date, covers_whole_month: bool
) -> tuple[date, ExplanationLine]:
    month = effective_month(change_date, covers_whole_month)
    with figures_in_force():
        rule = fees.parameters.citation("regel_andrade_forhallanden", change_date)
    why = (
        "den gäller hela den månaden"
        if covers_whole_month
        else "den gäller från månaden efter den inträffade"
    )
    text = (
        f"En ändring den {change_date.day} {format_month(change_date)} påverkar avgiften från och med "
        f"{format_month(month)}: {why}."
    )
    return month, ExplanationLine(text, rule.citation, rule.example)


def fee_parameters(*, fees: Fees, on: date | None) -> list[ListedParameter]:
    return parameters_in_force(fees.parameters, on or fees.today())
