"""Deferrals out of the shared outbox, handed to the finance system (Agresso) over HTTP.

A deferral is queued in its own transaction (store.FeesRepository.add_deferral) under a delivery key fixed
then; the outbox hands it here, and this posts it to Agresso's deferral desk with that key as the
Idempotency-Key. However often it is sent (a crash after Agresso answered, a claim that ran out), Agresso
acts on it once and answers the first answer again. Its answer (accepted with the new due date, or refused
with a reason) is recorded on the deferral.

- 201 or 200: answered; the deferral is accepted or refused as Agresso says.
- 5xx, 429, 409 (the invoice is locked by a change still committing), 401/403 (a key being rotated), no
  connection, a timeout: tried again later with backoff; nothing was decided.
- 400, 404, 422 and other 4xx: Agresso will never accept this request; the deferral is refused with the
  error's code, and the message is left dead for an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from services.common.outbox import DeliveryFailed, OutboxMessage
from services.common.secrets import Secret
from services.fees.model.deferral import Deferral, FinanceAnswer, deferral_of_handoff

log = logging.getLogger("aldredirekt.fees.finance")

DEFERRALS_PATH = "/agresso/v1/deferrals"
# Agresso keeps at most this much of a text field; the whole reason stays with the deferral here.
FINANCE_TEXT_LIMIT = 500
_RETRIED = frozenset({401, 403, 408, 409, 425, 429})


@dataclass(frozen=True)
class FinanceSettings:
    url: str
    api_key: Secret
    timeout_seconds: float = 10.0


def finance_request(deferral: Deferral) -> dict[str, Any]:
    """The request Agresso's deferral desk is sent: the same body every time, as its idempotency needs."""

    def cut(text: str) -> str:
        return text if len(text) <= FINANCE_TEXT_LIMIT else text[: FINANCE_TEXT_LIMIT - 1] + "…"

    return {
        "invoice_ref": deferral.invoice_number,
        "days": deferral.days,
        "reason": cut(deferral.reason),
        "requested_by": cut(deferral.requested_by),
        "case": deferral.case,
    }


class FinanceRefused(DeliveryFailed):
    """The finance system will never accept the request: the deferral is refused with `refusal_reason`."""

    def __init__(self, reason: str, refusal_reason: str):
        super().__init__(reason, permanent=True)
        self.refusal_reason = refusal_reason


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("error") if isinstance(body, dict) else None
    if isinstance(code, str) and code.isascii() and code.replace("_", "").isalnum() and len(code) <= 60:
        return code
    return f"http_{response.status_code}"


class FinanceDesk:
    """Agresso's deferral desk over HTTP, with the API key read each time (a rotated file is picked up)."""

    def __init__(self, settings: FinanceSettings, *, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self._client = httpx.AsyncClient(
            base_url=settings.url.rstrip("/"),
            timeout=httpx.Timeout(settings.timeout_seconds, connect=min(settings.timeout_seconds, 3.0)),
            transport=transport,
        )

    async def close(self) -> None:
        await self._client.aclose()

    def _key(self) -> str:
        try:
            return self.settings.api_key.read()
        except OSError:
            raise DeliveryFailed("the finance system's API key cannot be read") from None

    async def request_deferral(self, *, key: str, request: dict[str, Any]) -> FinanceAnswer:
        try:
            response = await self._client.post(
                DEFERRALS_PATH,
                json=request,
                headers={"X-API-Key": self._key(), "Idempotency-Key": key},
            )
        except httpx.TimeoutException:
            raise DeliveryFailed("the finance system did not answer in time") from None
        except httpx.TransportError as error:
            raise DeliveryFailed(f"the finance system cannot be reached: {type(error).__name__}") from None
        status = response.status_code
        if status in (200, 201):
            return _answer(response)
        if status >= 500 or status in _RETRIED:
            raise DeliveryFailed(f"the finance system answered HTTP {status} ({_error_code(response)})")
        code = _error_code(response)
        raise FinanceRefused(f"the finance system refused the request: HTTP {status} ({code})", code)


def _answer(response: httpx.Response) -> FinanceAnswer:
    try:
        body = response.json()
    except ValueError:
        raise DeliveryFailed("the finance system's answer is not JSON") from None
    if not isinstance(body, dict) or body.get("status") not in ("accepted", "refused"):
        raise DeliveryFailed("the finance system's answer has no status accepted or refused")
    due: date | None = None
    raw_due = body.get("due_date")
    if isinstance(raw_due, str):
        try:
            due = date.fromisoformat(raw_due)
        except ValueError:
            due = None
    accepted = body["status"] == "accepted"
    if accepted and due is None:
        raise DeliveryFailed("the finance system accepted without saying the new due date")
    reason = body.get("refusal_reason")
    reference = body.get("deferral_id")
    return FinanceAnswer(
        accepted=accepted,
        refusal_reason=str(reason)[:200] if isinstance(reason, str) else "",
        due_date=due,
        reference=str(reference)[:100] if isinstance(reference, str) else "",
    )


class DeferralDelivery:
    """Delivers the outbox's deferrals: loads each (`load`), sends it, and records the answer (`record`)."""

    def __init__(
        self,
        desk: FinanceDesk,
        *,
        load: Callable[[str], Awaitable[Deferral | None]],
        record: Callable[[str, FinanceAnswer], Awaitable[None]],
    ):
        self.desk = desk
        self.load = load
        self.record = record

    async def __call__(self, message: OutboxMessage) -> None:
        deferral_id = deferral_of_handoff(message.payload)
        deferral = await self.load(deferral_id)
        if deferral is None:
            raise DeliveryFailed("the deferral of this message is not stored", permanent=True)
        try:
            answer = await self.desk.request_deferral(
                key=message.delivery_key, request=finance_request(deferral)
            )
        except FinanceRefused as refused:
            await self.record(
                deferral_id,
                FinanceAnswer(accepted=False, refusal_reason=refused.refusal_reason, due_date=None),
            )
            log.warning("deferral %s refused by the finance system for good: %s", deferral_id, refused.reason)
            raise
        await self.record(deferral_id, answer)
