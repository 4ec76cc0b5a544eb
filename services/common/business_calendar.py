"""The Swedish business calendar of Äldre direkt, in Europe/Stockholm.

A working day is a weekday that is neither a public holiday (lag 1989:253) nor midsommarafton,
julafton or nyårsafton, which the law treats like Sundays for deadlines (lag 1930:173). Opening hours
are Äldre direkt's own: 08:00–16:30 on weekdays and 08:00–16:00 on Fridays, shortened to 08:00–16:00
and 08:00–15:00 from May to August.

All arithmetic between instants is done in UTC: Python subtracts two datetimes that share a tzinfo as
wall-clock times, which is an hour off across a change to or from summer time.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from holidays.constants import DE_FACTO, PUBLIC

__all__ = [
    "STOCKHOLM",
    "OpeningHours",
    "deadline_after",
    "end_of_working_day",
    "ensure_aware",
    "is_open",
    "is_working_day",
    "next_working_day",
    "opening_hours",
    "to_local",
    "working_days_after",
    "working_days_between",
    "working_hours_between",
]

STOCKHOLM = ZoneInfo("Europe/Stockholm")

_SUMMER_MONTHS = range(5, 9)
_FRIDAY = 4
_SATURDAY = 5
_OPENS = time(8, 0)
_CLOSES_WEEKDAY = time(16, 30)
_CLOSES_FRIDAY = time(16, 0)
_CLOSES_SUMMER_WEEKDAY = time(16, 0)
_CLOSES_SUMMER_FRIDAY = time(15, 0)


@dataclass(frozen=True)
class OpeningHours:
    opens: time
    closes: time


@lru_cache(maxsize=256)
def _days_off(year: int) -> frozenset[date]:
    """Public holidays and the three eves of `year` (weekends are handled separately)."""
    calendar = holidays.country_holidays(
        "SE",
        years=year,
        # The eves live in the de_facto category; include_sundays=False keeps ordinary Sundays out so
        # the set holds only real holidays (older versions of the package added every Sunday).
        categories=(PUBLIC, DE_FACTO),
        include_sundays=False,
    )
    return frozenset(calendar.keys())


@lru_cache(maxsize=256)
def _sorted_weekday_days_off(year: int) -> tuple[date, ...]:
    return tuple(sorted(day for day in _days_off(year) if day.weekday() < _SATURDAY))


def _require_date(day: date) -> None:
    # A datetime is a date to the type checker, but which calendar day it falls on depends on the
    # zone; make the caller choose with to_local(at).date().
    if isinstance(day, datetime):
        raise TypeError("expected a date, got a datetime; pass to_local(at).date()")


def is_working_day(day: date) -> bool:
    _require_date(day)
    return day.weekday() < _SATURDAY and day not in _days_off(day.year)


def next_working_day(day: date) -> date:
    """The first working day strictly after `day`."""
    _require_date(day)
    candidate = day + timedelta(days=1)
    while not is_working_day(candidate):
        candidate += timedelta(days=1)
    return candidate


def working_days_after(day: date, n: int) -> date:
    """The `n`-th working day after `day`; for n == 0, `day` itself if it is a working day, else the next."""
    if n < 0:
        raise ValueError("n must be zero or more")
    _require_date(day)
    current = day if is_working_day(day) else next_working_day(day)
    if n > 0 and not is_working_day(day):
        # `current` is already the first working day after `day`.
        n -= 1
    for _ in range(n):
        current = next_working_day(current)
    return current


def _weekdays_in(start: date, end: date) -> int:
    """Monday–Friday dates in the half-open range [start, end)."""
    days = (end - start).days
    if days <= 0:
        return 0
    full_weeks, rest = divmod(days, 7)
    first = start.weekday()
    return full_weeks * 5 + sum(1 for offset in range(rest) if (first + offset) % 7 < _SATURDAY)


def _weekday_days_off_in(start: date, end: date) -> int:
    """Holidays and eves that fall on a weekday, in the half-open range [start, end)."""
    count = 0
    for year in range(start.year, end.year + 1):
        days = _sorted_weekday_days_off(year)
        count += bisect.bisect_left(days, end) - bisect.bisect_left(days, start)
    return count


def working_days_between(start: date, end: date) -> int:
    """How many working days lie in (start, end]; zero when `end` is not after `start`."""
    _require_date(start)
    _require_date(end)
    if end <= start:
        return 0
    first, stop = start + timedelta(days=1), end + timedelta(days=1)
    return _weekdays_in(first, stop) - _weekday_days_off_in(first, stop)


def opening_hours(day: date) -> OpeningHours | None:
    """Äldre direkt's opening hours on `day`, or None when it is not a working day."""
    if not is_working_day(day):
        return None
    friday = day.weekday() == _FRIDAY
    if day.month in _SUMMER_MONTHS:
        return OpeningHours(_OPENS, _CLOSES_SUMMER_FRIDAY if friday else _CLOSES_SUMMER_WEEKDAY)
    return OpeningHours(_OPENS, _CLOSES_FRIDAY if friday else _CLOSES_WEEKDAY)


def ensure_aware(at: datetime) -> datetime:
    """`at` unchanged, or ValueError if it has no time zone: a naive time is a bug, never a guess."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("expected a time-zone-aware datetime")
    return at


def to_local(at: datetime) -> datetime:
    return ensure_aware(at).astimezone(STOCKHOLM)


def _to_utc(at: datetime) -> datetime:
    return ensure_aware(at).astimezone(UTC)


def _local_instant(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=STOCKHOLM).astimezone(UTC)


def end_of_working_day(day: date) -> datetime:
    """The closing time of `day` in UTC; ValueError if `day` is not a working day."""
    hours = opening_hours(day)
    if hours is None:
        raise ValueError("not a working day")
    return _local_instant(day, hours.closes)


def is_open(at: datetime) -> bool:
    local = to_local(at)
    hours = opening_hours(local.date())
    return hours is not None and hours.opens <= local.time() < hours.closes


def _opening_seconds(day: date) -> int:
    hours = opening_hours(day)
    if hours is None:
        return 0
    return int((_local_instant(day, hours.closes) - _local_instant(day, hours.opens)).total_seconds())


@lru_cache(maxsize=256)
def _cumulative_opening_seconds(year: int) -> tuple[int, ...]:
    """Entry i: opening seconds of the year's first i days; the last entry is the whole year's."""
    first = date(year, 1, 1)
    days = (date(year + 1, 1, 1) - first).days
    seconds = (_opening_seconds(first + timedelta(days=offset)) for offset in range(days))
    return (0, *itertools.accumulate(seconds))


def _opening_seconds_in(start: date, end: date) -> int:
    """Opening seconds of the whole days in the half-open range [start, end)."""
    if end <= start:
        return 0

    def before(day: date) -> int:
        return _cumulative_opening_seconds(day.year)[day.timetuple().tm_yday - 1]

    total = -before(start)
    for year in range(start.year, end.year):
        total += _cumulative_opening_seconds(year)[-1]
    return total + before(end)


def _open_seconds_on(day: date, start: datetime, end: datetime) -> float:
    """Seconds of `day`'s opening time that fall inside [start, end), both in UTC."""
    hours = opening_hours(day)
    if hours is None:
        return 0.0
    overlap = min(end, _local_instant(day, hours.closes)) - max(start, _local_instant(day, hours.opens))
    return max(overlap.total_seconds(), 0.0)


def working_hours_between(start: datetime, end: datetime) -> float:
    """Hours of opening time between two aware instants; zero when `end` is not after `start`."""
    start_utc, end_utc = _to_utc(start), _to_utc(end)
    if end_utc <= start_utc:
        return 0.0
    first_day = start_utc.astimezone(STOCKHOLM).date()
    last_day = end_utc.astimezone(STOCKHOLM).date()
    if first_day == last_day:
        return _open_seconds_on(first_day, start_utc, end_utc) / 3600
    seconds = (
        _open_seconds_on(first_day, start_utc, end_utc)
        + _opening_seconds_in(first_day + timedelta(days=1), last_day)
        + _open_seconds_on(last_day, start_utc, end_utc)
    )
    return seconds / 3600


def deadline_after(received: datetime, working_days: int) -> datetime:
    """The closing time (UTC) of the `working_days`-th working day after the day `received` counts from.

    A contact received during opening hours counts from its own day, so 0 means "by closing time
    today" (acute cases). One received before opening on a working day counts from that day; one
    received after closing, on a weekend or on a holiday counts from the next working day, as if it
    had arrived when that day opened.
    """
    if working_days < 0:
        raise ValueError("working_days must be zero or more")
    local = to_local(received)
    day = local.date()
    hours = opening_hours(day)
    counts_from = day if hours is not None and local.time() < hours.closes else next_working_day(day)
    return end_of_working_day(working_days_after(counts_from, working_days))
