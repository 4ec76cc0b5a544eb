"""OCR references (OCR-nummer) on Bankgirot's terms: what an invoice's payment is matched by.

An OCR reference has 2 to 25 digits. Its last digit is a check digit by the modulus-10 ("Luhn") method,
computed from the right: the digit next to the check digit is weighted 2, the next 1, then 2 again, and the
digits of the products are summed. Bankgirot's receivers choose one of four control levels:

- soft: the check digit is computed but a wrong one is let through (the payer is warned);
- hard: the check digit must be right;
- variable length: hard, and the second-to-last digit is the reference's total length modulo 10 (the
  length digit, itself covered by the check digit);
- fixed length: hard, and the reference has one of one or two agreed lengths.

People type references with spaces and hyphens ("1000 1232 0261-0"); they are accepted and dropped.
python-stdnum has the Luhn check but none of the length rules, so they are here.
"""

from __future__ import annotations

from enum import StrEnum

from services.common.errors import InvalidArgument

MIN_DIGITS = 2
MAX_DIGITS = 25
# Longer than this is refused unread: even with a separator between every digit, no reference is longer.
_MAX_TYPED = 60


class OcrControl(StrEnum):
    SOFT = "soft"
    HARD = "hard"
    VARIABLE_LENGTH = "variable_length"
    FIXED_LENGTH = "fixed_length"


def luhn_check_digit(payload: str) -> int:
    """The mod-10 check digit for `payload` (digits only), weights 2, 1, 2, … from the right."""
    total = 0
    for index, char in enumerate(reversed(payload)):
        product = (ord(char) - 48) * (2 if index % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return (10 - total % 10) % 10


def length_digit(total_length: int) -> int:
    return total_length % 10


def generate_ocr(base: str, *, with_length_digit: bool = True) -> str:
    """An OCR reference for `base` (digits): with the length digit, then the check digit."""
    if not base.isascii() or not base.isdigit():
        raise ValueError("an OCR base is digits only")
    total = len(base) + (2 if with_length_digit else 1)
    if not MIN_DIGITS <= total <= MAX_DIGITS:
        raise ValueError(f"an OCR reference has {MIN_DIGITS} to {MAX_DIGITS} digits")
    payload = base + (str(length_digit(total)) if with_length_digit else "")
    return payload + str(luhn_check_digit(payload))


def parse_ocr(
    raw: str,
    *,
    field: str = "ocr",
    control: OcrControl = OcrControl.VARIABLE_LENGTH,
    fixed_lengths: tuple[int, ...] = (),
) -> str:
    """The reference's digits, checked at `control`; InvalidArgument naming `field` otherwise."""
    if len(raw) > _MAX_TYPED:
        raise InvalidArgument.field(field, f"is longer than an OCR reference can be ({MAX_DIGITS} digits)")
    digits = raw.replace(" ", "").replace("-", "")
    if not digits.isascii() or not digits.isdigit():
        raise InvalidArgument.field(field, "may hold only digits, spaces and hyphens")
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise InvalidArgument.field(
            field, f"must have {MIN_DIGITS} to {MAX_DIGITS} digits, got {len(digits)}"
        )
    if control is OcrControl.SOFT:
        return digits
    if luhn_check_digit(digits[:-1]) != ord(digits[-1]) - 48:
        raise InvalidArgument.field(field, "the check digit is wrong: a digit may be mistyped")
    if control is OcrControl.VARIABLE_LENGTH and length_digit(len(digits)) != ord(digits[-2]) - 48:
        raise InvalidArgument.field(field, "the length digit does not match: a digit may be missing or extra")
    if control is OcrControl.FIXED_LENGTH:
        if not fixed_lengths:
            raise ValueError("the fixed-length control needs the agreed lengths")
        if len(digits) not in fixed_lengths:
            lengths = " or ".join(str(n) for n in fixed_lengths)
            raise InvalidArgument.field(field, f"must have {lengths} digits")
    return digits


def is_valid_ocr(raw: str, *, control: OcrControl = OcrControl.VARIABLE_LENGTH) -> bool:
    try:
        parse_ocr(raw, control=control)
    except InvalidArgument:
        return False
    return True
