"""Conversions every servicer needs between protobuf and domain values: times, enums, dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from aldredirekt.common.v1 import common_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.errors import InvalidArgument

E = TypeVar("E", bound=StrEnum)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    if stamp.seconds == 0 and stamp.nanos == 0:
        if required:
            raise InvalidArgument.field(field, "is required")
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def date_message(day: date | None) -> common_pb2.Date | None:
    return common_pb2.Date(year=day.year, month=day.month, day=day.day) if day else None


def from_date_message(message: common_pb2.Date, field: str) -> date:
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        raise InvalidArgument.field(field, "is not a valid date") from None


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
