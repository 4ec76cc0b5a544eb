"""The change feed, the id listing and the lookups, over real HTTP."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any

import httpx

from services.common.ocr import OcrControl, parse_ocr
from tests.upstreams.support import MODULE_LOOP, all_ids, feed_pages
from upstreams import Running

pytestmark = MODULE_LOOP

BROMMA = "paraply-bromma"


def _key(item: dict[str, Any]) -> tuple[datetime, str]:
    return (datetime.fromisoformat(item["updated_at"].replace("Z", "+00:00")), item["id"])


async def test_the_feed_is_ordered_and_complete_across_pages_with_a_tie_over_a_page_boundary(
    running: Running, client: httpx.AsyncClient
):
    tied = running.mutate(BROMMA, "tie", count=5)["changes"]
    assert len({change["updated_at"] for change in tied}) == 1

    pages = await feed_pages(client, running, BROMMA, limit=3)
    items = [item for page in pages for item in page]

    assert [_key(item) for item in items] == sorted(_key(item) for item in items)
    assert [item["id"] for item in items[-5:]] == sorted(change["id"] for change in tied)
    assert sorted(item["id"] for item in items) == running.store(BROMMA).all_ids()
    # Pages of three cannot hold five equal times: the tie is split, and nothing is lost or repeated.
    boundaries = [(a[-1]["updated_at"], b[0]["updated_at"]) for a, b in itertools.pairwise(pages)]
    assert (tied[0]["updated_at"], tied[0]["updated_at"]) in boundaries
    assert all(len(page) == 3 for page in pages[:-1])


async def test_next_is_null_on_the_last_page_and_an_empty_feed_follows_it(
    running: Running, client: httpx.AsyncClient
):
    headers = running.headers(BROMMA)
    url = running.url(BROMMA) + "/paraply/v1/persons/changes"
    total = len(running.store(BROMMA))

    whole = (await client.get(url, params={"limit": total}, headers=headers)).json()
    last = whole["items"][-1]
    after = await client.get(url, params={"since": last["updated_at"], "after": last["id"]}, headers=headers)

    assert whole["next"] is None
    assert len(whole["items"]) == total
    assert after.json() == {"items": [], "next": None}
    assert "X-Server-Time" in after.headers


async def test_a_late_commit_appears_behind_rows_already_served(running: Running, client: httpx.AsyncClient):
    pages = await feed_pages(client, running, BROMMA, limit=500)
    cursor = pages[-1][-1]

    late = running.mutate(BROMMA, "late_commit", change="change_officer", seconds=0.4)["changes"][0]
    prompt = running.mutate(BROMMA, "change_officer", id=_other_than(running, late["id"]))["changes"][0]
    before = await feed_pages(
        client, running, BROMMA, limit=500, since=cursor["updated_at"], after=cursor["id"]
    )
    served = before[-1][-1]
    await asyncio.sleep(0.5)
    behind = await feed_pages(
        client, running, BROMMA, limit=500, since=served["updated_at"], after=served["id"]
    )
    again = await feed_pages(
        client, running, BROMMA, limit=500, since=cursor["updated_at"], after=cursor["id"]
    )

    assert [item["id"] for page in before for item in page] == [prompt["id"]]
    assert late["updated_at"] < prompt["updated_at"] < late["visible_at"]
    assert behind == [[]]
    # Read again from before its time, the late record is there, ahead of the one served before it.
    assert [item["id"] for page in again for item in page] == [late["id"], prompt["id"]]


def _other_than(running: Running, record_id: str) -> str:
    return next(i for i in running.store(BROMMA).all_ids() if i != record_id)


async def test_a_deleted_person_is_gone_from_the_feed_the_ids_and_the_lookups(
    running: Running, client: httpx.AsyncClient
):
    store = running.store(BROMMA)
    victim = store.get(store.all_ids()[7])
    assert victim is not None
    number = victim.record.person_number
    running.mutate(BROMMA, "delete_person", id=victim.record.record_id)
    headers = running.headers(BROMMA)
    base = running.url(BROMMA) + "/paraply/v1/persons"

    fed = [item["id"] for page in await feed_pages(client, running, BROMMA, limit=7) for item in page]
    listed = await all_ids(client, running, BROMMA, limit=4)
    one = await client.get(f"{base}/{victim.record.record_id}", headers=headers)
    found = await client.get(base, params={"person_number": number}, headers=headers)

    assert victim.record.record_id not in fed
    assert listed == sorted(fed) == store.all_ids()
    assert one.status_code == 404
    assert one.json()["error"] == "not_found"
    assert found.json() == {"items": []}


async def test_a_person_is_found_by_id_and_by_person_number(running: Running, client: httpx.AsyncClient):
    entry = running.store(BROMMA).get(running.store(BROMMA).all_ids()[0])
    assert entry is not None
    headers = running.headers(BROMMA)
    base = running.url(BROMMA) + "/paraply/v1/persons"

    one = (await client.get(f"{base}/{entry.record.record_id}", headers=headers)).json()
    found = (
        await client.get(base, params={"person_number": entry.record.person_number}, headers=headers)
    ).json()
    bad = await client.get(base, params={"person_number": "1940-01-01"}, headers=headers)

    assert one["person_number"] == entry.record.person_number
    assert one["updated_at"] == entry.updated_at
    assert set(one) >= {
        "name",
        "address",
        "decisions",
        "providers",
        "fee_basis",
        "extra",
        "responsible_officer",
    }
    assert found["items"] == [one]
    assert bad.status_code == 400


async def test_invoices_are_found_by_ocr_and_by_person_and_every_ocr_is_valid(
    running: Running, client: httpx.AsyncClient
):
    headers = running.headers("agresso")
    base = running.url("agresso") + "/agresso/v1/transactions"
    items = [item for page in await feed_pages(client, running, "agresso", limit=1000) for item in page]
    some = items[len(items) // 2]

    by_ocr = (await client.get(base, params={"ocr": some["ocr"]}, headers=headers)).json()["items"]
    by_person = (
        await client.get(base, params={"person_number": some["person_number"]}, headers=headers)
    ).json()
    neither = await client.get(base, headers=headers)

    assert len(items) == len(running.care.invoices)
    assert all(parse_ocr(item["ocr"], control=OcrControl.VARIABLE_LENGTH) == item["ocr"] for item in items)
    assert by_ocr == [some]
    assert some in by_person["items"]
    assert {item["person_number"] for item in by_person["items"]} == {some["person_number"]}
    assert neither.status_code == 400


async def test_a_bad_cursor_or_limit_is_a_400_naming_the_parameter(
    running: Running, client: httpx.AsyncClient
):
    headers = running.headers(BROMMA)
    base = running.url(BROMMA) + "/paraply/v1/persons"

    answers = [
        await client.get(f"{base}/changes", params={"limit": 1001}, headers=headers),
        await client.get(f"{base}/changes", params={"since": "yesterday"}, headers=headers),
        await client.get(f"{base}/changes", params={"since": "2026-01-01T00:00:00"}, headers=headers),
        await client.get(f"{base}/ids", params={"cursor": "%%%"}, headers=headers),
    ]

    assert [a.status_code for a in answers] == [400, 400, 400, 400]
    assert [a.json()["message"].split()[0] for a in answers] == ["limit", "since", "since", "cursor"]
