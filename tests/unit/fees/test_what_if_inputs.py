"""The inputs of a what-if, as an agent types them on the phone: every field checked, every wrong one named
with its path in the request, and nothing NaN, infinite or absurd let through to the arithmetic."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest
from aldredirekt.common.v1.common_pb2 import Money
from aldredirekt.fees.v1 import fees_pb2 as pb

from services.common.errors import InvalidArgument
from services.fees.api.mapping import fee_inputs_from, input_field, inputs_message
from services.fees.model import Cohabiting, IncomeKind, Relation, Single, SpecialHousing

FEBRUARY = date(2026, 2, 1)


def pension(ore: int, kind: pb.IncomeKind.ValueType = pb.INCOME_KIND_PENSION) -> pb.Income:
    return pb.Income(kind=kind, monthly=Money(ore=ore))


def fields(message: pb.FeeInputs, month: date = FEBRUARY) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        fee_inputs_from(message, month)
    return [v.field for v in caught.value.violations]


def test_good_inputs_become_the_models_inputs():
    inputs = fee_inputs_from(
        pb.FeeInputs(
            household=pb.Household(
                cohabiting=True, relation=pb.RELATION_SAMBOR, partner_incomes=[pension(900_000)]
            ),
            incomes=[pension(1_500_000), pension(200_000, pb.INCOME_KIND_BOSTADSTILLAGG)],
            housing_cost=Money(ore=500_000),
            services=pb.ServicesReceived(hemtjanst_hours=12.25, trygghetslarm=True, korttidsvard_days=28),
            adjustment=pb.MinimumAdjustment(amount=Money(ore=-20_000), reason="maten ingår i boendet"),
        ),
        FEBRUARY,
    )
    assert inputs.household == Cohabiting({IncomeKind.PENSION: 900_000}, Relation.SAMBOR)
    assert inputs.incomes == {IncomeKind.PENSION: 1_500_000, IncomeKind.BOSTADSTILLAGG: 200_000}
    assert inputs.services.hemtjanst_hours == Fraction(49, 4)
    assert inputs.services.korttidsvard_days == 28
    assert inputs.adjustment is not None
    assert inputs.adjustment.amount_ore == -20_000


def test_a_cohabiting_household_without_a_relation_is_taken_for_spouses_and_nothing_is_a_single_person():
    assert fee_inputs_from(pb.FeeInputs(household=pb.Household(cohabiting=True)), FEBRUARY).household == (
        Cohabiting({}, Relation.MAKAR)
    )
    assert fee_inputs_from(pb.FeeInputs(), FEBRUARY).household == Single()


def test_every_wrong_income_is_named_with_its_index():
    assert fields(
        pb.FeeInputs(
            incomes=[
                pension(100),
                pension(5, pb.INCOME_KIND_UNSPECIFIED),
                pension(7),
                pension(-1, pb.INCOME_KIND_KAPITAL),
                pb.Income(kind=pb.INCOME_KIND_OVRIGT),
                pension(2**62, pb.INCOME_KIND_TJANSTEPENSION),
                pension(1, pb.IncomeKind.ValueType(99)),
            ]
        )
    ) == [
        "inputs.incomes[1].kind",
        "inputs.incomes[2].kind",
        "inputs.incomes[3].monthly",
        "inputs.incomes[4].monthly",
        "inputs.incomes[5].monthly",
        "inputs.incomes[6].kind",
    ]


def test_services_out_of_their_range_are_named():
    for hours in (float("nan"), float("inf"), -1.0, 745.0, 1e300, 10.1):
        assert fields(pb.FeeInputs(services=pb.ServicesReceived(hemtjanst_hours=hours))) == [
            "inputs.services.hemtjanst_hours"
        ], hours
    assert fields(
        pb.FeeInputs(services=pb.ServicesReceived(dagverksamhet_days_per_week=8, korttidsvard_days=29))
    ) == ["inputs.services.dagverksamhet_days_per_week", "inputs.services.korttidsvard_days"]
    # 29 days fit in a leap February, 31 in March.
    assert (
        fee_inputs_from(
            pb.FeeInputs(services=pb.ServicesReceived(korttidsvard_days=31)), date(2026, 3, 1)
        ).services.korttidsvard_days
        == 31
    )


def test_a_partner_or_relation_without_cohabiting_is_named():
    assert fields(
        pb.FeeInputs(household=pb.Household(relation=pb.RELATION_SAMBOR, partner_incomes=[pension(1)]))
    ) == ["inputs.household.partner_incomes", "inputs.household.relation"]
    assert fields(
        pb.FeeInputs(household=pb.Household(cohabiting=True, relation=pb.Relation.ValueType(7)))
    ) == ["inputs.household.relation"]
    assert fields(
        pb.FeeInputs(household=pb.Household(cohabiting=True, partner_incomes=[pension(1), pension(2)]))
    ) == ["inputs.household.partner_incomes[1].kind"]


def test_housing_and_special_housing_are_checked():
    assert fields(pb.FeeInputs(housing_cost=Money(ore=-1))) == ["inputs.housing_cost"]
    assert fields(pb.FeeInputs(housing_cost=Money(ore=10**15))) == ["inputs.housing_cost"]
    assert fields(
        pb.FeeInputs(housing_cost=Money(ore=100), special_housing=pb.SpecialHousing(rent=Money(ore=600_000)))
    ) == ["inputs.housing_cost"]
    assert fields(pb.FeeInputs(special_housing=pb.SpecialHousing())) == ["inputs.special_housing.rent"]
    home = fee_inputs_from(
        pb.FeeInputs(special_housing=pb.SpecialHousing(rent=Money(ore=600_000), under_tenancy_act=True)),
        FEBRUARY,
    )
    assert home.special_housing == SpecialHousing(600_000, under_tenancy_act=True)


def test_an_adjustment_needs_its_reason_and_a_sane_amount():
    assert fields(pb.FeeInputs(adjustment=pb.MinimumAdjustment(amount=Money(ore=5_000)))) == [
        "inputs.adjustment.reason"
    ]
    assert fields(
        pb.FeeInputs(adjustment=pb.MinimumAdjustment(amount=Money(ore=5_000), reason="x" * 501))
    ) == ["inputs.adjustment.reason"]
    assert fields(
        pb.FeeInputs(adjustment=pb.MinimumAdjustment(amount=Money(ore=-(10**12)), reason="god man"))
    ) == ["inputs.adjustment.amount"]
    # An adjustment of nothing is no adjustment.
    assert fee_inputs_from(pb.FeeInputs(adjustment=pb.MinimumAdjustment()), FEBRUARY).adjustment is None


def test_the_models_own_refusals_are_named_as_the_request_names_the_field():
    assert input_field("adjustment.amount_ore") == "inputs.adjustment.amount"
    assert input_field("household.partner_incomes") == "inputs.household.partner_incomes"
    assert input_field("services.korttidsvard_days") == "inputs.services.korttidsvard_days"
    assert input_field(None) == "month"


def test_the_inputs_shown_with_a_fee_are_the_inputs_given():
    given = pb.FeeInputs(
        household=pb.Household(
            cohabiting=True, relation=pb.RELATION_SPOUSES, partner_incomes=[pension(700_000)]
        ),
        incomes=[pension(1_100_000)],
        housing_cost=Money(ore=450_000),
        services=pb.ServicesReceived(
            hemtjanst_hours=6.5, dagverksamhet_days_per_week=2, matdistribution=True
        ),
    )
    assert inputs_message(fee_inputs_from(given, FEBRUARY)) == given
