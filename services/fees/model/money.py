"""Amounts of money: always whole öre in an ``int``, and the one rounding rule the law's figures follow.

Fractions of the prisbasbelopp (the maxtaxa, the rent cap, the minimibelopp) are published in whole kronor,
rounded to the nearest krona: 0.5392 × 57,300 / 12 = 2,574.68 becomes 2,575 kr. Every such figure in this
package goes through :func:`monthly_share_of_prisbasbelopp`, so the rule lives here and nowhere else.
"""

from __future__ import annotations

import functools
from datetime import date
from fractions import Fraction

__all__ = [
    "ORE_PER_KRONA",
    "format_kronor",
    "format_month",
    "monthly_share_of_prisbasbelopp",
    "round_half_up",
    "round_to_whole_kronor",
]

ORE_PER_KRONA = 100

_MONTHS = (
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
)


def round_half_up(value: Fraction) -> int:
    """The nearest integer, halves away from zero (Python's ``round`` would send 0.5 to the even 0)."""
    # The published figures round 5,761.515 kr up to 5,762 kr; banker's rounding would disagree on halves.
    if value < 0:
        return -round_half_up(-value)
    return int(value + Fraction(1, 2))


def round_to_whole_kronor(exact_ore: Fraction) -> int:
    """An exact amount in öre rounded to the nearest whole krona, returned in öre."""
    return round_half_up(exact_ore / ORE_PER_KRONA) * ORE_PER_KRONA


@functools.lru_cache(maxsize=256)
def monthly_share_of_prisbasbelopp(fraction: Fraction, prisbasbelopp_ore: int) -> int:
    """One twelfth of ``fraction`` × the prisbasbelopp, in whole kronor (as öre), as the law's figures are
    published: ``monthly_share_of_prisbasbelopp(Fraction("0.5392"), 5_730_000) == 257_500``."""
    return round_to_whole_kronor(fraction * prisbasbelopp_ore / 12)


def format_kronor(ore: int) -> str:
    """An amount as an agent reads it out: ``2 575 kr``, ``68,50 kr``, ``−120 kr``."""
    sign = "−" if ore < 0 else ""
    kronor, rest = divmod(abs(ore), ORE_PER_KRONA)
    whole = f"{kronor:,}".replace(",", " ")
    return f"{sign}{whole},{rest:02d} kr" if rest else f"{sign}{whole} kr"


def format_month(month: date) -> str:
    """``maj 2025``."""
    return f"{_MONTHS[month.month - 1]} {month.year}"
