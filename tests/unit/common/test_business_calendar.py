from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.business_calendar import (
    STOCKHOLM,
    OpeningHours,
    deadline_after,
    end_of_working_day,
    ensure_aware,
    is_open,
    is_working_day,
    next_working_day,
    opening_hours,
    to_local,
    working_days_after,
    working_days_between,
    working_hours_between,
)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=STOCKHOLM)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- the holiday package, as we rely on it ---------------------------------------------------------------


def test_holiday_package_keeps_the_three_eves_out_of_the_public_category():
    public = holidays.country_holidays("SE", years=2026, categories=("public",), include_sundays=False)
    both = holidays.country_holidays(
        "SE", years=2026, categories=("public", "de_facto"), include_sundays=False
    )
    eves = {date(2026, 6, 19), date(2026, 12, 24), date(2026, 12, 31)}
    assert not eves & set(public)
    assert eves <= set(both)
    # An ordinary Sunday is no holiday in its own right.
    assert date(2026, 3, 15) not in both


# --- working days ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "why"),
    [
        (date(2026, 1, 1), "nyårsdagen"),
        (date(2026, 1, 6), "trettondedag jul, a Tuesday"),
        (date(2026, 4, 3), "långfredagen"),
        (date(2026, 4, 6), "annandag påsk"),
        (date(2026, 5, 1), "första maj"),
        (date(2026, 5, 14), "Kristi himmelsfärdsdag"),
        (date(2026, 6, 6), "nationaldagen, a Saturday"),
        (date(2026, 6, 19), "midsommarafton"),
        (date(2026, 12, 24), "julafton"),
        (date(2026, 12, 25), "juldagen"),
        (date(2026, 12, 31), "nyårsafton"),
        (date(2028, 6, 6), "nationaldagen on a Tuesday"),
        (date(2026, 3, 14), "a Saturday"),
        (date(2026, 3, 15), "a Sunday"),
    ],
)
def test_holidays_eves_and_weekends_are_not_working_days(day: date, why: str):
    assert not is_working_day(day), why
    assert opening_hours(day) is None, why


@pytest.mark.parametrize(
    ("day", "why"),
    [
        (date(2026, 1, 5), "trettondagsafton is no day off"),
        (date(2026, 4, 2), "skärtorsdagen is no day off"),
        (date(2026, 4, 30), "valborgsmässoafton is no day off"),
        (date(2026, 5, 25), "annandag pingst stopped being a holiday in 2005"),
        (date(2026, 6, 18), "the day before midsommarafton"),
        (date(2026, 10, 30), "allhelgonaafton is no day off"),
        (date(2026, 12, 23), "the day before julafton"),
        (date(2026, 3, 10), "an ordinary Tuesday"),
    ],
)
def test_ordinary_weekdays_and_unofficial_eves_are_working_days(day: date, why: str):
    assert is_working_day(day), why


def test_national_day_2026_falls_on_a_saturday():
    assert date(2026, 6, 6).weekday() == 5


def test_a_datetime_is_refused_where_a_calendar_day_is_meant():
    with pytest.raises(TypeError):
        is_working_day(local(2026, 3, 10, 12))


def test_next_working_day_skips_easter():
    assert next_working_day(date(2026, 4, 2)) == date(2026, 4, 7)


def test_next_working_day_skips_midsummer():
    assert next_working_day(date(2026, 6, 18)) == date(2026, 6, 22)


def test_next_working_day_skips_christmas_and_new_year():
    assert next_working_day(date(2026, 12, 23)) == date(2026, 12, 28)
    assert next_working_day(date(2026, 12, 30)) == date(2027, 1, 4)


def test_next_working_day_is_strictly_after_a_working_day():
    assert next_working_day(date(2026, 3, 10)) == date(2026, 3, 11)
    assert next_working_day(date(2026, 3, 13)) == date(2026, 3, 16)


def test_zero_working_days_after_a_working_day_is_that_day():
    assert working_days_after(date(2026, 3, 10), 0) == date(2026, 3, 10)


def test_zero_working_days_after_a_holiday_is_the_next_working_day():
    assert working_days_after(date(2026, 12, 24), 0) == date(2026, 12, 28)


def test_working_days_after_a_saturday_count_monday_as_the_first():
    assert working_days_after(date(2026, 3, 14), 1) == date(2026, 3, 16)
    assert working_days_after(date(2026, 3, 14), 2) == date(2026, 3, 17)


def test_two_working_days_over_christmas_and_new_year():
    assert working_days_after(date(2026, 12, 23), 2) == date(2026, 12, 29)
    assert working_days_after(date(2026, 12, 29), 2) == date(2027, 1, 4)


def test_negative_number_of_working_days_is_refused():
    with pytest.raises(ValueError, match="zero or more"):
        working_days_after(date(2026, 3, 10), -1)


def test_working_days_between_counts_the_end_but_not_the_start():
    assert working_days_between(date(2026, 3, 9), date(2026, 3, 13)) == 4
    assert working_days_between(date(2026, 3, 9), date(2026, 3, 9)) == 0


def test_working_days_between_skips_christmas_and_new_year():
    # 28, 29, 30 December 2026 and 4 January 2027.
    assert working_days_between(date(2026, 12, 23), date(2027, 1, 4)) == 4


def test_working_days_between_a_later_start_and_an_earlier_end_is_zero():
    assert working_days_between(date(2026, 3, 13), date(2026, 3, 9)) == 0


def test_working_days_of_a_whole_year():
    # 261 weekdays in 2026, of which ten are holidays or eves: 1/1, 6/1, 3/4, 6/4, 1/5, 14/5, 19/6,
    # 24/12, 25/12 and 31/12.
    assert working_days_between(date(2025, 12, 31), date(2026, 12, 31)) == 251


# --- opening hours ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "closes"),
    [
        (date(2026, 3, 10), time(16, 30)),  # Tuesday, spring
        (date(2026, 3, 13), time(16, 0)),  # Friday, spring
        (date(2026, 4, 30), time(16, 30)),  # Thursday, last day before summer hours
        (date(2026, 5, 4), time(16, 0)),  # Monday, summer
        (date(2026, 5, 8), time(15, 0)),  # Friday, summer
        (date(2026, 8, 31), time(16, 0)),  # Monday, last day of summer hours
        (date(2026, 9, 1), time(16, 30)),  # Tuesday, autumn
        (date(2026, 9, 4), time(16, 0)),  # Friday, autumn
    ],
)
def test_opening_hours_follow_the_season_and_the_weekday(day: date, closes: time):
    assert opening_hours(day) == OpeningHours(opens=time(8, 0), closes=closes)


def test_end_of_working_day_is_closing_time_in_utc_in_winter_and_summer():
    assert end_of_working_day(date(2026, 1, 15)) == utc(2026, 1, 15, 15, 30)
    assert end_of_working_day(date(2026, 6, 17)) == utc(2026, 6, 17, 14, 0)
    assert end_of_working_day(date(2026, 1, 15)).tzinfo is UTC


def test_end_of_working_day_follows_the_change_to_summer_time():
    # Summer time starts on the last Sunday of March, 29 March 2026.
    assert end_of_working_day(date(2026, 3, 27)) == utc(2026, 3, 27, 15, 0)
    assert end_of_working_day(date(2026, 3, 30)) == utc(2026, 3, 30, 14, 30)


def test_end_of_working_day_follows_the_change_to_winter_time():
    # Summer time ends on the last Sunday of October, 25 October 2026.
    assert end_of_working_day(date(2026, 10, 23)) == utc(2026, 10, 23, 14, 0)
    assert end_of_working_day(date(2026, 10, 26)) == utc(2026, 10, 26, 15, 30)


def test_end_of_working_day_on_a_holiday_is_refused():
    with pytest.raises(ValueError, match="not a working day"):
        end_of_working_day(date(2026, 12, 24))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (local(2026, 3, 10, 7, 59), False),
        (local(2026, 3, 10, 8, 0), True),
        (local(2026, 3, 10, 16, 29), True),
        (local(2026, 3, 10, 16, 30), False),
        (local(2026, 3, 13, 15, 59), True),
        (local(2026, 3, 13, 16, 0), False),
        (local(2026, 6, 12, 14, 59), True),
        (local(2026, 6, 12, 15, 0), False),
        (local(2026, 3, 14, 10, 0), False),
        (local(2026, 12, 24, 10, 0), False),
        (utc(2026, 1, 15, 7, 0), True),  # 08:00 in Stockholm
        (utc(2026, 6, 15, 6, 30), True),  # 08:30 in Stockholm, summer time
        (utc(2026, 6, 15, 14, 0), False),  # 16:00 in Stockholm, summer hours are over
    ],
)
def test_is_open_during_opening_hours_in_stockholm_whatever_the_zone_given(at: datetime, expected: bool):
    assert is_open(at) is expected


def test_naive_datetimes_are_refused():
    naive = datetime(2026, 3, 10, 10, 0)
    with pytest.raises(ValueError, match="aware"):
        ensure_aware(naive)
    with pytest.raises(ValueError, match="aware"):
        is_open(naive)
    with pytest.raises(ValueError, match="aware"):
        deadline_after(naive, 2)
    with pytest.raises(ValueError, match="aware"):
        working_hours_between(naive, utc(2026, 3, 11))


def test_ensure_aware_returns_an_aware_datetime_unchanged():
    at = utc(2026, 3, 10, 9)
    assert ensure_aware(at) is at


def test_to_local_shows_utc_in_stockholm_time():
    assert to_local(utc(2026, 1, 15, 7, 0)).replace(tzinfo=None) == datetime(2026, 1, 15, 8, 0)
    assert to_local(utc(2026, 7, 15, 7, 0)).replace(tzinfo=None) == datetime(2026, 7, 15, 9, 0)


# --- working hours ---------------------------------------------------------------------------------------


def test_working_hours_of_a_winter_week():
    assert working_hours_between(local(2026, 1, 12), local(2026, 1, 19)) == 4 * 8.5 + 8


def test_working_hours_of_a_summer_week():
    assert working_hours_between(local(2026, 6, 8), local(2026, 6, 15)) == 4 * 8 + 7


def test_working_hours_within_one_day():
    assert working_hours_between(local(2026, 3, 10, 7), local(2026, 3, 10, 9, 30)) == 1.5
    assert working_hours_between(local(2026, 3, 10, 17), local(2026, 3, 10, 20)) == 0.0


def test_working_hours_over_the_weekend_summer_time_starts():
    # 66 hours of wall clock, 65 real hours, of which two are opening hours.
    assert working_hours_between(local(2026, 3, 27, 15), local(2026, 3, 30, 9)) == 2.0


def test_working_hours_do_not_depend_on_the_zone_the_instants_are_given_in():
    start, end = local(2026, 3, 27, 15), local(2026, 3, 30, 9)
    assert working_hours_between(start.astimezone(UTC), end.astimezone(UTC)) == 2.0


def test_working_hours_over_easter():
    # Thursday 2 April 15:00 to Tuesday 7 April 10:00: 1.5 hours on Thursday, 2 on Tuesday.
    assert working_hours_between(local(2026, 4, 2, 15), local(2026, 4, 7, 10)) == 3.5


def test_working_hours_of_a_whole_year_equal_the_sum_of_its_days():
    expected_seconds = 0
    day = date(2026, 1, 1)
    while day.year == 2026:
        hours = opening_hours(day)
        if hours is not None:
            expected_seconds += (hours.closes.hour * 60 + hours.closes.minute - 8 * 60) * 60
        day += timedelta(days=1)
    assert working_hours_between(local(2026, 1, 1), local(2027, 1, 1)) == expected_seconds / 3600


def test_working_hours_of_a_reversed_span_are_zero():
    assert working_hours_between(local(2026, 3, 11), local(2026, 3, 10)) == 0.0


# --- deadlines -------------------------------------------------------------------------------------------


def test_forwarded_acute_case_is_due_the_same_working_day():
    assert deadline_after(local(2026, 1, 14, 10), 0) == local(2026, 1, 14, 16, 30)


def test_forwarded_case_is_due_at_closing_two_working_days_later():
    assert deadline_after(local(2026, 1, 14, 10), 2) == local(2026, 1, 16, 16, 0)


def test_case_received_before_opening_counts_from_the_same_day():
    assert deadline_after(local(2026, 1, 14, 6, 45), 0) == local(2026, 1, 14, 16, 30)
    assert deadline_after(local(2026, 1, 14, 6, 45), 2) == local(2026, 1, 16, 16, 0)


def test_case_received_at_closing_time_counts_from_the_next_working_day():
    assert deadline_after(local(2026, 1, 14, 16, 30), 0) == local(2026, 1, 15, 16, 30)


def test_case_received_on_a_saturday_counts_from_monday():
    assert deadline_after(local(2026, 1, 17, 11), 0) == local(2026, 1, 19, 16, 30)
    assert deadline_after(local(2026, 1, 17, 11), 2) == local(2026, 1, 21, 16, 30)


def test_case_forwarded_after_hours_on_a_friday_before_a_holiday_monday():
    # Friday 28 April 2028 after its 16:00 closing; Monday 1 May 2028 is första maj, and May brings
    # summer hours.
    assert deadline_after(local(2028, 4, 28, 16, 15), 0) == local(2028, 5, 2, 16, 0)
    assert deadline_after(local(2028, 4, 28, 16, 15), 2) == local(2028, 5, 4, 16, 0)


def test_case_forwarded_after_hours_before_christmas_weekend():
    # Friday 22 December 2028; Monday and Tuesday are juldagen and annandag jul.
    assert deadline_after(local(2028, 12, 22, 17), 2) == local(2028, 12, 29, 16, 0)


def test_case_forwarded_on_midsommarafton_counts_from_the_monday_after():
    assert deadline_after(local(2026, 6, 19, 10), 1) == local(2026, 6, 23, 16, 0)


def test_acute_case_on_a_summer_friday_is_due_at_three():
    assert deadline_after(local(2026, 7, 10, 14), 0) == local(2026, 7, 10, 15, 0)


def test_deadline_over_the_change_to_summer_time():
    assert deadline_after(local(2026, 3, 26, 10), 2) == utc(2026, 3, 30, 14, 30)


def test_deadline_over_the_change_to_winter_time():
    assert deadline_after(local(2026, 10, 22, 10), 2) == utc(2026, 10, 26, 15, 30)


def test_case_received_late_sunday_utc_which_is_monday_in_stockholm_counts_from_monday():
    assert deadline_after(utc(2026, 1, 18, 23, 30), 0) == local(2026, 1, 19, 16, 30)


def test_deadline_is_given_in_utc():
    deadline = deadline_after(local(2026, 1, 14, 10), 2)
    assert deadline.tzinfo is UTC


def test_negative_deadline_is_refused():
    with pytest.raises(ValueError, match="zero or more"):
        deadline_after(local(2026, 1, 14, 10), -1)


# --- properties ------------------------------------------------------------------------------------------

_DAYS = st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31))
_COUNTS = st.integers(min_value=0, max_value=400)
_INSTANTS = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2090, 12, 31),
    timezones=st.sampled_from([UTC, STOCKHOLM]),
    allow_imaginary=False,
)


@given(day=_DAYS, n=_COUNTS)
def test_working_days_after_always_lands_on_a_working_day(day: date, n: int):
    assert is_working_day(working_days_after(day, n))


@given(day=_DAYS.filter(is_working_day), n=_COUNTS)
def test_working_days_between_undoes_working_days_after(day: date, n: int):
    assert working_days_between(day, working_days_after(day, n)) == n


@given(day=_DAYS, n=_COUNTS)
def test_working_days_after_grows_with_n(day: date, n: int):
    sooner, later = working_days_after(day, n), working_days_after(day, n + 1)
    if n == 0 and not is_working_day(day):
        # From a day off, both 0 and 1 mean the first working day after it.
        assert later == sooner
    else:
        assert later == next_working_day(sooner)


@given(start=_DAYS, length=st.integers(min_value=-10, max_value=800))
def test_working_days_between_matches_counting_day_by_day(start: date, length: int):
    end = start + timedelta(days=length)
    expected = sum(1 for offset in range(1, length + 1) if is_working_day(start + timedelta(days=offset)))
    assert working_days_between(start, end) == expected


@given(received=_INSTANTS, n=st.integers(min_value=0, max_value=30))
def test_deadline_is_a_closing_time_on_a_working_day_never_before_receipt(received: datetime, n: int):
    deadline = deadline_after(received, n)
    assert deadline.utcoffset() == timedelta(0)
    day = to_local(deadline).date()
    hours = opening_hours(day)
    assert hours is not None
    assert to_local(deadline).time() == hours.closes
    assert deadline > received


@given(received=_INSTANTS, n=st.integers(min_value=0, max_value=30))
def test_one_more_working_day_moves_the_deadline_to_the_next_working_day(received: datetime, n: int):
    sooner, later = to_local(deadline_after(received, n)), to_local(deadline_after(received, n + 1))
    assert later.date() == next_working_day(sooner.date())


@given(received=_INSTANTS)
def test_acute_case_is_due_the_same_day_only_if_received_before_closing_on_a_working_day(received: datetime):
    received_local = to_local(received)
    hours = opening_hours(received_local.date())
    before_closing = hours is not None and received_local.time() < hours.closes
    due = to_local(deadline_after(received, 0)).date()
    if before_closing:
        assert due == received_local.date()
    else:
        assert due == next_working_day(received_local.date())


@given(
    start=_INSTANTS,
    first=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=500)),
    second=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=500)),
)
def test_working_hours_add_up_over_consecutive_spans(start: datetime, first: timedelta, second: timedelta):
    middle, end = start + first, start + first + second
    whole = working_hours_between(start, end)
    parts = working_hours_between(start, middle) + working_hours_between(middle, end)
    assert whole == pytest.approx(parts, abs=1e-9)
    assert 0.0 <= whole <= (end - start).total_seconds() / 3600


@settings(max_examples=40)
@given(
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)).map(
        lambda at: at.replace(second=0, microsecond=0, tzinfo=UTC)
    ),
    minutes=st.integers(min_value=0, max_value=3 * 24 * 60),
)
def test_working_hours_equal_the_minutes_during_which_we_are_open(start: datetime, minutes: int):
    open_minutes = sum(1 for m in range(minutes) if is_open(start + timedelta(minutes=m)))
    assert working_hours_between(start, start + timedelta(minutes=minutes)) == pytest.approx(
        open_minutes / 60
    )
