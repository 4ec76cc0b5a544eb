"""The control API: knobs, mutations, counts and the people tests may use."""

from __future__ import annotations

import asyncio

import httpx

from tests.upstreams.support import MODULE_LOOP, control
from upstreams import Running, instance_names, serve_all

pytestmark = MODULE_LOOP

BROMMA = "paraply-bromma"


async def test_the_control_api_wants_its_token(running: Running, client: httpx.AsyncClient):
    answer = await client.get(running.control_url + "/control/instances", headers={"X-Control-Token": "no"})

    assert answer.status_code == 401


async def test_knobs_are_read_set_and_reset(running: Running, client: httpx.AsyncClient):
    path = f"/control/instances/{BROMMA}/knobs"

    before = (await control(client, running, "GET", path)).json()
    changed = await control(client, running, "PUT", path, {"latency_ms": 5, "error_rate": 0.25})
    wrong = [
        await control(client, running, "PUT", path, {"error_rate": 2}),
        await control(client, running, "PUT", path, {"no_such_knob": 1}),
        await control(client, running, "PUT", path, {"api_key": "x"}),
        await control(client, running, "PUT", path, {"down": "yes"}),
    ]
    reset = await control(client, running, "DELETE", path)
    missing = await control(client, running, "GET", "/control/instances/paraply-atlantis/knobs")

    assert before["latency_ms"] == 0
    assert before["late_commit_seconds"] == 2
    assert changed.json() == {**before, "latency_ms": 5.0, "error_rate": 0.25}
    assert [w.status_code for w in wrong] == [400, 400, 400, 400]
    assert reset.json() == before
    assert missing.status_code == 404


async def test_every_mutation_answers_what_changed(running: Running, client: httpx.AsyncClient):
    path = f"/control/instances/{BROMMA}/mutations"
    ops = ["end_decision", "add_decision", "change_provider", "change_officer", "add_person", "move_person"]

    answers = [await control(client, running, "POST", path, {"op": op}) for op in ops]
    unknown = await control(client, running, "POST", path, {"op": "pay_invoice"})

    for answer in answers:
        assert answer.status_code == 200, answer.text
        for change in answer.json()["changes"]:
            entry = running.store(change["instance"]).get(change["id"])
            assert entry is not None
            assert entry.updated_at == change["updated_at"]
            assert entry.record.person_number == change["person_number"]
    moved = answers[-1].json()["changes"]
    assert moved[0]["instance"] == BROMMA
    assert moved[1]["instance"] != BROMMA
    left = running.store(BROMMA).get(moved[0]["id"])
    arrived = running.store(moved[1]["instance"]).get(moved[1]["id"])
    assert left is not None
    assert arrived is not None
    assert not left.record.current_decisions
    assert arrived.record.current_decisions
    assert unknown.status_code == 400


async def test_agresso_mutations_pay_and_issue_invoices(running: Running, client: httpx.AsyncClient):
    path = "/control/instances/agresso/mutations"
    unpaid = next(e.record for e in running.store("agresso").entries() if e.record.status == "overdue")

    paid = await control(
        client, running, "POST", path, {"op": "pay_invoice", "ocr": unpaid.ocr, "amount_ore": 100}
    )
    issued = await control(
        client, running, "POST", path, {"op": "add_invoice", "person_number": unpaid.person_number}
    )

    partly_entry = running.store("agresso").get(unpaid.record_id)
    new_entry = running.store("agresso").get(issued.json()["changes"][0]["id"])
    assert partly_entry is not None
    assert new_entry is not None
    partly, new = partly_entry.record, new_entry.record
    assert paid.status_code == 200
    assert partly.status == "partly_paid"
    assert partly.remaining_ore == unpaid.remaining_ore - 100
    assert new.customer_id == unpaid.customer_id
    assert new.status == "unpaid"
    assert new.record_id > max(i.record_id for i in running.care.invoices)


async def test_stats_count_requests_by_route_and_status(running: Running, client: httpx.AsyncClient):
    url = running.url(BROMMA) + "/paraply/v1/persons"
    some = running.store(BROMMA).all_ids()[:3]
    for record_id in some:
        await client.get(f"{url}/{record_id}", headers=running.headers(BROMMA))
    await client.get(f"{url}/p-nobody", headers=running.headers(BROMMA))

    stats = (await control(client, running, "GET", f"/control/instances/{BROMMA}/stats")).json()

    assert {"path": "/paraply/v1/persons/{record_id}", "status": 200, "count": 3} in stats["requests"]
    assert {"path": "/paraply/v1/persons/{record_id}", "status": 404, "count": 1} in stats["requests"]
    assert stats["records"] == len(running.store(BROMMA))
    assert stats["serving"] is True


async def test_people_are_listed_with_their_records_by_district_and_tag(
    running: Running, client: httpx.AsyncClient
):
    bromma = (await control(client, running, "GET", "/control/people?district=bromma&limit=5")).json()[
        "people"
    ]
    moved = (await control(client, running, "GET", "/control/people?tag=moved&limit=3")).json()["people"]
    payers = (await control(client, running, "GET", "/control/people?tag=fee_payer&limit=3")).json()["people"]

    assert len(bromma) == 5
    assert {p["instance"] for p in bromma} == {BROMMA}
    assert moved
    assert all(len(p["records"]) == 2 for p in moved)
    assert all(p["decided_fee_ore"] > 0 for p in payers)
    assert all(len(p["invoice_ids"]) >= 12 for p in payers)


async def test_the_mutator_changes_records_at_the_rate_asked(small_care):
    async with serve_all(care=small_care, changes_per_second=480, late_commit_seconds=0.1) as running:
        await asyncio.sleep(0.5)
        applied = sum(running.store(name).changes_applied for name in instance_names())

    # About 240 in the half second; the draws are random, so only the order of magnitude is checked.
    assert 60 < applied < 600


async def test_a_reset_brings_back_the_generated_records_and_default_knobs(
    running: Running, client: httpx.AsyncClient
):
    record_id = running.store(BROMMA).all_ids()[0]
    running.mutate(BROMMA, "delete_person", id=record_id)
    await running.set_knobs(BROMMA, down=True, latency_ms=50)

    answer = await control(client, running, "POST", "/control/reset")
    fetched = await client.get(
        running.url(BROMMA) + f"/paraply/v1/persons/{record_id}", headers=running.headers(BROMMA)
    )

    assert answer.json()["records"][BROMMA] == len(running.care.records_of("bromma"))
    assert fetched.status_code == 200
    assert running.knobs(BROMMA).latency_ms == 0
