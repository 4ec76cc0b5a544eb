"""The one rounding rule, held against the figures municipalities publish."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest

from services.fees.model import (
    Parameters,
    format_kronor,
    format_month,
    monthly_share_of_prisbasbelopp,
    round_half_up,
    round_to_whole_kronor,
)

KR = 100

# (year, published kronor, where it was published)
PUBLISHED_MAXTAXA = [
    (2024, 2_575, "https://www.vaxholm.se/omsorg--stod/aldre/hjalp-i-hemmet/egenavgifter-inom-hemtjanst"),
    (
        2025,
        2_642,
        "https://boden.se/tillstand-och-avgifter/taxor-och-avgifter/avgifter-sarskilt-boende-aldreboende",
    ),
    (
        2026,
        2_660,
        "https://ostersund.se/omsorg-och-hjalp/aldre-och-andra-i-behov-av-stod/hjalp-i-hemmet/avgifter-for-hjalp-i-hemmet.html",
    ),
]

# (year, single, cohabiting, published or computed, where)
MINIMIBELOPP = [
    (
        2023,
        6_470,
        5_279,
        "published",
        "https://www.lycksele.se/kommun/kommun-och-politik/avgifter-och-taxor/omsorg-och-stod/minimibelopp/",
    ),
    (2024, 7_062, 5_762, "published", "https://www.vaxholm.se/omsorg--stod/allmant-om-egenavgifter"),
    # No published 2025 or 2026 amounts were found: these are computed by the same rule, not checked.
    (2025, 7_247, 5_912, "computed", "1.4789 and 1.2066 × 58 800 / 12, rounded"),
    (2026, 7_296, 5_953, "computed", "1.4789 and 1.2066 × 59 200 / 12, rounded"),
]

# Computed, not published: the rent cap 0.5539 × pbb / 12 in whole kronor.
COMPUTED_RENT_CAP = [(2024, 2_645), (2025, 2_714), (2026, 2_733)]


def in_force(parameters: Parameters, name: str, year: int) -> int:
    day = date(year, 7, 1)
    return monthly_share_of_prisbasbelopp(
        parameters.fraction(name, day).value, parameters.amount("prisbasbelopp", day).value
    )


@pytest.mark.parametrize(("year", "kronor", "where"), PUBLISHED_MAXTAXA)
def test_the_maxtaxa_matches_the_published_figure(shipped: Parameters, year: int, kronor: int, where: str):
    assert in_force(shipped, "maxtaxa_andel", year) == kronor * KR, where


@pytest.mark.parametrize(("year", "single", "cohabiting", "status", "where"), MINIMIBELOPP)
def test_the_minimibelopp_matches_the_published_or_computed_figure(
    shipped: Parameters, year: int, single: int, cohabiting: int, status: str, where: str
):
    assert in_force(shipped, "minimibelopp_ensamstaende_andel", year) == single * KR, (status, where)
    assert in_force(shipped, "minimibelopp_sammanlevande_andel", year) == cohabiting * KR, (status, where)


@pytest.mark.parametrize(("year", "kronor"), COMPUTED_RENT_CAP)
def test_the_rent_cap_is_the_computed_figure(shipped: Parameters, year: int, kronor: int):
    assert in_force(shipped, "hyrestak_andel", year) == kronor * KR


def test_2024s_cap_is_rounded_up_from_2574_68():
    exact = Fraction("0.5392") * 5_730_000 / 12
    assert exact == Fraction(25_746_800, 100)
    assert monthly_share_of_prisbasbelopp(Fraction("0.5392"), 5_730_000) == 257_500


def test_a_half_krona_rounds_up_not_to_even():
    # 1.2066 × 57 300 / 12 = 5 761.515 kr: published as 5 762 kr by most, so the half goes up.
    assert monthly_share_of_prisbasbelopp(Fraction("1.2066"), 5_730_000) == 576_200
    assert round_to_whole_kronor(Fraction(25_050)) == 25_100  # 250.50 kr
    assert round_to_whole_kronor(Fraction(24_950)) == 25_000  # 249.50 kr
    assert round_to_whole_kronor(Fraction(24_949)) == 24_900


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        (Fraction(1, 2), 1),
        (Fraction(3, 2), 2),
        (Fraction(5, 2), 3),
        (Fraction(-1, 2), -1),
        (Fraction(49, 100), 0),
    ],
)
def test_round_half_up_sends_halves_away_from_zero(value: Fraction, rounded: int):
    assert round_half_up(value) == rounded


@pytest.mark.parametrize(
    ("ore", "text"),
    [
        (257_500, "2 575 kr"),
        (6_850, "68,50 kr"),
        (5, "0,05 kr"),
        (0, "0 kr"),
        (-12_000, "−120 kr"),
        (88_250_000_000, "882 500 000 kr"),
    ],
)
def test_amounts_read_as_swedish_kronor(ore: int, text: str):
    assert format_kronor(ore) == text


def test_months_read_in_swedish():
    assert format_month(date(2025, 7, 1)) == "juli 2025"
    assert format_month(date(2026, 12, 1)) == "december 2026"
