"""Agresso's deferrals of payment (anstånd), as Äldre direkt asks for them: up to 30 days on a care-fee
invoice that is not paid and not deferred already [000].

A request carries an Idempotency-Key. The first answer for a key is kept and given again for the same
request (200 instead of 201); the same key with another request is refused (422), since it can only be a
client's mistake. Requests that cannot be read (400), name no invoice (404) or find it locked by a change
still committing (409) keep nothing, so a corrected retry with the same key is answered afresh.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

from synthcity.care import InvoiceKind, invoice_status
from upstreams.world import AgressoInstance, World

__all__ = ["MAX_DAYS", "DeferralRefused", "request_deferral"]

MAX_DAYS = 30
_MAX_KEY = 200
_MAX_TEXT = 500


class DeferralRefused(Exception):
    """A request answered with an error rather than a decision."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _fingerprint(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _checked(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise DeferralRefused(400, "invalid_argument", "the body must be a JSON object")
    for key in ("invoice_ref", "reason", "requested_by"):
        value = body.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_TEXT:
            raise DeferralRefused(
                400, "invalid_argument", f"{key} must be a text of 1 to {_MAX_TEXT} characters"
            )
    case = body.get("case")
    if case is not None and (not isinstance(case, str) or len(case) > _MAX_TEXT):
        raise DeferralRefused(400, "invalid_argument", "case must be a text")
    days = body.get("days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise DeferralRefused(400, "invalid_argument", f"days must be a whole number from 1 to {MAX_DAYS}")
    return body


def request_deferral(
    world: World, agresso: AgressoInstance, key: str | None, body: object
) -> tuple[int, dict[str, Any]]:
    """The status and answer for a deferral request; DeferralRefused for one that gets no decision."""
    if key is None or not 0 < len(key) <= _MAX_KEY:
        raise DeferralRefused(
            400, "invalid_argument", f"an Idempotency-Key header of 1 to {_MAX_KEY} characters"
        )
    desk = agresso.deferrals
    earlier = desk.answers.get(key)
    if earlier is not None:
        fingerprint, first_answer = earlier
        if isinstance(body, dict) and _fingerprint(body) == fingerprint:
            return 200, first_answer
        raise DeferralRefused(422, "idempotency_key_reused", "the key was used for another request")
    request = _checked(body)
    found = agresso.store.find("invoice_ref", request["invoice_ref"])
    if not found:
        raise DeferralRefused(404, "not_found", "no invoice has that reference")
    invoice = found[0].record
    if agresso.store.is_pending(invoice.record_id):
        # As a row locked by a transaction not yet committed: the client may try again.
        raise DeferralRefused(409, "locked", "the invoice is being changed; try again")
    refusal = ""
    if invoice.remaining_ore <= 0:
        refusal = "paid"
    elif invoice.kind is not InvoiceKind.CARE_FEE:
        refusal = "not_care_fee"
    elif invoice.record_id in desk.deferred:
        refusal = "already_deferred"
    desk.issued += 1
    answer: dict[str, Any] = {
        "deferral_id": f"def-{desk.issued:06d}",
        "status": "refused" if refusal else "accepted",
        "refusal_reason": refusal,
        "invoice_id": invoice.record_id,
        "due_date": invoice.due_date.isoformat(),
    }
    if not refusal:
        due = invoice.due_date + timedelta(days=request["days"])
        status = invoice_status(
            amount_ore=invoice.amount_ore,
            remaining_ore=invoice.remaining_ore,
            due_date=due,
            today=world.today(),
        )
        agresso.store.put(dataclasses.replace(invoice, due_date=due, status=status))
        desk.deferred.add(invoice.record_id)
        answer["due_date"] = due.isoformat()
    desk.answers[key] = (_fingerprint(request), answer)
    return 201, answer
