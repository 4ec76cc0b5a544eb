"""Issuing a month's bill: each district's calls from the case service's counts, the earlier months whose
counts changed since they were billed, and the CSV a spreadsheet opens safely."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from fractions import Fraction

import pytest

from services.fees.model import BillingError, Parameters, bill_for_month
from services.fees.model.issuing import (
    BillableRow,
    IssuedBill,
    bill_csv,
    calls_by_payer,
    revisions_due,
    uses_example_figures,
)
from synthcity.city import DISTRICTS

NOVEMBER = date(2026, 11, 1)
PAYERS = [*(d.district_id for d in DISTRICTS), "aldrenamnden"]


def test_calls_are_billed_to_the_cases_district_forwarded_or_not_and_every_district_is_present():
    rows = [
        BillableRow("bromma", "", 40),
        BillableRow("bromma", "bromma-bestallarenhet", 7),
        BillableRow("farsta", "farsta-bestallarenhet", 3),
        BillableRow("", "", 5),
    ]
    counts = calls_by_payer(rows, PAYERS)
    assert counts.by_payer["bromma"] == 47
    assert counts.by_payer["farsta"] == 3
    assert counts.by_payer["skarholmen"] == 0
    assert "aldrenamnden" not in counts.by_payer
    assert counts.unattributed == 5


def test_calls_of_a_district_outside_the_key_stop_the_bill():
    with pytest.raises(BillingError, match="ostermalm"):
        calls_by_payer([BillableRow("ostermalm", "", 1)], PAYERS)


def test_only_months_whose_counts_changed_get_a_revision_priced_at_their_own_fee(shipped: Parameters):
    billed = {date(2026, 9, 1): {"bromma": 10, "farsta": 2}, date(2026, 10, 1): {"bromma": 5}}
    fresh = {date(2026, 9, 1): {"bromma": 10, "farsta": 2}, date(2026, 10, 1): {"bromma": 8, "farsta": 0}}
    due = revisions_due(shipped, billed, fresh)
    assert [(r.month, dict(r.issued), dict(r.revised)) for r in due] == [
        (date(2026, 10, 1), {"bromma": 5}, {"bromma": 8, "farsta": 0})
    ]
    assert due[0].per_call_fee_ore == shipped.amount("kontaktcenter_samtalsavgift", date(2026, 10, 1)).value


def test_a_bill_of_example_figures_says_so(shipped: Parameters):
    assert uses_example_figures(shipped, NOVEMBER, [])


def test_the_csv_has_a_header_semicolons_decimal_commas_and_no_formula(shipped: Parameters):
    bill = bill_for_month(shipped, NOVEMBER, {"bromma": 3, "farsta": 1})
    hostile = bill.lines[0].__class__(
        payer="bromma",
        kind=bill.lines[-1].kind,
        text='=HYPERLINK("http://evil")',
        amount_ore=-7_900,
        refers_to=NOVEMBER,
        quantity=-1,
        unit_price_ore=7_900,
    )
    issued = IssuedBill(
        bill=bill.__class__(
            month=bill.month, lines=(*bill.lines, hostile), base_fee_ore=bill.base_fee_ore, totals=bill.totals
        ),
        issue_time=datetime(2026, 12, 2, 8, 0, tzinfo=UTC),
        issued_by="finance-frida",
        uses_example_figures=True,
        unattributed_contacts=0,
    )
    text = bill_csv(issued)
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0] == ["månad", "betalare", "typ", "text", "avser_månad", "antal", "à_pris_kr", "belopp_kr"]
    assert len(rows) == 1 + len(issued.bill.lines)
    calls = [r for r in rows if r[2] == "samtal"]
    assert calls[0][1] == "districts/bromma"
    assert calls[0][5:] == ["3", "79,00", "237,00"]
    base = [r for r in rows if r[2] == "grundavgift"]
    assert {r[1] for r in base} == {f"districts/{d.district_id}" for d in DISTRICTS} | {"aldrenamnden"}
    # Every amount is a number with a decimal comma, and the base-fee lines add up to the month's fee.
    total = sum(Fraction(r[7].replace(",", ".")) for r in base)
    assert total * 100 == issued.bill.base_fee_ore
    assert rows[-1][3].startswith("'=")
    assert rows[-1][7] == "-79,00"
    assert text.endswith("\r\n")
