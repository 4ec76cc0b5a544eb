"""Swedish person numbers (personnummer) and coordination numbers (samordningsnummer).

The rules are Skatteverket's: YYMMDD, a three-digit birth number (odd for men, even for women) and a
Luhn check digit over the ten-digit form. A coordination number adds 60 to the day. The separator is
"-" until the year the person turns 100 and "+" from that year on (18 § folkbokföringslagen), so a
ten-digit number only has a century relative to a reference date. We store the twelve-digit form.

The century is decided here rather than by the `personnummer` library because the library reads the
real clock, and a number parsed in a test, a replay or a batch job must mean the same thing every time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from services.common.errors import InvalidArgument

__all__ = [
    "INVALID_PERSON_NUMBER",
    "PERSON_NUMBER_PATTERN",
    "PersonNumber",
    "is_valid_person_number",
    "mask_person_number",
    "parse_person_number",
    "redact_person_numbers",
]

INVALID_PERSON_NUMBER = "INVALID_PERSON_NUMBER"

_STOCKHOLM = ZoneInfo("Europe/Stockholm")
_COORDINATION_DAY_OFFSET = 60
# Skatteverket stores the century as 18, 19 or 20; anything else is a typo, not a person.
_CENTURIES = frozenset({"18", "19", "20"})

_INPUT = re.compile(
    r"(?P<century>[0-9]{2})?(?P<date>[0-9]{6})(?P<sep>[-+]?)(?P<serial>[0-9]{3})(?P<check>[0-9])"
)

_FORMAT_DESCRIPTION = (
    "must be 10 or 12 digits, written YYMMDD-NNNC, YYMMDD+NNNC, YYMMDDNNNC, YYYYMMDD-NNNC or YYYYMMDDNNNC"
)

# How people type the parts apart: a space (ordinary, no-break, thin or narrow no-break), and for the
# separator a hyphen or any dash a word processor or phone keyboard puts in its place. Each may also
# come escaped, the way repr() writes the spaces (a %r log argument, a dict in a log's extra fields)
# and json.dumps() writes them and the dashes: "\xa0", "\u00a0", "\u2013".
_SPACE = r"(?:[ \u00a0\u2009\u202f]|\\(?:xa0|u00a0|u2009|u202f))"
_DASH = r"(?:[\-\u2010-\u2014\u2212]|\\u(?:201[0-4]|2212))"
# Between year, month and day at most one of them, or a dot ("1940.01.01").
_DATE_GAP = f"(?:{_SPACE}|{_DASH}|\\.)?"
# Between the date and the birth number "-", "+" or a dash, alone or with a space either side
# ("40 01 01 - 1230"), or just a space. At most three of them, so nothing here can backtrack far.
_SEPARATOR = f"{_SPACE}?(?:{_DASH}|\\+)?{_SPACE}?"
# The first digit comes before the look-behind so that the engine can skip straight to the next digit;
# with the look-behind first it would start the whole pattern at every character of a log line. A
# digit before the number that ends an escape ("\xa0", "\u2009") is not part of a longer run.
_START = r"[0-9](?:(?<![0-9]{2})|(?<=\\x[0-9a-f]{2}[0-9])|(?<=\\u[0-9a-f]{4}[0-9]))[0-9]"
# The two digits just read are the century if they are one Skatteverket uses and two more follow.
_YEAR_AFTER_CENTURY = r"(?:(?<=18|19|20)[0-9]{2})?"
_AFTER_YEAR = (
    f"{_DATE_GAP}(?:0[1-9]|1[0-2])"
    f"{_DATE_GAP}(?:0[1-9]|[12][0-9]|3[01]|6[1-9]|[78][0-9]|9[01])"
    f"{_SEPARATOR}[0-9]{{2}}{_SPACE}?[0-9]{{2}}"
    r"(?![0-9])"
)

# Candidates in free text, as people type them: 10 or 12 digits, with or without separators, with
# spaces, dots or dashes between year, month and day and a space inside the birth number
# ("1940 01 01-12 30"). A plausible month and day (or day + 60) keep dates, amounts and reference
# numbers that merely happen to have ten digits out; the look-arounds keep parts of longer digit runs
# (account numbers, international phone numbers) out. The Luhn check in `redact_person_numbers`
# decides the rest. Every part has a bounded length, so a match costs a bounded number of steps at
# each start and the scan of a line stays linear in its length.
PERSON_NUMBER_PATTERN: re.Pattern[str] = re.compile(_START + _YEAR_AFTER_CENTURY + _AFTER_YEAR)
# The same start read as ten digits, for someone born in a year like 1918 or 2019 whose first two
# digits also look like a century.
_TEN_DIGIT_CANDIDATE = re.compile(_START + _AFTER_YEAR)
# An escape inside a candidate is one of the gaps above; its hexadecimal digits are not the number's.
_NOT_A_DIGIT = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4})|[^0-9]")

_REDACTED = "[personnummer]"


def _today_in_stockholm() -> date:
    return datetime.now(_STOCKHOLM).date()


def _luhn_check_digit(nine_digits: str) -> int:
    """The check digit for YYMMDDNNN: weights 2, 1, 2, ... from the left, digit sums of the products."""
    total = 0
    for index, char in enumerate(nine_digits):
        product = (ord(char) - 48) * (2 if index % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return (10 - total % 10) % 10


def _passes_luhn(ten_digits: str) -> bool:
    return _luhn_check_digit(ten_digits[:9]) == ord(ten_digits[9]) - 48


def _birth_date(year: int, month: int, day: int) -> date | None:
    """The birth date the digits stand for, undoing the coordination offset; None if there is none."""
    if day > _COORDINATION_DAY_OFFSET:
        day -= _COORDINATION_DAY_OFFSET
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _turns_100_by(birth_year: int, today: date) -> bool:
    # Skatteverket switches the separator at the turn of the year, not on the birthday.
    return today.year - birth_year >= 100


@dataclass(frozen=True)
class PersonNumber:
    """A valid person or coordination number in its twelve-digit form, YYYYMMDDNNNC."""

    digits: str

    def __post_init__(self) -> None:
        digits = self.digits
        if len(digits) != 12 or not digits.isascii() or not digits.isdigit():
            raise ValueError("a PersonNumber holds exactly 12 digits")
        if digits[:2] not in _CENTURIES:
            raise ValueError("a PersonNumber's century must be 18, 19 or 20")
        if _birth_date(int(digits[:4]), int(digits[4:6]), int(digits[6:8])) is None:
            raise ValueError("a PersonNumber's date part is not a date")
        if digits[8:11] == "000":
            raise ValueError("a PersonNumber's birth number is 001 to 999")
        if not _passes_luhn(digits[2:]):
            raise ValueError("a PersonNumber's check digit is wrong")

    @property
    def birth_date(self) -> date:
        born = _birth_date(int(self.digits[:4]), int(self.digits[4:6]), int(self.digits[6:8]))
        assert born is not None  # checked in __post_init__
        return born

    @property
    def is_coordination_number(self) -> bool:
        return int(self.digits[6:8]) > _COORDINATION_DAY_OFFSET

    @property
    def sex(self) -> Literal["female", "male"]:
        return "male" if int(self.digits[10]) % 2 == 1 else "female"

    def ten_digit(self, today: date | None = None) -> str:
        """YYMMDD-NNNC, or YYMMDD+NNNC from the year the person turns 100."""
        reference = today if today is not None else _today_in_stockholm()
        separator = "+" if _turns_100_by(int(self.digits[:4]), reference) else "-"
        return f"{self.digits[2:8]}{separator}{self.digits[8:]}"

    def __str__(self) -> str:
        return self.digits

    def __repr__(self) -> str:
        # A repr ends up in tracebacks and debug logs, where a full person number must never appear.
        return f"PersonNumber({mask_person_number(self)!r})"


def parse_person_number(raw: str, *, today: date | None = None, field: str = "person_number") -> PersonNumber:
    """Validate a person or coordination number and return it in twelve-digit form.

    Ten-digit input gets its century from `today` (default: today in Stockholm): with "-" or no
    separator the person turns at most 99 this year, with "+" at least 100. Twelve-digit input keeps
    its century and may carry "-" (or "+" for someone who turns 100 or more this year) before the
    birth number. Raises InvalidArgument naming `field` with reason INVALID_PERSON_NUMBER.
    """

    def invalid(description: str) -> InvalidArgument:
        return InvalidArgument.field(field, description, reason=INVALID_PERSON_NUMBER)

    reference = today if today is not None else _today_in_stockholm()
    match = _INPUT.fullmatch(raw.strip())
    if match is None:
        raise invalid(_FORMAT_DESCRIPTION)
    century, date_part, separator = match["century"], match["date"], match["sep"]
    serial, check = match["serial"], match["check"]
    year_in_century, month, day = int(date_part[:2]), int(date_part[2:4]), int(date_part[4:])

    if century is None:
        # Without a separator a centenarian looks like a newborn; read it as "-", as every system
        # that drops the separator does.
        latest_year = reference.year - 100 if separator == "+" else reference.year
        year = latest_year - (latest_year - year_in_century) % 100
    else:
        if century not in _CENTURIES:
            raise invalid("the century must be 18, 19 or 20")
        year = int(century) * 100 + year_in_century

    if not 1 <= month <= 12:
        raise invalid("the month must be 01 to 12")
    if day == 0 or (31 < day <= _COORDINATION_DAY_OFFSET) or day > _COORDINATION_DAY_OFFSET + 31:
        raise invalid("the day must be 01 to 31, or 61 to 91 for a samordningsnummer")
    born = _birth_date(year, month, day)
    if born is None:
        # No year in the message: error messages reach logs, and a birth date is personal data.
        description = "the date part is not a calendar date"
        if century is None:
            description += " in the century the separator gives"
        if day > _COORDINATION_DAY_OFFSET:
            description += " (for a samordningsnummer, day minus 60)"
        raise invalid(description)
    if serial == "000":
        raise invalid("the birth number must be 001 to 999")
    if not _passes_luhn(date_part + serial + check):
        raise invalid("the check digit is wrong")
    if century is not None and separator == "+" and not _turns_100_by(year, reference):
        raise invalid("'+' is only written for a person who turns 100 or more this year")
    if born > reference:
        raise invalid("the birth date is in the future")
    # Every check of PersonNumber's own was made above; constructing it again would repeat them all.
    number = object.__new__(PersonNumber)
    object.__setattr__(number, "digits", f"{year:04d}{date_part[2:]}{serial}{check}")
    return number


def is_valid_person_number(raw: str, *, today: date | None = None) -> bool:
    try:
        parse_person_number(raw, today=today)
    except InvalidArgument:
        return False
    return True


def mask_person_number(raw_or_pn: str | PersonNumber) -> str:
    """YYYYMMDD-**** for display and logs; something that is not a valid number is masked whole."""
    if isinstance(raw_or_pn, PersonNumber):
        number = raw_or_pn
    else:
        try:
            number = parse_person_number(raw_or_pn)
        except InvalidArgument:
            return "********-****"
    return f"{number.digits[:8]}-****"


def _person_number_end(text: str, candidate: re.Match[str]) -> int | None:
    """Where the person number that starts with `candidate` ends, or None if it is none."""
    digits = _NOT_A_DIGIT.sub("", candidate.group())
    if _passes_luhn(digits[-10:]):
        return candidate.end()
    if len(digits) == 12:
        shorter = _TEN_DIGIT_CANDIDATE.match(text, candidate.start())
        if shorter is not None and _passes_luhn(_NOT_A_DIGIT.sub("", shorter.group())):
            return shorter.end()
    return None


def _person_number_spans(text: str) -> Iterator[tuple[int, int]]:
    # Each start of a digit run is tried, also inside a candidate that failed or passed: digits typed
    # just before a number ("06 06 12 01 01 1234") can make a candidate that swallows its beginning.
    # Every start is tried once (a twelve-digit candidate's twice), so this stays linear too.
    position = 0
    while (candidate := PERSON_NUMBER_PATTERN.search(text, position)) is not None:
        end = _person_number_end(text, candidate)
        if end is not None:
            yield candidate.start(), end
        position = candidate.start() + 1


def redact_person_numbers(text: str) -> str:
    """Replace every Luhn-valid person-number-shaped run of digits in `text` with "[personnummer]".

    Candidates that overlap are replaced together, with one "[personnummer]".
    """
    pieces: list[str] = []
    copied_to = 0
    for start, end in _person_number_spans(text):
        if start < copied_to:
            copied_to = max(copied_to, end)
            continue
        pieces += (text[copied_to:start], _REDACTED)
        copied_to = end
    if not pieces:
        return text
    pieces.append(text[copied_to:])
    return "".join(pieces)
