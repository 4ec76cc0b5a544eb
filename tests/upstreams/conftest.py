"""Fixtures for the upstream stand-ins: a small synthetic city generated once, served once per test module
in that module's event loop, and reset to the generated data before each test (tests change records and
knobs; a reset is much cheaper than starting thirteen listeners again).

Test modules that use `running` run their tests in the module's loop: `pytestmark = MODULE_LOOP`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from synthcity.care import CareCity, generate_care_city
from upstreams import Running, serve_all

# Big enough for every district to have some of everything, small enough to load in milliseconds.
SMALL_CITY_PEOPLE = 800


@pytest.fixture(scope="session")
def small_care() -> CareCity:
    return generate_care_city(seed=2026, people=SMALL_CITY_PEOPLE)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(small_care: CareCity) -> AsyncIterator[Running]:
    async with serve_all(care=small_care) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def running(served: Running) -> AsyncIterator[Running]:
    await served.reset()
    yield served


@pytest_asyncio.fixture(loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http
