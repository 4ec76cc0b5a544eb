"""The fees service's repository and unit of work: deferrals, issued bills with their lines, and the call
counts each bill recorded, as domain types."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.db import Fence, Idempotency, UnitOfWork, utc
from services.common.outbox import enqueue
from services.fees.model import Bill, BillLine, LineKind
from services.fees.model.deferral import Deferral, DeferralState, already_deferred
from services.fees.model.issuing import IssuedBill
from services.fees.store.tables import bill_issuing, bill_lines, bills, call_counts, deferrals, outbox

# The outbox kind of a deferral handed to the finance system.
DEFERRAL = "deferral"


def _deferral(row: Any) -> Deferral:
    return Deferral(
        deferral_id=row.id,
        invoice_number=row.invoice_number,
        person_number=row.person_number,
        case=row.case_name,
        days=int(row.days),
        reason=row.reason,
        requested_by=row.requested_by,
        amount_ore=int(row.amount_ore),
        original_due_date=row.original_due_date,
        state=DeferralState(row.state),
        refusal_reason=row.refusal_reason,
        new_due_date=row.new_due_date,
        finance_reference=row.finance_reference,
        create_time=utc(row.create_time),
        update_time=utc(row.update_time),
    )


def _line(row: Any) -> BillLine:
    return BillLine(
        payer=row.payer,
        kind=LineKind(row.kind),
        text=row.text,
        amount_ore=int(row.amount_ore),
        refers_to=row.refers_to,
        quantity=None if row.quantity is None else int(row.quantity),
        unit_price_ore=None if row.unit_price_ore is None else int(row.unit_price_ore),
    )


class FeesRepository:
    def __init__(self, conn: AsyncConnection):
        self.conn = conn

    # ---- deferrals ----------------------------------------------------------------------------------------

    async def deferral(self, deferral_id: str) -> Deferral | None:
        row = (await self.conn.execute(select(deferrals).where(deferrals.c.id == deferral_id))).first()
        return None if row is None else _deferral(row)

    async def deferral_of_invoice(self, invoice_number: str) -> Deferral | None:
        row = (
            await self.conn.execute(select(deferrals).where(deferrals.c.invoice_number == invoice_number))
        ).first()
        return None if row is None else _deferral(row)

    async def add_deferral(self, deferral: Deferral) -> None:
        """Stores a new deferral and its hand-off to the finance system in this transaction; refuses a
        second deferral of the same invoice (a race the look-up before could not see) with
        ALREADY_DEFERRED."""
        try:
            await self.conn.execute(
                insert(deferrals).values(
                    id=deferral.deferral_id,
                    invoice_number=deferral.invoice_number,
                    person_number=deferral.person_number,
                    case_name=deferral.case,
                    days=deferral.days,
                    reason=deferral.reason,
                    requested_by=deferral.requested_by,
                    amount_ore=deferral.amount_ore,
                    original_due_date=deferral.original_due_date,
                    state=deferral.state.value,
                    refusal_reason=deferral.refusal_reason,
                    new_due_date=deferral.new_due_date,
                    finance_reference=deferral.finance_reference,
                    create_time=utc(deferral.create_time),
                    update_time=utc(deferral.update_time),
                )
            )
        except IntegrityError:
            raise already_deferred(deferral.invoice_number) from None
        await enqueue(
            self.conn,
            outbox,
            kind=DEFERRAL,
            payload=deferral.handoff(),
            delivery_key=deferral.delivery_key,
            subject_ref=deferral.name,
            now=deferral.create_time,
        )

    async def save_answer(self, deferral: Deferral) -> None:
        """Records the finance system's answer to a deferral."""
        await self.conn.execute(
            update(deferrals)
            .where(deferrals.c.id == deferral.deferral_id)
            .values(
                state=deferral.state.value,
                refusal_reason=deferral.refusal_reason[:200],
                new_due_date=deferral.new_due_date,
                finance_reference=deferral.finance_reference[:100],
                update_time=utc(deferral.update_time),
            )
        )

    # ---- bills --------------------------------------------------------------------------------------------

    async def take_issuing_turn(self, now: datetime) -> None:
        """Waits for any other transaction issuing a bill to end (a row lock on PostgreSQL; SQLite's write
        lock already makes writers take turns)."""
        await self.conn.execute(
            update(bill_issuing).where(bill_issuing.c.id == 1).values(last_issue_time=utc(now))
        )

    async def bill(self, month: date) -> IssuedBill | None:
        row = (await self.conn.execute(select(bills).where(bills.c.month == month))).first()
        if row is None:
            return None
        lines = [
            _line(r)
            for r in await self.conn.execute(
                select(bill_lines).where(bill_lines.c.month == month).order_by(bill_lines.c.position)
            )
        ]
        totals: dict[str, int] = {}
        for line in lines:
            totals[line.payer] = totals.get(line.payer, 0) + line.amount_ore
        return IssuedBill(
            bill=Bill(month=month, lines=tuple(lines), base_fee_ore=int(row.base_fee_ore), totals=totals),
            issue_time=utc(row.issue_time),
            issued_by=row.issued_by,
            uses_example_figures=bool(row.uses_example_figures),
            unattributed_contacts=int(row.unattributed_contacts),
        )

    async def issued_months(self, *, before: date) -> list[date]:
        found = await self.conn.execute(
            select(bills.c.month).where(bills.c.month < before).order_by(bills.c.month)
        )
        return [row.month for row in found]

    async def billed_counts(self, months: Iterable[date]) -> dict[date, tuple[int, dict[str, int]]]:
        """For each month, the revision of its counts last billed, and those counts."""
        wanted = sorted(set(months))
        if not wanted:
            return {}
        latest = (
            select(call_counts.c.month, func.max(call_counts.c.revision).label("revision"))
            .where(call_counts.c.month.in_(wanted))
            .group_by(call_counts.c.month)
            .subquery()
        )
        rows = await self.conn.execute(
            select(call_counts.c.month, call_counts.c.revision, call_counts.c.counts).join(
                latest,
                (latest.c.month == call_counts.c.month) & (latest.c.revision == call_counts.c.revision),
            )
        )
        return {
            row.month: (int(row.revision), {str(k): int(v) for k, v in json.loads(row.counts).items()})
            for row in rows
        }

    async def add_bill(
        self,
        issued: IssuedBill,
        *,
        counts: Mapping[str, int],
        revised: Mapping[date, tuple[int, Mapping[str, int]]],
    ) -> None:
        """Stores an issued bill, the counts it billed, and the revised counts of the months it corrected
        (each under the revision it makes)."""
        bill = issued.bill
        await self.conn.execute(
            insert(bills).values(
                month=bill.month,
                issue_time=utc(issued.issue_time),
                issued_by=issued.issued_by,
                base_fee_ore=bill.base_fee_ore,
                uses_example_figures=issued.uses_example_figures,
                unattributed_contacts=issued.unattributed_contacts,
            )
        )
        if bill.lines:
            await self.conn.execute(
                insert(bill_lines),
                [
                    {
                        "month": bill.month,
                        "position": position,
                        "payer": line.payer,
                        "kind": line.kind.value,
                        "text": line.text[:300],
                        "amount_ore": line.amount_ore,
                        "refers_to": line.refers_to,
                        "quantity": line.quantity,
                        "unit_price_ore": line.unit_price_ore,
                    }
                    for position, line in enumerate(bill.lines)
                ],
            )
        snapshots = [
            {
                "month": bill.month,
                "revision": 0,
                "recorded_in": bill.month,
                "counts": json.dumps(dict(counts)),
            }
        ]
        snapshots += [
            {
                "month": month,
                "revision": revision,
                "recorded_in": bill.month,
                "counts": json.dumps(dict(found)),
            }
            for month, (revision, found) in sorted(revised.items())
        ]
        await self.conn.execute(insert(call_counts), snapshots)


class FeesUnitOfWork(UnitOfWork):
    fees: FeesRepository

    def bind(self, conn: AsyncConnection) -> None:
        self.fees = FeesRepository(conn)


def unit_of_work_factory(engine: AsyncEngine) -> Callable[..., FeesUnitOfWork]:
    def make(
        *, write: bool = True, idempotency: Idempotency | None = None, fence: Fence | None = None
    ) -> FeesUnitOfWork:
        return FeesUnitOfWork(engine, write=write, idempotency=idempotency, fence=fence)

    return make
