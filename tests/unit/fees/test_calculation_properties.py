"""What holds for every person and month: no fee below zero, none above its cap or the avgiftsutrymme,
more income never means a lower fee, and spouses are treated alike."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from services.fees.model import (
    Cohabiting,
    FeeInputs,
    IncomeKind,
    MinimumAdjustment,
    Parameters,
    Relation,
    Services,
    Single,
    SpecialHousing,
    calculate,
)
from tests.unit.fees.conftest import law_with_test_tariff

LAW: Parameters = law_with_test_tariff()
KR = 100

months = st.builds(date, st.integers(2024, 2026), st.integers(1, 12), st.just(1))
amounts = st.integers(0, 60_000 * KR)
incomes = st.dictionaries(st.sampled_from(list(IncomeKind)), amounts, max_size=len(IncomeKind))
households = st.one_of(
    st.just(Single()),
    st.builds(Cohabiting, incomes, st.sampled_from(list(Relation))),
)
services = st.builds(
    Services,
    hemtjanst_hours=st.one_of(st.just(0), st.integers(1, 160), st.fractions(0, 160, max_denominator=4)),
    trygghetslarm=st.booleans(),
    dagverksamhet_days_per_week=st.integers(0, 7),
    matdistribution=st.booleans(),
    korttidsvard_days=st.integers(0, 28),
)
adjustments = st.one_of(
    st.none(),
    st.builds(MinimumAdjustment, st.integers(-2_000 * KR, 3_000 * KR), st.just("individuell prövning")),
)


@st.composite
def fee_inputs(draw: st.DrawFn) -> FeeInputs:
    in_special_housing = draw(st.booleans())
    return FeeInputs(
        household=draw(households),
        incomes=draw(incomes),
        housing_cost_ore=0 if in_special_housing else draw(st.integers(0, 15_000 * KR)),
        services=draw(services),
        special_housing=(
            draw(st.builds(SpecialHousing, st.integers(0, 6_000 * KR), st.booleans()))
            if in_special_housing
            else None
        ),
        adjustment=draw(adjustments),
    )


@settings(max_examples=300, deadline=None)
@given(fee_inputs(), months)
def test_no_fee_is_negative_or_above_its_cap_or_the_avgiftsutrymme(inputs: FeeInputs, month: date):
    result = calculate(inputs, month, LAW)

    assert all(0 <= line.fee_ore <= line.tariff_ore for line in result.lines)
    assert result.avgiftsutrymme_ore >= 0
    assert 0 <= result.care_total_ore <= result.maxtaxa_ore
    assert result.total_ore <= result.avgiftsutrymme_ore
    if result.rent_cap_ore is not None:
        assert 0 <= result.housing_fee_ore <= result.rent_cap_ore
    else:
        assert result.housing_fee_ore == 0

    # And the whole of it is exactly what the rules allow: nothing is lost between the lines.
    care_asked = sum(line.tariff_ore for line in result.lines if line.within_maxtaxa)
    rent_asked = sum(line.tariff_ore for line in result.lines if not line.within_maxtaxa)
    assert result.housing_fee_ore == min(rent_asked, result.avgiftsutrymme_ore)
    assert result.care_total_ore == min(
        care_asked, result.maxtaxa_ore, result.avgiftsutrymme_ore - result.housing_fee_ore
    )


@settings(max_examples=300, deadline=None)
@given(fee_inputs(), months, st.sampled_from(list(IncomeKind)), st.integers(1, 20_000 * KR), st.booleans())
def test_more_income_never_lowers_the_fee(
    inputs: FeeInputs, month: date, kind: IncomeKind, raise_ore: int, partners: bool
):
    before = calculate(inputs, month, LAW)
    if partners and isinstance(inputs.household, Cohabiting):
        theirs = dict(inputs.household.partner_incomes)
        theirs[kind] = theirs.get(kind, 0) + raise_ore
        richer = replace(inputs, household=replace(inputs.household, partner_incomes=theirs))
    else:
        mine = dict(inputs.incomes)
        mine[kind] = mine.get(kind, 0) + raise_ore
        richer = replace(inputs, incomes=mine)
    after = calculate(richer, month, LAW)

    assert after.avgiftsunderlag_ore >= before.avgiftsunderlag_ore
    assert after.total_ore >= before.total_ore
    assert all(a.fee_ore >= b.fee_ore for a, b in zip(after.lines, before.lines, strict=True))


@settings(max_examples=200, deadline=None)
@given(incomes, incomes, st.integers(0, 15_000 * KR), services, months)
def test_spouses_halving_is_symmetric(
    mine: dict[IncomeKind, int], theirs: dict[IncomeKind, int], housing: int, granted: Services, month: date
):
    me = FeeInputs(Cohabiting(theirs), mine, housing_cost_ore=housing, services=granted)
    partner = FeeInputs(Cohabiting(mine), theirs, housing_cost_ore=housing, services=granted)
    mine_result, theirs_result = calculate(me, month, LAW), calculate(partner, month, LAW)

    assert mine_result.avgiftsunderlag_ore == theirs_result.avgiftsunderlag_ore
    assert mine_result.avgiftsunderlag_ore == (sum(mine.values()) + sum(theirs.values())) // 2
    assert mine_result.total_ore == theirs_result.total_ore
    assert mine_result.lines == theirs_result.lines


@settings(max_examples=200, deadline=None)
@given(fee_inputs(), months, st.integers(1, 5_000 * KR))
def test_a_higher_housing_cost_never_raises_the_fee(inputs: FeeInputs, month: date, extra: int):
    if inputs.special_housing is not None:
        return
    cheaper = calculate(inputs, month, LAW)
    dearer = calculate(replace(inputs, housing_cost_ore=inputs.housing_cost_ore + extra), month, LAW)
    assert dearer.total_ore <= cheaper.total_ore
