"""Deferrals of payment on Agresso, with Idempotency-Key semantics."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx

from synthcity.care import Invoice, InvoiceKind
from tests.upstreams.support import MODULE_LOOP
from upstreams import Running

pytestmark = MODULE_LOOP

DEFERRALS = "/agresso/v1/deferrals"


def _invoice(running: Running, *, kind: InvoiceKind, paid: bool) -> Invoice:
    invoices: list[Invoice] = [entry.record for entry in running.store("agresso").entries()]
    return next(i for i in invoices if i.kind is kind and (i.remaining_ore == 0) == paid)


def _request(invoice: Invoice, days: int = 14) -> dict[str, Any]:
    return {
        "invoice_ref": invoice.invoice_ref,
        "days": days,
        "reason": "the pension comes late this month",
        "requested_by": "agent-17",
        "case": "cases/12",
    }


async def _defer(client: httpx.AsyncClient, running: Running, key: str | None, body: Any) -> httpx.Response:
    headers = running.headers("agresso") | ({"Idempotency-Key": key} if key else {})
    return await client.post(running.url("agresso") + DEFERRALS, json=body, headers=headers)


async def test_the_same_key_and_request_get_the_first_answer_again(
    running: Running, client: httpx.AsyncClient
):
    invoice = _invoice(running, kind=InvoiceKind.CARE_FEE, paid=False)

    first = await _defer(client, running, "key-1", _request(invoice))
    again = await _defer(client, running, "key-1", _request(invoice))
    stored = running.store("agresso").get(invoice.record_id)

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert first.json()["status"] == "accepted"
    assert first.json()["refusal_reason"] == ""
    assert stored is not None
    assert stored.record.due_date == invoice.due_date + timedelta(days=14)
    assert date.fromisoformat(first.json()["due_date"]) == stored.record.due_date
    assert stored.record.updated_at > invoice.updated_at
    # Moved to the end of the feed, as every changed record is.
    last, _ = running.store("agresso").changes(None, len(running.store("agresso")))
    assert last[-1].record.record_id == invoice.record_id


async def test_the_same_key_with_another_request_is_refused_with_422(
    running: Running, client: httpx.AsyncClient
):
    invoice = _invoice(running, kind=InvoiceKind.CARE_FEE, paid=False)

    await _defer(client, running, "key-2", _request(invoice, days=10))
    other = await _defer(client, running, "key-2", _request(invoice, days=20))

    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"


async def test_paid_other_and_already_deferred_invoices_are_refused(
    running: Running, client: httpx.AsyncClient
):
    paid = _invoice(running, kind=InvoiceKind.CARE_FEE, paid=True)
    other = _invoice(running, kind=InvoiceKind.OTHER, paid=False)
    open_fee = _invoice(running, kind=InvoiceKind.CARE_FEE, paid=False)

    answers = [
        await _defer(client, running, "paid", _request(paid)),
        await _defer(client, running, "other", _request(other)),
        await _defer(client, running, "first", _request(open_fee)),
        await _defer(client, running, "second", _request(open_fee, days=5)),
    ]

    assert [a.status_code for a in answers] == [201, 201, 201, 201]
    assert [(a.json()["status"], a.json()["refusal_reason"]) for a in answers] == [
        ("refused", "paid"),
        ("refused", "not_care_fee"),
        ("accepted", ""),
        ("refused", "already_deferred"),
    ]
    refused = running.store("agresso").get(paid.record_id)
    assert refused is not None
    assert refused.record == paid


async def test_a_request_that_cannot_be_read_is_a_400_and_keeps_nothing(
    running: Running, client: httpx.AsyncClient
):
    invoice = _invoice(running, kind=InvoiceKind.CARE_FEE, paid=False)

    too_long = await _defer(client, running, "key-3", _request(invoice, days=31))
    no_key = await _defer(client, running, None, _request(invoice))
    unknown = await _defer(client, running, "key-4", {**_request(invoice), "invoice_ref": "F1999-000001"})
    corrected = await _defer(client, running, "key-3", _request(invoice, days=30))

    assert (too_long.status_code, no_key.status_code, unknown.status_code) == (400, 400, 404)
    assert corrected.status_code == 201
    assert corrected.json()["status"] == "accepted"
