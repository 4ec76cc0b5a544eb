"""Fixtures and hooks shared by the whole suite.

Add fixtures under the section they belong to, or start a new section; keep service-specific fixtures in
the conftest.py of that service's test folder.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import uvloop

from support.pgserver import MISSING_BINARIES_MESSAGE, PostgresServer

# ---------------------------------------------------------------------------------------------------------
# PostgreSQL: one real server per session, a fresh database per test.
# ---------------------------------------------------------------------------------------------------------

POSTGRES_FIXTURES = frozenset({"postgres_server", "postgres_url"})


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server; skipped without the binaries, except in CI where that is a failure."""
    if not PostgresServer.available():
        if os.environ.get("CI"):
            pytest.fail(MISSING_BINARIES_MESSAGE, pytrace=False)
        pytest.skip(MISSING_BINARIES_MESSAGE)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database that only this test uses."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    yield url
    # Dropping costs a few milliseconds and keeps a long session's disk use flat.
    postgres_server.drop_database(name)


# ---------------------------------------------------------------------------------------------------------
# Markers
# ---------------------------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tryfirst: markers must be in place before `-m` deselects items in the same hook.
    for item in items:
        if POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


# ---------------------------------------------------------------------------------------------------------
# The event loop: the services' own (EVENT_LOOP's default), so what runs in a test's loop runs as deployed.
# ---------------------------------------------------------------------------------------------------------


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], Any]]:
    return {"uvloop": uvloop.new_event_loop}
