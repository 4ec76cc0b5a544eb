"""Valid (and deliberately invalid) person numbers for tests, computed here, not by the code under test."""

from __future__ import annotations

from datetime import date


def luhn_check_digit(nine_digits: str) -> int:
    total = 0
    for index, char in enumerate(nine_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return (10 - total % 10) % 10


def person_number(born: date, *, serial: str = "238", coordination: bool = False) -> str:
    """A valid twelve-digit person number, or coordination number (day + 60), for someone born on `born`."""
    day = born.day + (60 if coordination else 0)
    ten = f"{born:%y%m}{day:02d}{serial}"
    return f"{born.year // 100}{ten}{luhn_check_digit(ten)}"


def with_wrong_check_digit(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)
