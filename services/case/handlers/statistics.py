"""Statistics of the cases of a period, and the billable contacts of a month for the contact center's bill."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from services.case.handlers.cases import Cases
from services.case.model import Billable, Statistics
from services.case.model.statistics import MAX_PERIOD_DAYS, local_day_start, month_bounds, summarise
from services.common.errors import InvalidArgument


async def case_statistics(*, cases: Cases, start: date, end: date, dimensions: Sequence[str]) -> Statistics:
    if end < start:
        raise InvalidArgument.field("end_date", "must not be before start_date")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise InvalidArgument.field("end_date", "the period may be at most ten years")
    if len(set(dimensions)) != len(dimensions):
        raise InvalidArgument.field("group_by", "names a dimension twice")
    begin, finish = local_day_start(start), local_day_start(end + timedelta(days=1))
    async with cases.uow(write=False) as uow:
        groups, minutes = await uow.cases.statistics_groups(start=begin, end=finish, dimensions=dimensions)
    return summarise(tuple(dimensions), groups, minutes)


async def count_billable_contacts(
    *, cases: Cases, month: date, unit_id: str | None, district_id: str | None
) -> list[Billable]:
    start, end = month_bounds(month)
    async with cases.uow(write=False) as uow:
        return await uow.cases.billable_contacts(
            start=start, end=end, unit_id=unit_id, district_id=district_id
        )
