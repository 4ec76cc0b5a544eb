"""Bills on a real database: a month issued once and frozen, the sums exact to the öre, and a change of an
earlier month's counts billed once, as a correction on the next bill issued, whatever the order bills are
issued in and however many are issued at once."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from services.common.errors import FailedPrecondition, NotFound
from services.common.runtime import Wiring
from services.fees import handlers
from services.fees.handlers import Fees
from services.fees.model import LineKind
from services.fees.model.issuing import BillableRow, IssuedBill
from tests.integration.fees.support import FINANCE, FakeCaseCounts, row_counts
from tests.unit.case.builders import Clock

SEPTEMBER, OCTOBER, NOVEMBER, DECEMBER = (date(2026, m, 1) for m in (9, 10, 11, 12))


async def issue(fees: Fees, month: date) -> tuple[IssuedBill, bool]:
    return await handlers.bill_districts(fees=fees, caller=FINANCE, month=month)


def corrections(issued: IssuedBill) -> list[tuple[str, date, int, int]]:
    return [
        (line.payer, line.refers_to, line.quantity or 0, line.amount_ore)
        for line in issued.bill.lines
        if line.kind is LineKind.RATTELSE
    ]


async def test_a_month_is_billed_exactly_and_frozen_once_issued(wiring: Wiring[Fees], counts: FakeCaseCounts):
    counts.rows[OCTOBER] = [
        BillableRow("bromma", "", 120),
        BillableRow("bromma", "bromma-bestallarenhet", 30),
        BillableRow("farsta", "farsta-bestallarenhet", 7),
        BillableRow("", "", 4),
    ]
    issued, before = await issue(wiring.core, OCTOBER)
    bill = issued.bill
    parameters = wiring.core.parameters

    assert not before
    year_fee = parameters.amount("kontaktcenter_grundavgift", OCTOBER).value
    per_call = parameters.amount("kontaktcenter_samtalsavgift", OCTOBER).value
    base = [line for line in bill.lines if line.kind is LineKind.GRUNDAVGIFT]
    assert len(base) == 12  # eleven districts and äldrenämnden
    assert sum(line.amount_ore for line in base) == bill.base_fee_ore
    # The twelve months' parts add up to the year's fee: October's is a twelfth, to the öre.
    assert bill.base_fee_ore in (year_fee // 12, year_fee // 12 + 1)
    calls = {line.payer: line.amount_ore for line in bill.lines if line.kind is LineKind.SAMTAL}
    assert calls == {"bromma": 150 * per_call, "farsta": 7 * per_call}
    assert sum(bill.totals.values()) == bill.total_ore == bill.base_fee_ore + 157 * per_call
    assert issued.unattributed_contacts == 4
    assert issued.uses_example_figures

    # The counts change afterwards: the issued month does not.
    counts.rows[OCTOBER].append(BillableRow("farsta", "", 50))
    again, before = await issue(wiring.core, OCTOBER)
    assert before
    assert again.bill == bill
    assert (await handlers.get_bill(fees=wiring.core, month=OCTOBER)).bill == bill


async def test_a_later_change_of_counts_is_billed_once_as_a_correction_on_the_next_bill(
    wiring: Wiring[Fees], counts: FakeCaseCounts
):
    counts.rows[OCTOBER] = [BillableRow("bromma", "", 10)]
    await issue(wiring.core, OCTOBER)
    # Contacts registered late, and one case moved from Bromma to Farsta.
    counts.rows[OCTOBER] = [BillableRow("bromma", "", 8), BillableRow("farsta", "", 5)]
    counts.rows[NOVEMBER] = [BillableRow("bromma", "", 2)]
    november, _ = await issue(wiring.core, NOVEMBER)
    per_call = wiring.core.parameters.amount("kontaktcenter_samtalsavgift", OCTOBER).value

    assert sorted(corrections(november)) == [
        ("bromma", OCTOBER, -2, -2 * per_call),
        ("farsta", OCTOBER, 5, 5 * per_call),
    ]
    assert sum(november.bill.totals.values()) == november.bill.total_ore
    # December sees the same October counts: nothing to correct any more.
    december_bill = await _issue_in_january(wiring, counts)
    assert corrections(december_bill) == []


async def _issue_in_january(wiring: Wiring[Fees], counts: FakeCaseCounts) -> IssuedBill:
    clock = wiring.core.clock
    assert isinstance(clock, Clock)
    clock.advance(days=31)
    counts.rows.setdefault(DECEMBER, [])
    issued, _ = await issue(wiring.core, DECEMBER)
    return issued


async def test_a_correction_recorded_by_a_bill_issued_out_of_order_is_not_billed_again(
    wiring: Wiring[Fees], counts: FakeCaseCounts
):
    counts.rows[SEPTEMBER] = [BillableRow("bromma", "", 10)]
    await issue(wiring.core, SEPTEMBER)
    counts.rows[SEPTEMBER] = [BillableRow("bromma", "", 12)]
    november, _ = await issue(wiring.core, NOVEMBER)
    assert corrections(november)[0][2] == 2
    # October, issued late, compares September with what November billed: nothing new.
    october, _ = await issue(wiring.core, OCTOBER)
    assert corrections(october) == []
    counts.rows[SEPTEMBER] = [BillableRow("bromma", "", 13)]
    december = await _issue_in_january(wiring, counts)
    assert [(c[1], c[2]) for c in corrections(december)] == [(SEPTEMBER, 1)]


async def test_bills_issued_at_the_same_time_correct_an_earlier_month_once(
    wiring: Wiring[Fees], counts: FakeCaseCounts
):
    counts.rows[SEPTEMBER] = [BillableRow("bromma", "", 10)]
    await issue(wiring.core, SEPTEMBER)
    counts.rows[SEPTEMBER] = [BillableRow("bromma", "", 15)]
    both = await asyncio.gather(issue(wiring.core, OCTOBER), issue(wiring.core, NOVEMBER))
    lines = [c for issued, _ in both for c in corrections(issued)]
    assert [(c[1], c[2]) for c in lines] == [(SEPTEMBER, 5)]


async def test_the_same_month_issued_twice_at_once_is_one_bill(wiring: Wiring[Fees], counts: FakeCaseCounts):
    counts.rows[OCTOBER] = [BillableRow("farsta", "", 3)]
    answers = await asyncio.gather(*(issue(wiring.core, OCTOBER) for _ in range(3)))
    assert sorted(before for _, before in answers) == [False, True, True]
    first = answers[0][0].bill
    assert all(issued.bill == first for issued, _ in answers)
    stored = await row_counts(wiring.engine)
    assert (stored["bills"], stored["call_counts"]) == (1, 1)


async def test_a_month_not_yet_ended_or_without_figures_is_refused_and_nothing_is_written(
    wiring: Wiring[Fees], counts: FakeCaseCounts
):
    with pytest.raises(FailedPrecondition) as running:
        await issue(wiring.core, DECEMBER)
    with pytest.raises(FailedPrecondition) as unheld:
        await issue(wiring.core, date(2020, 3, 1))
    assert (running.value.reason, unheld.value.reason) == ("MONTH_NOT_ENDED", "PARAMETERS_NOT_IN_FORCE")
    assert unheld.value.metadata["parameter"] == "kontaktcenter_grundavgift"
    assert counts.asked == []
    assert sum((await row_counts(wiring.engine)).values()) == 0
    with pytest.raises(NotFound):
        await handlers.get_bill(fees=wiring.core, month=OCTOBER)


async def test_calls_of_a_district_the_key_does_not_name_stop_the_bill(
    wiring: Wiring[Fees], counts: FakeCaseCounts
):
    counts.rows[OCTOBER] = [BillableRow("ostermalm", "", 3)]
    with pytest.raises(FailedPrecondition) as caught:
        await issue(wiring.core, OCTOBER)
    assert caught.value.reason == "BILLING_DATA_UNUSABLE"
    assert "districts/ostermalm" in caught.value.message
