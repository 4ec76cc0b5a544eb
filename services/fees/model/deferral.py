"""A deferral of payment (anstånd) on a care-fee invoice: at most 30 days, on an invoice not yet paid, once
per invoice, as the interface agreement between Äldre direkt and the districts lets the contact center grant
it [seed 000, "Gränssnitt Kontaktcentertjänst Äldre direkt"]. It is recorded here (who, when, why, in which
case) and handed to the finance system, whose answer (accepted with a new due date, or refused with a reason)
becomes its state.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument

__all__ = [
    "MAX_DEFERRAL_DAYS",
    "MAX_REASON",
    "Deferral",
    "DeferralState",
    "FinanceAnswer",
    "InvoiceFacts",
    "already_deferred",
    "check_request",
    "deferral_of_handoff",
    "is_deferral_id",
    "refusal_for",
]

# The agreement's limit [seed 000]; the proto's contract says the same.
MAX_DEFERRAL_DAYS = 30
MAX_REASON = 1000
_ID = re.compile(r"^[0-9a-f]{32}$")


class DeferralState(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REFUSED = "refused"


@dataclass(frozen=True)
class InvoiceFacts:
    """What the deferral needs of an invoice, as the mirror shows it."""

    invoice_number: str
    person_number: str
    care_fee: bool
    amount_ore: int
    remaining_ore: int
    due_date: date

    @property
    def paid(self) -> bool:
        return self.remaining_ore <= 0


@dataclass(frozen=True)
class Deferral:
    deferral_id: str
    invoice_number: str
    person_number: str
    case: str  # "cases/{case}"
    days: int
    reason: str
    requested_by: str
    # What is deferred: the amount that remained to pay when it was asked for.
    amount_ore: int
    original_due_date: date
    state: DeferralState
    refusal_reason: str
    new_due_date: date | None
    # The finance system's own reference for its answer.
    finance_reference: str
    create_time: datetime
    update_time: datetime

    @property
    def name(self) -> str:
        return f"deferrals/{self.deferral_id}"

    @property
    def delivery_key(self) -> str:
        """The key the hand-off to finance travels under, the same however often it is sent."""
        return f"fees-deferral-{self.deferral_id}"

    def handoff(self) -> bytes:
        """What the outbox keeps until the finance system has the deferral: which one it is. What is sent
        is built from the stored deferral, whose request never changes once made."""
        return json.dumps({"deferral": self.deferral_id}).encode()

    def answered(self, answer: FinanceAnswer, now: datetime) -> Deferral:
        """The deferral once the finance system has answered."""
        if answer.accepted:
            return replace(
                self,
                state=DeferralState.ACCEPTED,
                refusal_reason="",
                new_due_date=answer.due_date,
                finance_reference=answer.reference,
                update_time=now,
            )
        return replace(
            self,
            state=DeferralState.REFUSED,
            refusal_reason=answer.refusal_reason or "refused",
            new_due_date=None,
            finance_reference=answer.reference,
            update_time=now,
        )


@dataclass(frozen=True)
class FinanceAnswer:
    accepted: bool
    refusal_reason: str
    due_date: date | None
    reference: str = ""


def deferral_of_handoff(payload: bytes) -> str:
    """The id of the deferral an outbox message hands to the finance system."""
    return str(json.loads(payload)["deferral"])


def is_deferral_id(text: str) -> bool:
    return bool(_ID.match(text))


def check_request(*, days: int, reason: str) -> str:
    """The reason as it is kept (trimmed); InvalidArgument naming every field that is wrong."""
    violations = []
    if not 1 <= days <= MAX_DEFERRAL_DAYS:
        violations.append(
            FieldViolation("deferral.days", f"a deferral is 1 to {MAX_DEFERRAL_DAYS} days, not {days}")
        )
    trimmed = reason.strip()
    if not trimmed:
        violations.append(FieldViolation("deferral.reason", "is required: say why the payment is deferred"))
    elif len(trimmed) > MAX_REASON:
        violations.append(
            FieldViolation(
                "deferral.reason", f"must be at most {MAX_REASON:,} characters, got {len(trimmed):,}"
            )
        )
    if violations:
        raise InvalidArgument(violations)
    return trimmed


def refusal_for(invoice: InvoiceFacts) -> FailedPrecondition | None:
    """Why the invoice cannot be deferred, or None when it can (as far as this service knows)."""
    name = f"invoices/{invoice.invoice_number}"
    if invoice.paid:
        return FailedPrecondition(
            f"{name} is paid: there is nothing to defer", reason="INVOICE_PAID", metadata={"invoice": name}
        )
    if not invoice.care_fee:
        return FailedPrecondition(
            f"{name} is not a care-fee invoice: Äldre direkt may defer only vård- och omsorgsavgift",
            reason="INVOICE_NOT_CARE_FEE",
            metadata={"invoice": name},
        )
    return None


def already_deferred(invoice_number: str) -> FailedPrecondition:
    name = f"invoices/{invoice_number}"
    return FailedPrecondition(
        f"{name} has been deferred already: an invoice is deferred once",
        reason="ALREADY_DEFERRED",
        metadata={"invoice": name},
    )
