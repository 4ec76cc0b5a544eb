"""Conversions every servicer needs between protobuf and domain values: times, enums, dates, months.

Every Timestamp, Date and month a caller sends passes through here and is checked against the years the
system deals in: a value beyond them (a Timestamp past year 9999, nanos outside their range, month
9999-12, whose next month does not exist) is a field violation, never an error deep in the arithmetic.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2

from services.common.errors import InvalidArgument, quoted

E = TypeVar("E", bound=StrEnum)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The years a time, date or month may fall in. Wide enough for every birth, decision and invoice the
# city has, narrow enough that a day or a month either side still exists.
FIRST_YEAR = 1900
LAST_YEAR = 2199
_EARLIEST = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
_LATEST = datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC)
_EARLIEST_SECONDS = int((_EARLIEST - _EPOCH).total_seconds())
_LATEST_SECONDS = int((_LATEST - _EPOCH).total_seconds())
_YEARS = f"{FIRST_YEAR} to {LAST_YEAR}"


def timestamp(moment: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp of an aware datetime (a naive one is taken as local time, as astimezone does).

    Computed from the timedelta since the epoch: Timestamp.FromDatetime costs several times more, and a
    page of cases carries hundreds of times.
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.astimezone(UTC)
    since = moment - _EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)


def from_timestamp(stamp: Timestamp, field: str, *, required: bool = True) -> datetime | None:
    """An aware UTC datetime; an unset Timestamp is refused, or None when not required."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        if required:
            raise InvalidArgument.field(field, "is required")
        return None
    if not 0 <= stamp.nanos <= 999_999_999:
        raise InvalidArgument.field(field, "nanos must be 0 to 999,999,999")
    if not _EARLIEST_SECONDS <= stamp.seconds < _LATEST_SECONDS:
        raise InvalidArgument.field(field, f"must fall in the years {_YEARS}")
    return stamp.ToDatetime(tzinfo=UTC)


def date_message(day: date | None) -> date_pb2.Date | None:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day) if day else None


def from_date_message(message: date_pb2.Date, field: str) -> date:
    """A whole calendar date (google.type.Date with year, month and day all set)."""
    if not FIRST_YEAR <= message.year <= LAST_YEAR:
        raise InvalidArgument.field(f"{field}.year", f"must be {_YEARS}")
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        raise InvalidArgument.field(field, "is not a valid date") from None


def parse_month(text: str, field: str) -> date:
    """The first day of a month written "YYYY-MM"."""
    raw = text.strip()
    if len(raw) != 7 or raw[4] != "-" or not (raw[:4].isdigit() and raw[5:].isdigit()) or not raw.isascii():
        raise InvalidArgument.field(field, f"{quoted(text)} is not a month like 2026-03")
    year, month = int(raw[:4]), int(raw[5:])
    if not 1 <= month <= 12:
        raise InvalidArgument.field(field, f"{quoted(text)} is not a month like 2026-03")
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidArgument.field(field, f"must be a month of the years {_YEARS}")
    return date(year, month, 1)


def to_enum(
    kind: type[E], prefix: str, value: int, descriptor: Any, field: str, *, required: bool = False
) -> E | None:
    """The domain enum for a proto enum number ("PREFIX_NAME" ↔ "name"); UNSPECIFIED is None or refused."""
    if value == 0:
        if required:
            raise InvalidArgument.field(field, "is required")
        return None
    try:
        name = descriptor.Name(value)
    except ValueError:
        raise InvalidArgument.field(field, f"{value} is not a known value") from None
    return kind(name.removeprefix(prefix).lower())


_enum_numbers: dict[tuple[int, str, StrEnum], int] = {}


def from_enum(value: StrEnum | None, prefix: str, descriptor: Any) -> Any:
    if value is None:
        return 0
    key = (id(descriptor), prefix, value)
    number = _enum_numbers.get(key)
    if number is None:
        number = _enum_numbers[key] = descriptor.Value(prefix + value.value.upper())
    return number
