"""The real case server and the real directory server, both on port 0 and trusting one dev issuer, the
directory seeded with the small synthetic city, and a real SMTP sink; tests talk through the generated
stubs."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from aldredirekt.case.v1 import case_pb2_grpc
from aldredirekt.common.v1 import access_log_pb2_grpc
from aldredirekt.directory.v1 import directory_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case.handlers import Cases
from services.case.main import DEFINITION as CASE_DEFINITION
from services.case.main import CaseSettings
from services.common import runtime
from services.common.audit_writer import MemoryAccessLog
from services.common.devissuer import DevIssuer
from services.common.outbox import OutboxSender
from services.common.runtime import Running, wired
from services.directory import handlers as directory_handlers
from services.directory import main as directory_main
from services.directory.handlers import Directory
from support.pgserver import run_blocking
from support.ports import free_port
from support.smtp_sink import MailStore
from synthcity.city import City, generate_city
from synthcity.directory_csv import directory_csv_files
from tests.integration.case.support import (
    copy_sqlite,
    migrated_sqlite_template,
    smtp_sink,
)

Metadata = tuple[tuple[str, str], ...]
OFFICERS = 120


@functools.cache
def city() -> City:
    return generate_city(seed=2026, officers=OFFICERS)


@functools.cache
def city_files() -> dict[str, str]:
    return directory_csv_files(city())


@dataclass
class MailClock:
    """Real time, which a test can move forward to reach a mail's next attempt without waiting for it."""

    skipped: timedelta = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.skipped

    def skip(self, **delta: float) -> None:
        self.skipped += timedelta(**delta)


@dataclass
class Stack:
    """Both services, started as production starts them (services.common.runtime.start), on port 0."""

    settings: CaseSettings
    issuer: DevIssuer
    case: Running[Cases]
    directory: Running[Directory]
    stub: case_pb2_grpc.CaseServiceAsyncStub
    directory_stub: directory_pb2_grpc.DirectoryServiceAsyncStub
    access_log_stub: access_log_pb2_grpc.AccessLogServiceAsyncStub
    channel: grpc.aio.Channel
    mail_clock: MailClock
    city: City
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    @property
    def cases(self) -> Cases:
        return self.case.core

    @property
    def engine(self) -> AsyncEngine:
        return self.case.wiring.engine

    @property
    def dispatcher(self) -> OutboxSender:
        """The case service's outbox sender, for a test that delivers at once instead of waiting."""
        assert self.case.wiring.outbox is not None
        return self.case.wiring.outbox

    def auth(self, role: str, **claims: Any) -> Metadata:
        """Metadata with a dev token, e.g. auth("officer", unit="units/farsta-bestallarenhet")."""
        return (("authorization", f"Bearer {self.issuer.mint(role=role, **claims)}"),)

    async def stop_directory(self) -> None:
        await self.directory.stop(0)

    async def close(self) -> None:
        for closer in reversed(self._closers):
            await closer()


@dataclass(frozen=True)
class Templates:
    """Databases prepared once per session and copied for each test: the case database migrated, the
    directory's migrated and seeded with the synthetic city through the import synthcity.seed_directory
    uses."""

    case: Path
    directory: Path


def seeded_directory(folder: Path) -> Path:
    path = folder / "directory.db"
    url = f"sqlite+aiosqlite:///{path}"

    async def seed() -> None:
        settings = directory_main.DirectorySettings.from_env(
            {"DIRECTORY_DATABASE_URL": url, "AUTH_DEV": "true"}
        )
        async with wired(directory_main.DEFINITION, settings, access=MemoryAccessLog()) as wiring:
            await directory_handlers.import_directory(
                directory=wiring.core, files=city_files(), validate_only=False
            )

    run_blocking(seed())
    return path


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    folder = tmp_path_factory.mktemp("case-e2e-templates")
    return Templates(case=migrated_sqlite_template(folder), directory=seeded_directory(folder))


async def start_stack(tmp_path: Path, templates: Templates, case_database_url: str | None = None) -> Stack:
    """Starts both services through the runtime; the case service on a copy of the migrated SQLite
    database, or on the given database. Its background jobs run as in production; its clock is real time
    that a test may move forward (MailClock) to reach a mail's next attempt."""
    dev_dir = tmp_path / "dev"
    closers: list[Callable[[], Awaitable[Any]]] = []
    directory_settings = directory_main.DirectorySettings.from_env(
        {
            "DIRECTORY_DATABASE_URL": copy_sqlite(templates.directory, tmp_path / "directory.db"),
            "AUTH_DEV": "true",
            "AUTH_DEV_DIR": str(dev_dir),
            "DIRECTORY_CACHE_SECONDS": "0",
        }
    )
    directory = await runtime.start(directory_main.DEFINITION, directory_settings, port=0)
    closers.append(lambda: directory.stop(0))
    settings = CaseSettings.from_env(
        {
            "CASE_DATABASE_URL": case_database_url or copy_sqlite(templates.case, tmp_path / "case.db"),
            "CASE_DIRECTORY_ADDRESS": directory.address,
            # No mirror runs here: forwards go by the directory's rules (tests/e2e/mirror covers the mirror).
            "CASE_MIRROR_ADDRESS": f"127.0.0.1:{free_port()}",
            "CASE_GRANT_KEY_FILE": str(tmp_path / "grant" / "grant-key.pem"),
            "AUTH_DEV": "true",
            "AUTH_DEV_DIR": str(dev_dir),
            "CASE_SMTP_PORT": str(free_port()),
        }
    )
    mail_clock = MailClock()
    case = await runtime.start(CASE_DEFINITION, settings, port=0, clock=mail_clock)
    closers.append(lambda: case.stop(0))
    channel = grpc.aio.insecure_channel(case.address)
    closers.append(lambda: channel.close(None))
    directory_channel = grpc.aio.insecure_channel(directory.address)
    closers.append(lambda: directory_channel.close(None))
    return Stack(
        settings=settings,
        issuer=DevIssuer.load_or_create(dev_dir),
        case=case,
        directory=directory,
        stub=case_pb2_grpc.CaseServiceStub(channel),
        directory_stub=directory_pb2_grpc.DirectoryServiceStub(directory_channel),
        access_log_stub=access_log_pb2_grpc.AccessLogServiceStub(channel),
        channel=channel,
        mail_clock=mail_clock,
        city=city(),
        _closers=closers,
    )


@pytest.fixture
async def stack(tmp_path: Path, templates: Templates) -> AsyncIterator[Stack]:
    """Both servers, the case service on a SQLite file."""
    running = await start_stack(tmp_path, templates)
    yield running
    await running.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def any_stack(
    request: pytest.FixtureRequest, tmp_path: Path, templates: Templates
) -> AsyncIterator[Stack]:
    """Both servers, the case service on SQLite and on an empty PostgreSQL database it migrates itself."""
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    running = await start_stack(tmp_path, templates, url)
    yield running
    await running.close()


@pytest.fixture
def mailbox(stack: Stack) -> Iterator[MailStore]:
    with smtp_sink(stack.settings.smtp.port) as store:
        yield store
