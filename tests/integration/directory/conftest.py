"""The directory on a real database: a SQLite file and a PostgreSQL database, migrated to head."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.runtime import Wiring, wired
from services.directory.handlers import Directory
from services.directory.main import DEFINITION, DirectorySettings
from support.pgserver import PostgresServer
from synthcity.city import City
from tests.integration.directory.databases import (
    Templates,
    build_postgres_templates,
    build_sqlite_templates,
    clone_postgres,
    copy_sqlite,
)
from tests.unit.directory.cities import small_city


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return build_sqlite_templates(tmp_path_factory.mktemp("directory-templates"))


@pytest.fixture(scope="session")
def postgres_templates(postgres_server: PostgresServer) -> Templates:
    return build_postgres_templates(postgres_server)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own for the test, at head; holding the small city when the test asks for `seeded`."""
    kind = "seeded" if "seeded" in request.fixturenames else "empty"
    if request.param == "sqlite":
        templates: Templates = request.getfixturevalue("sqlite_templates")
        yield copy_sqlite(getattr(templates, kind), tmp_path)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    templates = request.getfixturevalue("postgres_templates")
    name, url = await clone_postgres(server, getattr(templates, kind))
    yield url
    server.drop_database(name)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> DirectorySettings:
    return DirectorySettings.from_env(
        {
            "DIRECTORY_DATABASE_URL": database_url,
            "AUTH_DEV_DIR": str(tmp_path / "dev"),
            "DIRECTORY_CACHE_SECONDS": "0",
            "AUTH_DEV": "true",
        }
    )


@pytest.fixture
async def wiring(settings: DirectorySettings) -> AsyncIterator[Wiring[Directory]]:
    """The directory wired by its own bootstrap, not serving: the test calls its use cases."""
    async with wired(DEFINITION, settings) as wiring:
        yield wiring


@pytest.fixture
def engine(wiring: Wiring[Directory]) -> AsyncEngine:
    return wiring.engine


@pytest.fixture
def directory(wiring: Wiring[Directory]) -> Directory:
    return wiring.core


@pytest.fixture
def seeded(directory: Directory) -> City:
    """The small synthetic city, which the test's directory holds (see `database_url`)."""
    return small_city()
