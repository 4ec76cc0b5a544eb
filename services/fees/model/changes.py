"""From which month a change of circumstances (a new pension, a move, a new decision) changes the fee.

SoL (2025:400) 32 kap. 10 §: a change applies from the month after it happened, or from that same month
if it covers the whole of it. Whether it covers the whole month is a fact of the case (a pension raised
from the first of the month does; a move on the 14th does not), so the caller says so.
"""

from __future__ import annotations

from datetime import date

__all__ = ["effective_month"]


def effective_month(change_date: date, covers_whole_month: bool) -> date:
    """The first day of the first month whose fee the change affects."""
    if covers_whole_month:
        return change_date.replace(day=1)
    if change_date.month == 12:
        return date(change_date.year + 1, 1, 1)
    return date(change_date.year, change_date.month + 1, 1)
