"""From which month a change of circumstances counts (SoL (2025:400) 32 kap. 10 §)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.fees.model import effective_month


@pytest.mark.parametrize(
    ("changed", "whole_month", "counts_from"),
    [
        (date(2025, 3, 14), False, date(2025, 4, 1)),  # a move mid-month counts from the next month
        (date(2025, 3, 1), True, date(2025, 3, 1)),  # a pension raised from the 1st counts that month
        (date(2025, 3, 1), False, date(2025, 4, 1)),  # the 1st, but not the whole month: the next
        (date(2025, 3, 31), False, date(2025, 4, 1)),
        (date(2025, 12, 31), False, date(2026, 1, 1)),  # over the year end
        (date(2025, 12, 1), True, date(2025, 12, 1)),
        (date(2024, 2, 29), False, date(2024, 3, 1)),  # a leap day
        (date(2025, 6, 30), False, date(2025, 7, 1)),  # into the new act's first month
        (date(2025, 3, 14), True, date(2025, 3, 1)),  # the caller knows it covers the month
    ],
)
def test_a_change_counts_from_the_month_after_or_that_month_if_it_covers_all_of_it(
    changed: date, whole_month: bool, counts_from: date
):
    assert effective_month(changed, whole_month) == counts_from


def test_a_change_in_the_last_month_of_the_calendar_has_no_next_month():
    with pytest.raises(ValueError, match="year"):
        effective_month(date(9999, 12, 5), False)


@given(st.dates(date(1990, 1, 1), date(2100, 12, 31)), st.booleans())
def test_the_month_counted_is_a_first_day_never_later_than_the_next_month(changed: date, whole_month: bool):
    counted = effective_month(changed, whole_month)
    assert counted.day == 1
    if whole_month:
        assert counted == changed.replace(day=1)
    else:
        assert changed < counted <= changed + timedelta(days=31)
        assert (counted - timedelta(days=1)).month == changed.month
