"""The contact center's bill: the base fee split exactly to the öre over months and payers, calls at the
month's fee, and later changes to a billed month's counts carried to the next bill."""

from __future__ import annotations

from collections import Counter
from datetime import date
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.fees.model import (
    BillingError,
    CountRevision,
    LineKind,
    ParameterError,
    Parameters,
    bill_for_month,
    compose_bill,
    largest_remainder,
    month_base_fee,
    revision_at,
)
from synthcity.city import DISTRICTS

DISTRICT_IDS = [d.district_id for d in DISTRICTS]
PAYERS = [*DISTRICT_IDS, "aldrenamnden"]
EVEN_KEY = {payer: Fraction(1, 12) for payer in PAYERS}


@st.composite
def allocation_keys(draw: st.DrawFn) -> dict[str, Fraction]:
    weights = draw(st.lists(st.integers(0, 10_000), min_size=len(PAYERS), max_size=len(PAYERS)))
    if not any(weights):
        weights[0] = 1
    total = sum(weights)
    return {payer: Fraction(weight, total) for payer, weight in zip(PAYERS, weights, strict=True)}


calls_per_district = st.dictionaries(st.sampled_from(DISTRICT_IDS), st.integers(0, 20_000))


# ---- largest remainder -------------------------------------------------------------------------------------


def test_largest_remainder_gives_the_left_over_units_to_the_largest_remainders():
    # Quotas 3.5, 2.25 and 4.25 of 10: floors 3, 2, 4 leave one unit, for the .5.
    weights = {"a": Fraction(35, 100), "b": Fraction(225, 1000), "c": Fraction(425, 1000)}
    assert largest_remainder(10, weights) == {
        "a": 4,
        "b": 2,
        "c": 4,
    }


def test_equal_remainders_are_served_in_the_order_given():
    assert largest_remainder(2, {"x": 1, "y": 1, "z": 1}) == {"x": 1, "y": 1, "z": 0}
    assert largest_remainder(2, {"z": 1, "y": 1, "x": 1}) == {"z": 1, "y": 1, "x": 0}


def test_largest_remainder_refuses_what_cannot_be_split():
    with pytest.raises(BillingError):
        largest_remainder(-1, {"a": 1})
    with pytest.raises(BillingError):
        largest_remainder(10, {"a": 0, "b": 0})
    with pytest.raises(BillingError):
        largest_remainder(10, {"a": -1, "b": 2})


@settings(max_examples=300)
@given(
    st.integers(0, 10**12),
    st.dictionaries(st.text(min_size=1, max_size=3), st.integers(0, 10**6), min_size=1),
)
def test_largest_remainder_adds_up_exactly_and_stays_within_one_of_each_quota(
    total: int, weights: dict[str, int]
):
    if not any(weights.values()):
        weights[next(iter(weights))] = 1
    parts = largest_remainder(total, weights)
    whole = sum(weights.values())

    assert sum(parts.values()) == total
    assert set(parts) == set(weights)
    for key, part in parts.items():
        quota = Fraction(total * weights[key], whole)
        assert quota - 1 < part < quota + 1
        assert part >= 0
    # A larger weight never gets fewer units than a smaller one.
    ordered = sorted(weights, key=weights.__getitem__)
    assert all(parts[a] <= parts[b] for a, b in pairwise(ordered) if weights[a] < weights[b])


# ---- the base fee over months ----------------------------------------------------------------------------


def test_2022s_base_fee_is_split_over_twelve_months_to_the_ore():
    # 8 825 000 kr = 882 500 000 öre = 12 × 73 541 666 + 8: the first eight months carry the extra öre.
    months = [month_base_fee(882_500_000, m) for m in range(1, 13)]
    assert months == [73_541_667] * 8 + [73_541_666] * 4
    assert sum(months) == 882_500_000


def test_a_month_outside_1_to_12_is_refused():
    with pytest.raises(BillingError):
        month_base_fee(100, 13)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**11), allocation_keys(), calls_per_district, st.integers(0, 20_000))
def test_a_years_bills_add_up_to_the_years_base_fee_exactly(
    year_fee: int, key: dict[str, Fraction], calls: dict[str, int], per_call: int
):
    bills = [
        compose_bill(
            month=date(2025, m, 1),
            year_base_fee_ore=year_fee,
            shares=key,
            per_call_fee_ore=per_call,
            calls=calls,
        )
        for m in range(1, 13)
    ]
    base_by_month = [
        sum(line.amount_ore for line in b.lines if line.kind is LineKind.GRUNDAVGIFT) for b in bills
    ]
    assert base_by_month == [b.base_fee_ore for b in bills]
    assert sum(base_by_month) == year_fee

    for bill in bills:
        base = {line.payer: line.amount_ore for line in bill.lines if line.kind is LineKind.GRUNDAVGIFT}
        assert set(base) == set(PAYERS)
        for payer, amount in base.items():
            assert abs(amount - bill.base_fee_ore * key[payer]) < 1
        calls_billed = sum(line.amount_ore for line in bill.lines if line.kind is LineKind.SAMTAL)
        assert calls_billed == per_call * sum(calls.values())
        assert bill.total_ore == bill.base_fee_ore + calls_billed
        assert bill.total_ore == sum(line.amount_ore for line in bill.lines)


# ---- calls and corrections ---------------------------------------------------------------------------------


def test_calls_are_billed_to_the_districts_beställarenhet_at_the_months_fee():
    bill = compose_bill(
        month=date(2022, 5, 1),
        year_base_fee_ore=882_500_000,
        shares=EVEN_KEY,
        per_call_fee_ore=6_850,
        calls={"bromma": 1_000, "farsta": 0},
    )
    calls = [line for line in bill.lines if line.kind is LineKind.SAMTAL]
    assert [(line.payer, line.quantity, line.amount_ore) for line in calls] == [("bromma", 1_000, 6_850_000)]
    assert calls[0].text == "Samtal maj 2022: 1000 à 68,50 kr"


@pytest.mark.parametrize(
    ("calls", "problem"),
    [
        ({"aldrenamnden": 3}, "no beställarenhet"),
        ({"östermalm": 3}, "not a payer"),
        ({"bromma": -1}, "a whole number"),
        ({"bromma": 2.5}, "a whole number"),
    ],
)
def test_calls_that_cannot_be_billed_are_refused(calls: dict[str, int], problem: str):
    with pytest.raises(BillingError, match=problem):
        compose_bill(
            month=date(2025, 1, 1),
            year_base_fee_ore=1_200,
            shares=EVEN_KEY,
            per_call_fee_ore=100,
            calls=calls,
        )


def test_a_later_change_to_a_billed_months_counts_goes_on_the_next_bill_at_that_months_fee():
    revision = CountRevision(
        month=date(2022, 3, 1),
        per_call_fee_ore=6_850,
        issued={"bromma": 100, "farsta": 40, "skarpnack": 7},
        revised={"bromma": 105, "farsta": 38, "skarpnack": 7},
    )
    bill = compose_bill(
        month=date(2022, 4, 1),
        year_base_fee_ore=882_500_000,
        shares=EVEN_KEY,
        per_call_fee_ore=6_850,
        calls={},
        revisions=[revision],
    )
    corrections = [line for line in bill.lines if line.kind is LineKind.RATTELSE]

    assert [(line.payer, line.quantity, line.amount_ore) for line in corrections] == [
        ("bromma", 5, 34_250),
        ("farsta", -2, -13_700),
    ]
    assert all(line.refers_to == date(2022, 3, 1) for line in corrections)
    assert corrections[0].text == "Rättelse av samtal mars 2022: +5 à 68,50 kr"
    assert corrections[1].text == "Rättelse av samtal mars 2022: −2 à 68,50 kr"
    base = {line.payer: line.amount_ore for line in bill.lines if line.kind is LineKind.GRUNDAVGIFT}
    assert bill.totals["bromma"] == base["bromma"] + 34_250
    assert bill.totals["farsta"] == base["farsta"] - 13_700
    assert bill.totals["skarpnack"] == base["skarpnack"]


def test_a_correction_cannot_be_for_the_same_or_a_later_month():
    revision = CountRevision(month=date(2022, 4, 1), per_call_fee_ore=6_850, issued={}, revised={"bromma": 1})
    with pytest.raises(BillingError, match="later bill"):
        compose_bill(
            month=date(2022, 4, 1),
            year_base_fee_ore=0,
            shares=EVEN_KEY,
            per_call_fee_ore=0,
            calls={},
            revisions=[revision],
        )


@settings(max_examples=200, deadline=None)
@given(calls_per_district, calls_per_district, st.integers(0, 20_000))
def test_correcting_a_month_bills_exactly_what_billing_the_revised_counts_would_have(
    issued: dict[str, int], revised: dict[str, int], fee: int
):
    revision = CountRevision(month=date(2025, 1, 1), per_call_fee_ore=fee, issued=issued, revised=revised)
    bill = compose_bill(
        month=date(2025, 2, 1),
        year_base_fee_ore=0,
        shares=EVEN_KEY,
        per_call_fee_ore=fee,
        calls={},
        revisions=[revision],
    )
    corrected = Counter(
        {line.payer: line.amount_ore for line in bill.lines if line.kind is LineKind.RATTELSE}
    )
    for district in DISTRICT_IDS:
        assert corrected[district] == fee * (revised.get(district, 0) - issued.get(district, 0))


# ---- with the shipped parameters ---------------------------------------------------------------------------


def test_a_bill_with_the_shipped_parameters_uses_the_months_fees_and_key(shipped: Parameters):
    month = date(2025, 3, 1)
    revision = revision_at(shipped, date(2025, 1, 1), issued={"bromma": 10}, revised={"bromma": 12})
    bill = bill_for_month(shipped, month, calls={"bromma": 300, "jarva": 120}, revisions=[revision])

    year_fee = shipped.amount("kontaktcenter_grundavgift", month).value
    fee = shipped.amount("kontaktcenter_samtalsavgift", month).value
    assert bill.base_fee_ore == month_base_fee(year_fee, 3)
    assert set(bill.totals) == set(PAYERS)
    assert bill.total_ore == bill.base_fee_ore + 420 * fee + 2 * revision.per_call_fee_ore


def test_no_bill_can_be_made_before_the_eleven_district_key_applies(shipped: Parameters):
    with pytest.raises(ParameterError) as caught:
        bill_for_month(shipped, date(2022, 5, 1), calls={})
    assert caught.value.parameter == "fordelningsnyckel_aldreomsorg"
