"""The records as the stand-ins send them: JSON objects in the shape `upstreams/README.md` gives, times in
RFC 3339 UTC with microseconds, and the ways a record can arrive broken when a malformed one is asked for.
"""

from __future__ import annotations

import copy
import zlib
from datetime import UTC, datetime
from typing import Any

from synthcity.care import CareRecord, Income, Invoice, from_microseconds, to_microseconds

__all__ = [
    "INVOICE_MALFORMATIONS",
    "PERSON_MALFORMATIONS",
    "format_time",
    "invoice_document",
    "malformation_for",
    "malformed",
    "parse_time",
    "person_document",
]

Document = dict[str, Any]

# Every malformation keeps `id` and `updated_at` readable: the feed is ordered by them, and a source whose
# cursor fields are broken is a broken feed, not a broken record.
PERSON_MALFORMATIONS = ("missing_field", "wrong_type", "bad_person_number")
INVOICE_MALFORMATIONS = ("missing_field", "wrong_type", "bad_person_number", "bad_ocr")


def format_time(microseconds: int) -> str:
    # isoformat is done in C, five times as fast as strftime; "+00:00" becomes the "Z" the README shows.
    return from_microseconds(microseconds).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 time with a zone; ValueError otherwise."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a time without a zone")
    return to_microseconds(moment.astimezone(UTC))


def person_document(record: CareRecord, updated_at: str) -> Document:
    officer = record.responsible_officer
    fee = record.fee_basis
    return {
        "id": record.record_id,
        "updated_at": updated_at,
        "person_number": record.person_number,
        "name": {"given": record.given_name, "family": record.family_name},
        "address": {"street": record.street, "postal_code": record.postal_code, "city": record.postal_town},
        "protected_identity": record.protected_identity,
        "responsible_officer": {
            "officer_id": officer.officer_id,
            "team": officer.team,
            "since": officer.since.isoformat(),
        },
        "decisions": [
            {
                "id": decision.decision_id,
                "insats": decision.insats.value,
                "law": decision.law.value,
                "scope": dict(decision.scope),
                "valid_from": decision.valid_from.isoformat(),
                "valid_to": decision.valid_to.isoformat() if decision.valid_to else None,
                "status": decision.status.value,
                "provider_id": decision.provider_id,
            }
            for decision in record.decisions
        ],
        "providers": [
            {
                "id": provider.provider_id,
                "name": provider.name,
                "kind": provider.kind.value,
                "phone": provider.phone,
                "email": provider.email,
            }
            for provider in record.providers
        ],
        "fee_basis": None
        if fee is None
        else {
            "incomes": _incomes(fee.incomes),
            "housing_cost_ore": fee.housing_cost_ore,
            "household": fee.household.value,
            "partner_incomes": [
                {"kind": i.kind.value, "monthly_ore": i.monthly_ore} for i in fee.partner_incomes
            ],
            "decided_fee_ore": fee.decided_fee_ore,
            "decided_from": fee.decided_from.isoformat(),
            "invoice_recipient": None
            if fee.invoice_recipient is None
            else {
                "name": fee.invoice_recipient.name,
                "street": fee.invoice_recipient.street,
                "postal_code": fee.invoice_recipient.postal_code,
                "city": fee.invoice_recipient.city,
            },
        },
        "extra": {key: None if value is None else dict(value) for key, value in record.extra.items()},
    }


def _incomes(incomes: tuple[Income, ...]) -> list[dict[str, Any]]:
    return [{"kind": income.kind.value, "monthly_ore": income.monthly_ore} for income in incomes]


def invoice_document(invoice: Invoice, updated_at: str) -> Document:
    return {
        "id": invoice.record_id,
        "updated_at": updated_at,
        "customer_id": invoice.customer_id,
        "person_number": invoice.person_number,
        "voucher_no": invoice.voucher_no,
        "invoice_ref": invoice.invoice_ref,
        "ocr": invoice.ocr,
        "kind": invoice.kind.value,
        "period": invoice.period,
        "amount_ore": invoice.amount_ore,
        "remaining_ore": invoice.remaining_ore,
        "due_date": invoice.due_date.isoformat(),
        "status": invoice.status.value,
    }


def malformation_for(record_id: str, updated_us: int, seed: int, rate: float, kinds: tuple[str, ...]) -> str:
    """The malformation this version of a record has at `rate`, or "".

    Drawn from the version rather than at random, so that reading the same version again gives the same
    answer, as a source's stored record would; the record's next version draws again.
    """
    if rate <= 0:
        return ""
    draw = zlib.crc32(f"{seed}|{record_id}|{updated_us}".encode())
    if draw / 2**32 >= rate:
        return ""
    return kinds[draw % len(kinds)]


def malformed(document: Document, kind: str) -> Document:
    """A copy of `document` broken in the way `kind` names."""
    broken = copy.deepcopy(document)
    invoice = "ocr" in broken
    if kind == "missing_field":
        for key in ("amount_ore", "ocr") if invoice else ("person_number", "decisions"):
            broken.pop(key, None)
    elif kind == "wrong_type":
        if invoice:
            # As a CSV export would have it: kronor with a decimal comma, as text.
            broken["amount_ore"] = f"{broken['amount_ore'] / 100:.2f}".replace(".", ",")
            broken["due_date"] = "30/11"
        else:
            broken["protected_identity"] = "nej"
            broken["decisions"] = {"insats": "hemtjanst"}
    elif kind == "bad_person_number":
        digits = broken["person_number"]
        broken["person_number"] = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    elif kind == "bad_ocr":
        digits = broken["ocr"]
        broken["ocr"] = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    else:
        raise ValueError(f"no malformation {kind!r}")
    return broken
