"""Issuing the contact center's bill for a month: whose calls are whose, which earlier months' counts have
changed since they were billed, the bill as issued (frozen), and its CSV.

Whose calls. The case service counts billable contacts per case district and unit. Every contact is billed
to the beställarenhet of its case's district: the seed's "en avgift per samtal för den beställarenhet som
ärendet tillhör" [000] makes the fee follow the case, and a case belongs to its district's beställarenhet
whether it was forwarded there or answered at first contact (two thirds are). A forwarded case's district is
the one its unit serves (the case service sets it from the routing), so the unit adds nothing here; and the
directory, which alone knows a unit's district, is not one of this service's dependencies. Contacts of
cases that name no district are billed to nobody and counted on the bill as unattributed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from services.fees.model.billing import (
    ELDERLY_CARE_BOARD,
    Bill,
    BillingError,
    CountRevision,
    LineKind,
    revision_at,
)
from services.fees.model.money import ORE_PER_KRONA
from services.fees.model.parameters import Parameters

__all__ = [
    "BILLING_PARAMETERS",
    "BillableRow",
    "CallCounts",
    "IssuedBill",
    "bill_csv",
    "calls_by_payer",
    "revisions_due",
    "uses_example_figures",
]

BILLING_PARAMETERS = (
    "kontaktcenter_grundavgift",
    "fordelningsnyckel_aldreomsorg",
    "kontaktcenter_samtalsavgift",
)


@dataclass(frozen=True)
class BillableRow:
    """One row of the case service's count: the contacts of the cases of one district and unit."""

    district_id: str
    unit_id: str
    contacts: int


@dataclass(frozen=True)
class CallCounts:
    """A month's billable calls per payer, and those of cases that name no district."""

    by_payer: Mapping[str, int]
    unattributed: int = 0


def calls_by_payer(rows: Iterable[BillableRow], payers: Iterable[str]) -> CallCounts:
    """Each district's calls, every district of the allocation key present (zero included)."""
    districts = [payer for payer in payers if payer != ELDERLY_CARE_BOARD]
    counts = dict.fromkeys(districts, 0)
    unattributed = 0
    for row in rows:
        if row.contacts < 0:
            raise BillingError(f"a count of contacts is 0 or more, not {row.contacts}")
        if not row.district_id:
            unattributed += row.contacts
            continue
        if row.district_id not in counts:
            raise BillingError(
                f"districts/{row.district_id} has billable contacts but no share in the allocation key in "
                "force: the key must name every district before the month can be billed"
            )
        counts[row.district_id] += row.contacts
    return CallCounts(counts, unattributed)


def revisions_due(
    parameters: Parameters,
    billed: Mapping[date, Mapping[str, int]],
    fresh: Mapping[date, Mapping[str, int]],
) -> list[CountRevision]:
    """A revision for every earlier month whose fresh counts differ from what was last billed for it."""
    due = []
    for month in sorted(billed):
        latest = fresh.get(month)
        if latest is None:
            continue
        before = billed[month]
        payers = set(before) | set(latest)
        if any(before.get(p, 0) != latest.get(p, 0) for p in payers):
            due.append(revision_at(parameters, month, issued=dict(before), revised=dict(latest)))
    return due


def uses_example_figures(parameters: Parameters, month: date, revisions: Sequence[CountRevision]) -> bool:
    """Whether any figure the bill uses (its own month's, and the fee per call of a corrected month) is an
    example rather than a decision."""
    if any(parameters.value(name, month).example for name in BILLING_PARAMETERS):
        return True
    return any(
        parameters.value("kontaktcenter_samtalsavgift", revision.month).example for revision in revisions
    )


@dataclass(frozen=True)
class IssuedBill:
    """A bill as issued: frozen, with who issued it and when."""

    bill: Bill
    issue_time: datetime
    issued_by: str
    uses_example_figures: bool
    unattributed_contacts: int

    @property
    def name(self) -> str:
        return f"bills/{self.bill.month:%Y-%m}"


def payer_name(payer: str) -> str:
    """A payer as the contract names it: "districts/{district}", or "aldrenamnden"."""
    return payer if payer == ELDERLY_CARE_BOARD else f"districts/{payer}"


_KINDS = {LineKind.GRUNDAVGIFT: "grundavgift", LineKind.SAMTAL: "samtal", LineKind.RATTELSE: "rättelse"}
# A cell a spreadsheet would take for a formula starts with one of these (OWASP, "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def _text_cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def _kronor(ore: int) -> str:
    """Öre as kronor with a decimal comma and no thousands separator: what a Swedish spreadsheet reads as
    a number."""
    sign = "-" if ore < 0 else ""
    kronor, rest = divmod(abs(ore), ORE_PER_KRONA)
    return f"{sign}{kronor},{rest:02d}"


def bill_csv(issued: IssuedBill) -> str:
    """The bill as CSV: a header row, then one row per line; semicolons between cells, amounts in kronor
    with a decimal comma. Text cells that a spreadsheet would run as a formula are quoted with an
    apostrophe; numbers are written by this function alone, so they never need it."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["månad", "betalare", "typ", "text", "avser_månad", "antal", "à_pris_kr", "belopp_kr"])
    month = f"{issued.bill.month:%Y-%m}"
    for line in issued.bill.lines:
        writer.writerow(
            [
                month,
                _text_cell(payer_name(line.payer)),
                _KINDS[line.kind],
                _text_cell(line.text),
                f"{line.refers_to:%Y-%m}",
                "" if line.quantity is None else str(line.quantity),
                "" if line.unit_price_ore is None else _kronor(line.unit_price_ore),
                _kronor(line.amount_ore),
            ]
        )
    return out.getvalue()
