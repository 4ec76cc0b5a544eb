"""Faults on demand: refused credentials, rotation, throttling, errors, latency, a closed listener, a hung
request and malformed records."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from services.common.errors import InvalidArgument
from services.common.personnummer import parse_person_number
from tests.upstreams.support import MODULE_LOOP, control
from upstreams import Running
from upstreams.credentials import basic_authorization

pytestmark = MODULE_LOOP

BROMMA = "paraply-bromma"
CHANGES = "/paraply/v1/persons/changes"


async def test_wrong_or_missing_credentials_are_refused_with_401(running: Running, client: httpx.AsyncClient):
    other_district = running.headers("paraply-farsta")
    wrong_password = {"Authorization": basic_authorization("aldredirekt-bromma", "guess")}

    answers = [
        await client.get(running.url(BROMMA) + CHANGES),
        await client.get(running.url(BROMMA) + CHANGES, headers=wrong_password),
        await client.get(running.url(BROMMA) + CHANGES, headers=other_district),
        await client.get(running.url("agresso") + "/agresso/v1/transactions/ids", headers={"X-API-Key": "x"}),
        await client.get(
            running.url("agresso") + "/agresso/v1/transactions/ids", headers=running.headers(BROMMA)
        ),
    ]

    assert [a.status_code for a in answers] == [401] * 5
    assert answers[0].json()["error"] == "unauthenticated"
    assert answers[0].headers["WWW-Authenticate"].startswith("Basic")


async def test_a_rotated_password_refuses_the_old_one_and_admits_the_new(
    running: Running, client: httpx.AsyncClient
):
    old = running.headers(BROMMA)
    shown = await control(
        client, running, "PUT", f"/control/instances/{BROMMA}/knobs", {"password": "new-one"}
    )
    new = {"Authorization": basic_authorization("aldredirekt-bromma", "new-one")}

    with_old = await client.get(running.url(BROMMA) + CHANGES, headers=old)
    with_new = await client.get(running.url(BROMMA) + CHANGES, headers=new)
    await running.reset_knobs(BROMMA)
    old_again = await client.get(running.url(BROMMA) + CHANGES, headers=old)

    assert shown.json()["password"] == "(rotated)"
    assert (with_old.status_code, with_new.status_code, old_again.status_code) == (401, 200, 200)
    assert running.headers(BROMMA) == old


async def test_a_rotated_api_key_is_what_agresso_takes(running: Running, client: httpx.AsyncClient):
    await running.set_knobs("agresso", api_key="rotated-key")
    url = running.url("agresso") + "/agresso/v1/transactions/ids"

    assert (await client.get(url, headers=running.credentials.headers("agresso"))).status_code == 401
    assert (await client.get(url, headers={"X-API-Key": "rotated-key"})).status_code == 200
    assert running.headers("agresso") == {"X-API-Key": "rotated-key"}


async def test_a_throttled_request_gets_429_with_retry_after(running: Running, client: httpx.AsyncClient):
    await running.set_knobs(BROMMA, throttle_rate=1.0, retry_after_s=7)

    answer = await client.get(running.url(BROMMA) + CHANGES, headers=running.headers(BROMMA))

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["error"] == "throttled"
    assert "X-Server-Time" in answer.headers


async def test_an_error_rate_of_one_answers_500_or_503_every_time(
    running: Running, client: httpx.AsyncClient
):
    await running.set_knobs(BROMMA, error_rate=1.0)

    statuses = {
        (await client.get(running.url(BROMMA) + CHANGES, headers=running.headers(BROMMA))).status_code
        for _ in range(20)
    }

    assert statuses == {500, 503}


async def test_latency_delays_every_answer(running: Running, client: httpx.AsyncClient):
    await running.set_knobs(BROMMA, latency_ms=150, jitter_ms=50)

    started = time.perf_counter()
    answer = await client.get(
        running.url(BROMMA) + CHANGES, params={"limit": 1}, headers=running.headers(BROMMA)
    )

    assert answer.status_code == 200
    assert 0.15 <= time.perf_counter() - started < 2


async def test_a_down_instance_refuses_connections_and_comes_back_on_the_same_port(
    running: Running, client: httpx.AsyncClient
):
    url = running.url(BROMMA) + CHANGES
    headers = running.headers(BROMMA)
    assert (await client.get(url, headers=headers)).status_code == 200

    await control(client, running, "PUT", f"/control/instances/{BROMMA}/knobs", {"down": True})
    with pytest.raises(httpx.ConnectError):
        await client.get(url, headers=headers)
    others = await client.get(
        running.url("paraply-farsta") + CHANGES, headers=running.headers("paraply-farsta")
    )
    await control(client, running, "DELETE", f"/control/instances/{BROMMA}/knobs")

    assert others.status_code == 200
    assert (await client.get(url, headers=headers)).status_code == 200


async def test_setting_down_on_the_knobs_directly_closes_the_listener_too(
    running: Running, client: httpx.AsyncClient
):
    knobs = running.knobs(BROMMA)
    knobs.down = True
    await running.instance(BROMMA).settle()

    with pytest.raises(httpx.ConnectError):
        await client.get(running.url(BROMMA) + CHANGES)
    knobs.down = False
    await running.instance(BROMMA).settle()
    assert (
        await client.get(running.url(BROMMA) + CHANGES, headers=running.headers(BROMMA))
    ).status_code == 200


async def test_a_hung_request_is_not_answered_before_the_client_gives_up(
    running: Running, client: httpx.AsyncClient
):
    await running.set_knobs(BROMMA, hang=True)

    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        await client.get(running.url(BROMMA) + CHANGES, headers=running.headers(BROMMA), timeout=0.4)
    waited = time.perf_counter() - started
    unanswered = await _unanswered(client, running)
    await running.set_knobs(BROMMA, hang=False)
    after = await client.get(running.url(BROMMA) + CHANGES, headers=running.headers(BROMMA))

    assert waited >= 0.4
    assert unanswered == [{"path": CHANGES, "status": 0, "count": 1}]
    assert after.status_code == 200


async def _unanswered(client: httpx.AsyncClient, running: Running) -> list[dict[str, Any]]:
    """The requests counted as never answered, once the server has seen the client leave."""
    for _ in range(100):
        stats = await control(client, running, "GET", f"/control/instances/{BROMMA}/stats")
        unanswered = [r for r in stats.json()["requests"] if r["status"] == 0]
        if unanswered:
            return unanswered
        await asyncio.sleep(0.01)
    return []


async def test_a_malformed_rate_of_one_breaks_every_record_the_same_way_on_every_read(
    running: Running, client: httpx.AsyncClient
):
    await running.set_knobs(BROMMA, malformed_rate=1.0)
    url = running.url(BROMMA) + CHANGES
    headers = running.headers(BROMMA)

    first = (await client.get(url, params={"limit": 40}, headers=headers)).json()
    second = (await client.get(url, params={"limit": 40}, headers=headers)).json()
    await running.set_knobs(BROMMA, malformed_rate=0.0)
    sound = (await client.get(url, params={"limit": 40}, headers=headers)).json()

    assert first == second
    assert all(_broken(item) for item in first["items"])
    assert not any(_broken(item) for item in sound["items"])
    # The cursor fields stay readable, so the feed goes on past a broken record.
    assert [(i["id"], i["updated_at"]) for i in first["items"]] == [
        (i["id"], i["updated_at"]) for i in sound["items"]
    ]
    assert first["next"] == sound["next"]


async def test_a_record_stored_malformed_is_served_malformed_until_it_changes(
    running: Running, client: httpx.AsyncClient
):
    record_id = running.store("agresso").all_ids()[3]
    running.mutate("agresso", "malformed_record", id=record_id, kind="bad_ocr")
    url = running.url("agresso") + f"/agresso/v1/transactions/{record_id}"

    broken = (await client.get(url, headers=running.headers("agresso"))).json()
    running.mutate("agresso", "tie", ids=[record_id])
    mended = (await client.get(url, headers=running.headers("agresso"))).json()

    stored = running.store("agresso").get(record_id)
    assert stored is not None
    assert broken["ocr"] != stored.record.ocr
    assert mended["ocr"] == stored.record.ocr


def _broken(item: dict[str, Any]) -> bool:
    """Whether a person record misses a field, has one of the wrong type, or a bad person number."""
    if not isinstance(item.get("decisions"), list) or not isinstance(item.get("protected_identity"), bool):
        return True
    try:
        parse_person_number(item["person_number"])
    except (InvalidArgument, KeyError):
        return True
    return False
