"""The contact center's monthly bill to the districts and äldrenämnden, as plain arithmetic.

Äldre direkt charges a fixed yearly base fee, split by the elderly-care allocation key, and a fee per
call to the district's beställarenhet the case belongs to. Money is whole öre, so every split is made
with the largest-remainder method: the year's fee is split over the twelve months and each month's fee
over the payers so that the parts add up to the whole exactly, to the öre. A later change to an already
billed month's counts is not re-billed; the difference goes on the next bill as a correction line.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from fractions import Fraction
from typing import TypeVar

from services.fees.model.money import format_kronor, format_month
from services.fees.model.parameters import Parameters

__all__ = [
    "ELDERLY_CARE_BOARD",
    "Bill",
    "BillLine",
    "BillingError",
    "CountRevision",
    "LineKind",
    "bill_for_month",
    "compose_bill",
    "largest_remainder",
    "month_base_fee",
    "revision_at",
]

K = TypeVar("K", bound=Hashable)

# Äldrenämnden pays its share of the base fee but has no beställarenhet, so no calls are billed to it.
ELDERLY_CARE_BOARD = "aldrenamnden"


class BillingError(ValueError):
    """Billing data that cannot make an honest bill: a negative count, a call counted for a payer with
    no beställarenhet in the key, a year's fee that is negative."""


def largest_remainder(total: int, weights: Mapping[K, Fraction | int]) -> dict[K, int]:
    """Split ``total`` whole units in proportion to ``weights`` so the parts add up to ``total`` exactly.

    Each part is its exact quota rounded down, and the units left over go one each to the largest
    remainders. Equal remainders are served in the order the weights are given, so the same data always
    gives the same bill."""
    if total < 0:
        raise BillingError(f"cannot split a negative amount ({total})")
    exact = {key: Fraction(weight) for key, weight in weights.items()}
    if any(weight < 0 for weight in exact.values()):
        raise BillingError("weights cannot be negative")
    whole = sum(exact.values(), Fraction(0))
    if whole == 0:
        raise BillingError("the weights add up to zero; there is nothing to split by")
    quotas = {key: total * weight / whole for key, weight in exact.items()}
    parts = {key: quota.numerator // quota.denominator for key, quota in quotas.items()}
    left = total - sum(parts.values())
    order = sorted(quotas, key=lambda key: quotas[key] - parts[key], reverse=True)  # stable: ties in order
    for key in order[:left]:
        parts[key] += 1
    return parts


def month_base_fee(year_fee_ore: int, month: int) -> int:
    """Month ``month`` (1–12)'s part of the year's base fee; the twelve parts add up to the year's fee.

    The öre that do not divide by twelve go to the first months of the year."""
    if not 1 <= month <= 12:
        raise BillingError(f"a month is 1 to 12, not {month}")
    return largest_remainder(year_fee_ore, dict.fromkeys(range(1, 13), 1))[month]


class LineKind(StrEnum):
    GRUNDAVGIFT = "grundavgift"
    SAMTAL = "samtal"
    RATTELSE = "rattelse"


@dataclass(frozen=True)
class BillLine:
    payer: str  # a district id (its beställarenhet) or "aldrenamnden"
    kind: LineKind
    text: str  # Swedish, for the invoice
    amount_ore: int  # negative for a correction that gives money back
    refers_to: date  # the month the line is about (a correction's earlier month)
    quantity: int | None = None  # calls, for call and correction lines
    unit_price_ore: int | None = None


@dataclass(frozen=True)
class CountRevision:
    """An already billed month whose call counts changed afterwards: what was billed and what is right,
    with that month's fee per call."""

    month: date
    per_call_fee_ore: int
    issued: Mapping[str, int]
    revised: Mapping[str, int]


@dataclass(frozen=True)
class Bill:
    month: date
    lines: tuple[BillLine, ...]
    base_fee_ore: int  # this month's part of the year's base fee
    totals: Mapping[str, int] = field(default_factory=dict)  # per payer

    @property
    def total_ore(self) -> int:
        return sum(self.totals.values())


def compose_bill(
    *,
    month: date,
    year_base_fee_ore: int,
    shares: Mapping[str, Fraction],
    per_call_fee_ore: int,
    calls: Mapping[str, int],
    revisions: Sequence[CountRevision] = (),
) -> Bill:
    """The bill for ``month`` (its first day): every payer's part of the base fee, every district's calls
    at the month's fee, and correction lines for earlier months whose counts changed.

    ``calls`` counts billable calls per district; a district without calls may be left out."""
    if month.day != 1:
        raise BillingError(f"a billing month is given by its first day, not {month.isoformat()}")
    if year_base_fee_ore < 0 or per_call_fee_ore < 0:
        raise BillingError("fees cannot be negative")
    _check_counts("calls", calls, shares)

    base_fee = month_base_fee(year_base_fee_ore, month.month)
    base_parts = largest_remainder(base_fee, shares)
    lines: list[BillLine] = []
    for payer, part in base_parts.items():
        percent = f"{float(shares[payer] * 100):.2f}".replace(".", ",")
        lines.append(
            BillLine(
                payer,
                LineKind.GRUNDAVGIFT,
                f"Grundavgift {format_month(month)}, andel {percent} %",
                part,
                month,
            )
        )
    for payer in shares:
        count = calls.get(payer, 0)
        if count:
            lines.append(
                BillLine(
                    payer,
                    LineKind.SAMTAL,
                    f"Samtal {format_month(month)}: {count} à {format_kronor(per_call_fee_ore)}",
                    count * per_call_fee_ore,
                    month,
                    quantity=count,
                    unit_price_ore=per_call_fee_ore,
                )
            )
    for revision in revisions:
        lines.extend(_corrections(month, revision, shares))

    totals = dict.fromkeys(shares, 0)
    for line in lines:
        totals[line.payer] += line.amount_ore
    return Bill(month=month, lines=tuple(lines), base_fee_ore=base_fee, totals=totals)


def _corrections(month: date, revision: CountRevision, shares: Mapping[str, Fraction]) -> list[BillLine]:
    if revision.month >= month:
        raise BillingError(
            f"a correction for {revision.month.isoformat()} belongs on a later bill than {month.isoformat()}"
        )
    if revision.per_call_fee_ore < 0:
        raise BillingError("fees cannot be negative")
    _check_counts("issued", revision.issued, shares)
    _check_counts("revised", revision.revised, shares)
    lines = []
    for payer in shares:
        difference = revision.revised.get(payer, 0) - revision.issued.get(payer, 0)
        if difference:
            sign = "+" if difference > 0 else "−"
            lines.append(
                BillLine(
                    payer,
                    LineKind.RATTELSE,
                    f"Rättelse av samtal {format_month(revision.month)}: {sign}{abs(difference)} à "
                    f"{format_kronor(revision.per_call_fee_ore)}",
                    difference * revision.per_call_fee_ore,
                    revision.month,
                    quantity=difference,
                    unit_price_ore=revision.per_call_fee_ore,
                )
            )
    return lines


def _check_counts(name: str, counts: Mapping[str, int], shares: Mapping[str, Fraction]) -> None:
    for payer, count in counts.items():
        if payer not in shares:
            raise BillingError(f"{name}: {payer!r} is not a payer in the allocation key")
        if payer == ELDERLY_CARE_BOARD:
            raise BillingError(f"{name}: äldrenämnden has no beställarenhet to bill calls to")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise BillingError(f"{name}: {payer} has {count!r} calls; a count is a whole number, 0 or more")


# ---- with the parameters in force ---------------------------------------------------------------------


def revision_at(
    parameters: Parameters, month: date, issued: Mapping[str, int], revised: Mapping[str, int]
) -> CountRevision:
    """A revision of ``month``'s counts, priced at the fee per call in force in that month."""
    fee = parameters.amount("kontaktcenter_samtalsavgift", month).value
    return CountRevision(month=month, per_call_fee_ore=fee, issued=issued, revised=revised)


def bill_for_month(
    parameters: Parameters,
    month: date,
    calls: Mapping[str, int],
    revisions: Sequence[CountRevision] = (),
) -> Bill:
    """:func:`compose_bill` with the year's base fee, the allocation key and the fee per call in force in
    ``month``."""
    return compose_bill(
        month=month,
        year_base_fee_ore=parameters.amount("kontaktcenter_grundavgift", month).value,
        shares=parameters.shares("fordelningsnyckel_aldreomsorg", month).value,
        per_call_fee_ore=parameters.amount("kontaktcenter_samtalsavgift", month).value,
        calls=calls,
        revisions=revisions,
    )
