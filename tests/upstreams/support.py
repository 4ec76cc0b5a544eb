"""Calls the upstream tests share: the control API, and reading a whole change feed or id listing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from upstreams import Running

FEED = {"agresso": "/agresso/v1/transactions", "paraply": "/paraply/v1/persons"}


def prefix(name: str) -> str:
    return FEED["agresso"] if name == "agresso" else FEED["paraply"]


async def control(
    client: httpx.AsyncClient, running: Running, method: str, path: str, body: Any = None
) -> httpx.Response:
    """A call to the control API with its token."""
    return await client.request(
        method, running.control_url + path, json=body, headers=running.headers("control")
    )


async def feed_pages(
    client: httpx.AsyncClient,
    running: Running,
    name: str,
    *,
    limit: int,
    since: str | None = None,
    after: str | None = None,
) -> list[list[dict[str, Any]]]:
    """Every page of an instance's change feed from (since, after) until `next` is null."""
    pages = []
    params: dict[str, Any] = {"limit": limit}
    if since is not None:
        params.update(since=since, after=after or "")
    while True:
        response = await client.get(
            running.url(name) + prefix(name) + "/changes", params=params, headers=running.headers(name)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        if body["next"] is None:
            return pages
        params.update(since=body["next"]["since"], after=body["next"]["after"])


async def all_ids(client: httpx.AsyncClient, running: Running, name: str, *, limit: int) -> list[str]:
    ids: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await client.get(
            running.url(name) + prefix(name) + "/ids", params=params, headers=running.headers(name)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        ids += body["ids"]
        if body["next_cursor"] is None:
            return ids
        params["cursor"] = body["next_cursor"]


# The loop the `running` fixture serves in: every test of a module that uses it runs there too.
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
