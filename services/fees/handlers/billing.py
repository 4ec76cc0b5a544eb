"""The contact center's bill to the districts and äldrenämnden: issued once per month that has ended, from
the case service's counts, and frozen; counts of earlier months that changed since they were billed become
correction lines on the bill issued next."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import date, datetime

from services.common.auth import Caller
from services.common.business_calendar import to_local
from services.common.db import Idempotency
from services.common.errors import FailedPrecondition, NotFound, Unavailable
from services.fees.handlers.fees import Fees, figures_in_force
from services.fees.model import bill_for_month
from services.fees.model.issuing import (
    BILLING_PARAMETERS,
    BillableRow,
    CallCounts,
    IssuedBill,
    calls_by_payer,
    revisions_due,
    uses_example_figures,
)
from services.fees.model.money import format_month

KEY = "fordelningsnyckel_aldreomsorg"
# Bills issued at the same moment make the later one count again; after this many rounds it gives up.
ATTEMPTS = 3


def _month_after(month: date) -> date:
    return date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)


def has_ended(month: date, now: datetime) -> bool:
    """Whether the month is over in Stockholm."""
    return to_local(now).date() >= _month_after(month)


async def _counts(fees: Fees, months: list[date]) -> dict[date, list[BillableRow]]:
    gate = asyncio.Semaphore(fees.count_concurrency)

    async def one(month: date) -> list[BillableRow]:
        async with gate:
            return await fees.case_counts.billable_contacts(month)

    found = await asyncio.gather(*(one(month) for month in months))
    return dict(zip(months, found, strict=True))


def _by_payer(fees: Fees, month: date, rows: list[BillableRow]) -> CallCounts:
    with figures_in_force():
        return calls_by_payer(rows, fees.parameters.shares(KEY, month).value)


async def bill_districts(
    *, fees: Fees, caller: Caller, month: date, idempotency: Idempotency | None = None
) -> tuple[IssuedBill, bool]:
    """The month's bill, issued now, or the one issued before (True beside it)."""
    now = fees.clock()
    if not has_ended(month, now):
        raise FailedPrecondition(
            f"{format_month(month)} has not ended: a month is billed once it is over",
            reason="MONTH_NOT_ENDED",
            metadata={"month": f"{month:%Y-%m}"},
        )
    with figures_in_force():
        for name in BILLING_PARAMETERS:
            fees.parameters.value(name, month)
    async with fees.uow(write=False, idempotency=idempotency) as uow:
        stored = await uow.fees.bill(month)
    if stored is not None:
        return stored, True
    for _ in range(ATTEMPTS):
        async with fees.uow(write=False) as uow:
            earlier = await uow.fees.issued_months(before=month)
            billed = await uow.fees.billed_counts(earlier)
        rows = await _counts(fees, [month, *earlier])
        counts = _by_payer(fees, month, rows[month])
        fresh = {m: _by_payer(fees, m, rows[m]).by_payer for m in earlier}
        last: Mapping[date, Mapping[str, int]] = {m: found for m, (_, found) in billed.items()}
        with figures_in_force():
            revisions = revisions_due(fees.parameters, last, fresh)
            bill = bill_for_month(fees.parameters, month, counts.by_payer, revisions)
            examples = uses_example_figures(fees.parameters, month, revisions)
        issued = IssuedBill(
            bill=bill,
            issue_time=now,
            issued_by=caller.subject,
            uses_example_figures=examples,
            unattributed_contacts=counts.unattributed,
        )
        async with fees.uow(idempotency=idempotency) as uow:
            await uow.fees.take_issuing_turn(now)
            stored = await uow.fees.bill(month)
            if stored is not None:
                await uow.commit((stored, True))
                return stored, True
            unchanged = await uow.fees.issued_months(before=month) == earlier and {
                m: revision for m, (revision, _) in (await uow.fees.billed_counts(earlier)).items()
            } == {m: revision for m, (revision, _) in billed.items()}
            if unchanged:
                revised = {r.month: (billed[r.month][0] + 1, r.revised) for r in revisions}
                await uow.fees.add_bill(issued, counts=counts.by_payer, revised=revised)
                await uow.commit((issued, False))
                return issued, False
        # Another bill was issued meanwhile and may have corrected the same months: count again.
    raise Unavailable("other bills were being issued at the same time; try again", reason="BILLING_BUSY")


async def get_bill(*, fees: Fees, month: date) -> IssuedBill:
    async with fees.uow(write=False) as uow:
        found = await uow.fees.bill(month)
    if found is None:
        raise NotFound(f"bills/{month:%Y-%m}")
    return found
