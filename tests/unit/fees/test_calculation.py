"""A month's fee, worked through by hand: every golden case states its arithmetic in kronor. The
national figures are the real ones; the tariff is the round-number test tariff of conftest.py."""

from __future__ import annotations

from datetime import date

import pytest

from services.fees.model import (
    Cohabiting,
    FeeCalculation,
    FeeInputError,
    FeeInputs,
    IncomeKind,
    MinimumAdjustment,
    ParameterError,
    Parameters,
    Relation,
    Service,
    Services,
    Single,
    SpecialHousing,
    calculate,
    load_parameters,
)
from services.fees.model.parameters import default_parameters_folder

KR = 100
MARCH_2025 = date(2025, 3, 1)


def single(pension_kr: int, housing_kr: int = 0, **services: object) -> FeeInputs:
    return FeeInputs(
        household=Single(),
        incomes={IncomeKind.PENSION: pension_kr * KR},
        housing_cost_ore=housing_kr * KR,
        services=Services(**services),  # type: ignore[arg-type]
    )


def fees(result: FeeCalculation) -> dict[Service, int]:
    return {line.service: line.fee_ore for line in result.lines}


def said(result: FeeCalculation) -> str:
    return "\n".join(line.text for line in result.explanation)


def cited(result: FeeCalculation) -> list[str]:
    return [line.citation for line in result.explanation]


# ---- golden cases ------------------------------------------------------------------------------------------


def test_a_single_pensioner_pays_the_tariff_when_the_avgiftsutrymme_covers_it(law: Parameters):
    inputs = FeeInputs(
        household=Single(),
        incomes={IncomeKind.PENSION: 16_000 * KR, IncomeKind.BOSTADSTILLAGG: 1_500 * KR},
        housing_cost_ore=6_000 * KR,
        services=Services(hemtjanst_hours=12, trygghetslarm=True),
    )
    result = calculate(inputs, MARCH_2025, law)

    # 16 000 + 1 500 = 17 500; minimibelopp 1.4789 × 58 800 / 12 = 7 246.61 → 7 247; + 6 000 = 13 247;
    # utrymme 17 500 − 13 247 = 4 253; hemtjänst 12 h → 1 500, larm 200: 1 700 in all.
    assert result.avgiftsunderlag_ore == 17_500 * KR
    assert result.minimibelopp_ore == 7_247 * KR
    assert result.forbehallsbelopp_ore == 13_247 * KR
    assert result.avgiftsutrymme_ore == 4_253 * KR
    assert result.maxtaxa_ore == 2_642 * KR
    assert fees(result) == {Service.HEMTJANST: 1_500 * KR, Service.TRYGGHETSLARM: 200 * KR}
    assert result.total_ore == result.care_total_ore == 1_700 * KR
    assert "bostadstillägg 1 500 kr" in said(result)
    assert "Din avgift för mars 2025 blir 1 700 kr." in said(result)


def test_an_income_below_the_forbehallsbelopp_means_no_fee(law: Parameters):
    result = calculate(
        single(12_000, housing_kr=6_000, hemtjanst_hours=30, trygghetslarm=True), MARCH_2025, law
    )

    # 12 000 − (7 247 + 6 000) is negative: the utrymme is 0, and so is every fee.
    assert result.avgiftsutrymme_ore == 0
    assert result.total_ore == 0
    assert all(line.fee_ore == 0 for line in result.lines)
    assert [line.tariff_ore for line in result.lines] == [200_000, 20_000]
    assert "avgiftsutrymmet är 0 kr och du betalar ingen avgift" in said(result)


def test_the_fees_are_capped_by_the_maxtaxa(law: Parameters):
    result = calculate(
        single(
            35_000, housing_kr=7_000, hemtjanst_hours=30, dagverksamhet_days_per_week=2, trygghetslarm=True
        ),
        MARCH_2025,
        law,
    )

    # utrymme 35 000 − 14 247 = 20 753; tariffs 2 000 + 800 + 200 = 3 000 > maxtaxa 2 642.
    assert result.avgiftsutrymme_ore == 20_753 * KR
    assert fees(result) == {
        Service.HEMTJANST: 2_000 * KR,
        Service.DAGVERKSAMHET: 642 * KR,
        Service.TRYGGHETSLARM: 0,
    }
    assert result.total_ore == 2_642 * KR
    assert "för maxtaxan lämnar bara 642 kr" in said(result)


def test_a_small_avgiftsutrymme_is_all_that_is_taken(law: Parameters):
    # 16 247 − (7 247 + 8 000) leaves exactly 1 000 kr; hemtjänst asks 1 500 kr.
    result = calculate(single(16_247, housing_kr=8_000, hemtjanst_hours=12), MARCH_2025, law)
    assert result.avgiftsutrymme_ore == 1_000 * KR
    assert result.total_ore == 1_000 * KR
    assert "för bara 1 000 kr av avgiftsutrymmet återstår" in said(result)


def test_spouses_each_count_half_of_their_combined_income(law: Parameters):
    me = FeeInputs(
        household=Cohabiting({IncomeKind.PENSION: 10_000 * KR}),
        incomes={IncomeKind.PENSION: 20_000 * KR},
        housing_cost_ore=8_000 * KR,
        services=Services(hemtjanst_hours=6),
    )
    result = calculate(me, MARCH_2025, law)

    # (20 000 + 10 000) / 2 = 15 000; minimibelopp 1.2066 × 58 800 / 12 = 5 912.34 → 5 912;
    # half the housing 4 000; förbehåll 9 912; utrymme 5 088; hemtjänst 6 h → 1 000.
    assert result.avgiftsunderlag_ore == 15_000 * KR
    assert result.minimibelopp_ore == 5_912 * KR
    assert result.housing_cost_ore == 4_000 * KR
    assert result.avgiftsutrymme_ore == 5_088 * KR
    assert result.total_ore == 1_000 * KR
    assert "SoL (2001:453) 8 kap. 4 § tredje stycket" in cited(result)

    partner = FeeInputs(
        household=Cohabiting({IncomeKind.PENSION: 20_000 * KR}),
        incomes={IncomeKind.PENSION: 10_000 * KR},
        housing_cost_ore=8_000 * KR,
        services=Services(hemtjanst_hours=6),
    )
    assert calculate(partner, MARCH_2025, law).avgiftsunderlag_ore == 15_000 * KR


def test_sambor_keep_their_own_income_but_have_the_cohabiting_minimibelopp(law: Parameters):
    me = FeeInputs(
        household=Cohabiting({IncomeKind.PENSION: 10_000 * KR}, relation=Relation.SAMBOR),
        incomes={IncomeKind.PENSION: 20_000 * KR},
        housing_cost_ore=8_000 * KR,
    )
    result = calculate(me, MARCH_2025, law)
    assert result.avgiftsunderlag_ore == 20_000 * KR
    assert result.avgiftsutrymme_ore == (20_000 - 5_912 - 4_000) * KR
    assert "lagen delar bara makars inkomster" in said(result)


def test_the_rent_in_special_housing_outside_the_tenancy_act_is_capped_and_not_in_the_maxtaxa(
    law: Parameters,
):
    inputs = FeeInputs(
        household=Single(),
        incomes={IncomeKind.PENSION: 25_000 * KR},
        special_housing=SpecialHousing(rent_ore=3_500 * KR),
    )
    result = calculate(inputs, MARCH_2025, law)

    # Rent cap 0.5539 × 58 800 / 12 = 2 714.11 → 2 714. No förbehåll for it: förbehåll = 7 247 only,
    # utrymme 17 753. Rent 2 714, then care 2 800 capped at the maxtaxa 2 642: 5 356 in all.
    assert result.rent_cap_ore == 2_714 * KR
    assert result.housing_cost_ore == 0
    assert result.forbehallsbelopp_ore == 7_247 * KR
    assert result.housing_fee_ore == 2_714 * KR
    assert fees(result) == {Service.BOENDEAVGIFT: 2_714 * KR, Service.SARSKILT_BOENDE: 2_642 * KR}
    assert result.care_total_ore == 2_642 * KR
    assert result.total_ore == 5_356 * KR
    assert "taket sänker den till 2 714 kr" in said(result)
    assert "SoL (2001:453) 8 kap. 5 § p. 2" in cited(result)


def test_a_low_income_in_special_housing_pays_the_rent_from_the_avgiftsutrymme_first(law: Parameters):
    inputs = FeeInputs(
        household=Single(),
        incomes={IncomeKind.PENSION: 9_000 * KR},
        special_housing=SpecialHousing(rent_ore=3_000 * KR),
    )
    result = calculate(inputs, MARCH_2025, law)
    # utrymme 9 000 − 7 247 = 1 753: all of it goes to the housing fee, nothing to care.
    assert fees(result) == {Service.BOENDEAVGIFT: 1_753 * KR, Service.SARSKILT_BOENDE: 0}
    assert result.total_ore == 1_753 * KR


def test_rent_under_the_tenancy_act_is_a_housing_cost_without_a_cap(law: Parameters):
    inputs = FeeInputs(
        household=Single(),
        incomes={IncomeKind.PENSION: 25_000 * KR},
        special_housing=SpecialHousing(rent_ore=3_500 * KR, under_tenancy_act=True),
    )
    result = calculate(inputs, MARCH_2025, law)
    assert result.rent_cap_ore is None
    assert result.housing_cost_ore == 3_500 * KR
    assert result.avgiftsutrymme_ore == (25_000 - 7_247 - 3_500) * KR
    assert result.housing_fee_ore == 0
    assert result.total_ore == 2_642 * KR


def test_an_individual_raise_of_the_minimibelopp_lowers_the_fee_and_is_explained(law: Parameters):
    inputs = FeeInputs(
        household=Single(),
        incomes={IncomeKind.PENSION: 15_247 * KR},
        housing_cost_ore=6_000 * KR,
        services=Services(hemtjanst_hours=12),
        adjustment=MinimumAdjustment(500 * KR, "fördyrad kost på grund av sjukdom"),
    )
    result = calculate(inputs, date(2025, 9, 1), law)

    # utrymme without the raise 15 247 − 13 247 = 2 000; with it 1 500.
    assert result.adjustment_ore == 500 * KR
    assert result.forbehallsbelopp_ore == 13_747 * KR
    assert result.total_ore == 1_500 * KR
    line = next(line for line in result.explanation if "höjs med 500 kr" in line.text)
    assert "fördyrad kost på grund av sjukdom" in line.text
    assert line.citation == "SoL (2025:400) 32 kap. 9 §"


def test_an_individual_cut_of_the_minimibelopp_raises_the_utrymme(law: Parameters):
    inputs = FeeInputs(
        household=Single(),
        incomes={IncomeKind.PENSION: 13_000 * KR},
        housing_cost_ore=6_000 * KR,
        services=Services(hemtjanst_hours=12),
        adjustment=MinimumAdjustment(-600 * KR, "hushållsel ingår i hyran"),
    )
    result = calculate(inputs, date(2025, 6, 1), law)
    assert result.avgiftsutrymme_ore == (13_000 - 6_647 - 6_000) * KR
    assert "sänks med 600 kr till 6 647 kr" in said(result)
    assert "SoL (2001:453) 8 kap. 8 §" in cited(result)


def test_the_citations_switch_to_the_new_act_on_1_july_2025_and_the_fee_does_not(law: Parameters):
    inputs = single(30_000, housing_kr=6_000, hemtjanst_hours=30, trygghetslarm=True)
    june = calculate(inputs, date(2025, 6, 1), law)
    july = calculate(inputs, date(2025, 7, 1), law)

    assert june.total_ore == july.total_ore == 2_200 * KR
    assert "SoL (2001:453) 8 kap. 5 § p. 1" in cited(june)
    assert "SoL (2025:400) 32 kap. 6 § p. 1" in cited(july)
    assert "SoL (2001:453) 8 kap. 7 § andra stycket p. 1" in cited(june)
    assert "SoL (2025:400) 32 kap. 8 § p. 1" in cited(july)
    assert not any("2001:453" in citation for citation in cited(july))


def test_2024_uses_2024s_prisbasbelopp(law: Parameters):
    result = calculate(single(40_000, hemtjanst_hours=60), date(2024, 11, 1), law)
    assert result.prisbasbelopp_ore == 5_730_000
    assert result.maxtaxa_ore == 2_575 * KR
    assert result.minimibelopp_ore == 7_062 * KR
    assert result.total_ore == 2_575 * KR


def test_short_term_care_is_charged_by_the_day(law: Parameters):
    result = calculate(single(30_000, korttidsvard_days=10), MARCH_2025, law)
    assert fees(result) == {Service.KORTTIDSVARD: 900 * KR}
    assert "Korttidsvård, 10 dygn à 90 kr" in said(result)


def test_every_explanation_line_cites_a_rule(law: Parameters):
    inputs = FeeInputs(
        household=Cohabiting({IncomeKind.TJANSTEPENSION: 4_000 * KR}),
        incomes={IncomeKind.PENSION: 14_000 * KR, IncomeKind.KAPITAL: 300 * KR},
        housing_cost_ore=7_000 * KR,
        services=Services(
            hemtjanst_hours=8,
            trygghetslarm=True,
            dagverksamhet_days_per_week=1,
            matdistribution=True,
            korttidsvard_days=2,
        ),
        adjustment=MinimumAdjustment(200 * KR, "god man"),
    )
    result = calculate(inputs, date(2026, 2, 1), law)
    assert all(line.text and line.citation for line in result.explanation)
    assert [line.service for line in result.lines] == [
        Service.HEMTJANST,
        Service.DAGVERKSAMHET,
        Service.KORTTIDSVARD,
        Service.TRYGGHETSLARM,
        Service.MATDISTRIBUTION,
    ]


def test_the_shipped_example_tariff_serves_every_month_it_covers():
    shipped = load_parameters(default_parameters_folder())
    inputs = single(20_000, housing_kr=5_000, hemtjanst_hours=20, trygghetslarm=True, matdistribution=True)
    for year in (2024, 2025, 2026):
        for month in range(1, 13):
            result = calculate(inputs, date(year, month, 1), shipped)
            assert 0 < result.total_ore <= result.maxtaxa_ore
            # The tariff is an example, and the explanation says so.
            assert any(line.example for line in result.explanation)


# ---- what cannot be calculated ---------------------------------------------------------------------------


def test_a_month_without_parameters_in_force_is_refused(law: Parameters):
    with pytest.raises(ParameterError) as caught:
        calculate(single(20_000), date(2020, 1, 1), law)
    assert caught.value.parameter == "prisbasbelopp"


@pytest.mark.parametrize(
    ("inputs", "month", "problem"),
    [
        (single(20_000), date(2025, 3, 15), "first day"),
        (FeeInputs(Single(), {IncomeKind.PENSION: -1}), MARCH_2025, "cannot be negative"),
        (FeeInputs(Single(), {IncomeKind.PENSION: 10.5}), MARCH_2025, "whole öre"),  # type: ignore[dict-item]
        (FeeInputs(Single(), {"lön": 100}), MARCH_2025, "not a kind of income"),  # type: ignore[dict-item]
        (FeeInputs(Cohabiting({IncomeKind.PENSION: -5}), {}), MARCH_2025, "partner_incomes"),
        (single(20_000, korttidsvard_days=31), date(2025, 6, 1), "0 to 30"),
        (single(20_000, dagverksamhet_days_per_week=8), MARCH_2025, "0 to 7"),
        (single(20_000, hemtjanst_hours=-1), MARCH_2025, "cannot be negative"),
        (single(20_000, housing_kr=-1), MARCH_2025, "cannot be negative"),
        (
            FeeInputs(Single(), {}, housing_cost_ore=100, special_housing=SpecialHousing(300_000)),
            MARCH_2025,
            "the rent is the housing cost",
        ),
        (FeeInputs(Single(), {}, adjustment=MinimumAdjustment(100, "  ")), MARCH_2025, "needs its reason"),
        (FeeInputs(Single(), {}, adjustment=MinimumAdjustment(-800_000, "x")), MARCH_2025, "below zero"),
    ],
)
def test_impossible_inputs_are_refused(law: Parameters, inputs: FeeInputs, month: date, problem: str):
    with pytest.raises(FeeInputError, match=problem):
        calculate(inputs, month, law)
