"""The case service's use cases on a real database (a SQLite file and a PostgreSQL database, migrated to
head), with a fake directory and a clock the test sets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case.handlers import Cases
from services.case.main import CaseSettings
from services.common.outbox import OutboxSender
from services.common.runtime import Wiring
from support.pgserver import PostgresServer
from support.ports import free_port
from support.smtp_sink import MailStore
from tests.integration.case.support import (
    START,
    case_settings,
    copy_sqlite,
    migrated_postgres_template,
    migrated_sqlite_template,
    postgres_copy,
    running_cases,
    smtp_sink,
)
from tests.unit.case.builders import Clock, FakeDirectory


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("case-template"))


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    return migrated_postgres_template(postgres_server)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of the test's own: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        yield copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "case.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with postgres_copy(server, request.getfixturevalue("postgres_template")) as url:
        yield url


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_port: int) -> CaseSettings:
    return case_settings(database_url, tmp_path, smtp_port=smtp_port)


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def wiring(
    settings: CaseSettings, directory: FakeDirectory, clock: Clock
) -> AsyncIterator[Wiring[Cases]]:
    async with running_cases(settings, directory=directory, clock=clock) as wired:
        yield wired


@pytest.fixture
def cases(wiring: Wiring[Cases]) -> Cases:
    return wiring.core


@pytest.fixture
def engine(wiring: Wiring[Cases]) -> AsyncEngine:
    return wiring.engine


@pytest.fixture
def mailbox(smtp_port: int) -> Iterator[MailStore]:
    """A real SMTP server on the port the settings name, keeping every mail it receives."""
    with smtp_sink(smtp_port) as store:
        yield store


@pytest.fixture
def dispatcher(wiring: Wiring[Cases]) -> OutboxSender:
    """The service's own outbox sender, delivering to the SMTP sink when the test asks it to."""
    assert wiring.outbox is not None
    return wiring.outbox
