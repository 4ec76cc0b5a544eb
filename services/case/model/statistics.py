"""Case statistics and billing counts: the arithmetic over what the store counted, and the CSV export.

Pure Python, like the rest of the model: the store counts per group, this module turns the counts into
rates, percentiles and totals.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time

from services.common.business_calendar import STOCKHOLM

DIMENSIONS = ("case_type", "case_class", "district", "channel", "month")
# A period of statistics spans at most this many days.
MAX_PERIOD_DAYS = 3660

Histogram = list[tuple[int, int]]


@dataclass(frozen=True)
class GroupCounts:
    """What the store counts for one group of cases: `keys` are the group's raw values per dimension."""

    keys: tuple[str, ...]
    contacts: int
    cases: int
    resolved_at_first_contact: int
    forwarded: int
    deadline_kept: int
    deadline_judged: int
    acute: int
    satisfaction_sum: int
    satisfaction_answers: int


@dataclass(frozen=True)
class StatisticsRow:
    keys: tuple[str, ...]
    contacts: int
    cases: int
    resolved_at_first_contact: int
    forwarded: int
    deadline_kept: int
    deadline_judged: int
    acute: int
    median_hours: float
    p90_hours: float
    satisfaction_sum: int
    satisfaction_answers: int

    @property
    def first_contact_resolution_rate(self) -> float:
        return self.resolved_at_first_contact / self.cases if self.cases else 0.0

    @property
    def deadline_kept_rate(self) -> float:
        return self.deadline_kept / self.deadline_judged if self.deadline_judged else 0.0

    @property
    def satisfaction_mean(self) -> float:
        return self.satisfaction_sum / self.satisfaction_answers if self.satisfaction_answers else 0.0


@dataclass(frozen=True)
class Statistics:
    dimensions: tuple[str, ...]
    rows: list[StatisticsRow]
    total: StatisticsRow


def percentile(histogram: Histogram, fraction: float) -> float:
    """Nearest-rank percentile of minutes, in hours."""
    total = sum(n for _, n in histogram)
    if total == 0:
        return 0.0
    rank = max(1, -(-int(fraction * total * 1000) // 1000))
    seen = 0
    ordered = sorted(histogram)
    for minutes, n in ordered:
        seen += n
        if seen >= rank:
            return round(minutes / 60, 2)
    return round(ordered[-1][0] / 60, 2)


def display_key(dimension: str, value: str) -> str:
    return f"districts/{value}" if dimension == "district" and value else value


def summarise(
    dimensions: tuple[str, ...], groups: list[GroupCounts], minutes: dict[tuple[str, ...], Histogram]
) -> Statistics:
    """The rows of the groups, sorted, with the period's totals; `minutes` holds each group's histogram
    of time to resolve, in minutes of opening hours."""
    rows = []
    for group in groups:
        histogram = minutes.get(group.keys, [])
        rows.append(
            _row(
                tuple(display_key(d, k) for d, k in zip(dimensions, group.keys, strict=True)),
                group,
                histogram,
            )
        )
    rows.sort(key=lambda r: r.keys)
    everything: dict[int, int] = {}
    for histogram in minutes.values():
        for value, n in histogram:
            everything[value] = everything.get(value, 0) + n
    whole = list(everything.items())
    total = StatisticsRow(
        keys=(),
        contacts=sum(r.contacts for r in rows),
        cases=sum(r.cases for r in rows),
        resolved_at_first_contact=sum(r.resolved_at_first_contact for r in rows),
        forwarded=sum(r.forwarded for r in rows),
        deadline_kept=sum(r.deadline_kept for r in rows),
        deadline_judged=sum(r.deadline_judged for r in rows),
        acute=sum(r.acute for r in rows),
        median_hours=percentile(whole, 0.5),
        p90_hours=percentile(whole, 0.9),
        satisfaction_sum=sum(r.satisfaction_sum for r in rows),
        satisfaction_answers=sum(r.satisfaction_answers for r in rows),
    )
    return Statistics(dimensions, rows, total)


def _row(keys: tuple[str, ...], group: GroupCounts, histogram: Histogram) -> StatisticsRow:
    return StatisticsRow(
        keys=keys,
        contacts=group.contacts,
        cases=group.cases,
        resolved_at_first_contact=group.resolved_at_first_contact,
        forwarded=group.forwarded,
        deadline_kept=group.deadline_kept,
        deadline_judged=group.deadline_judged,
        acute=group.acute,
        median_hours=percentile(histogram, 0.5),
        p90_hours=percentile(histogram, 0.9),
        satisfaction_sum=group.satisfaction_sum,
        satisfaction_answers=group.satisfaction_answers,
    )


CSV_COLUMNS = (
    "contacts",
    "cases",
    "resolved_at_first_contact",
    "first_contact_resolution_rate",
    "forwarded",
    "deadline_kept_rate",
    "acute",
    "median_working_hours_to_resolve",
    "p90_working_hours_to_resolve",
    "satisfaction_mean",
    "satisfaction_answers",
)


def statistics_csv(statistics: Statistics) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*statistics.dimensions, *CSV_COLUMNS])
    for row in [*statistics.rows, replace(statistics.total, keys=("total",) * len(statistics.dimensions))]:
        writer.writerow(
            [
                *row.keys,
                row.contacts,
                row.cases,
                row.resolved_at_first_contact,
                f"{row.first_contact_resolution_rate:.4f}",
                row.forwarded,
                f"{row.deadline_kept_rate:.4f}",
                row.acute,
                f"{row.median_hours:.2f}",
                f"{row.p90_hours:.2f}",
                f"{row.satisfaction_mean:.2f}",
                row.satisfaction_answers,
            ]
        )
    return out.getvalue()


@dataclass(frozen=True)
class Billable:
    """A month's contacts of one district's cases forwarded to one unit (or kept by the contact center)."""

    district_id: str | None
    unit_id: str | None
    contacts: int
    cases: int


def local_day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), STOCKHOLM).astimezone(UTC)


def month_bounds(first: date) -> tuple[datetime, datetime]:
    """The instants a month in Stockholm starts and ends."""
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return local_day_start(first), local_day_start(following)
