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
from aldredirekt.directory.v1 import directory_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case.directory_client import GrpcDirectory
from services.case.handlers import Cases
from services.case.mail import OutboxDispatcher, SmtpTransport
from services.case.main import MIGRATIONS as CASE_MIGRATIONS
from services.case.main import CaseSettings, bootstrap, service_definition
from services.common.audit_writer import AccessLogWriter, MemoryAccessLog
from services.common.devissuer import DevIssuer
from services.common.runtime import build_verifier, open_database, start_service
from services.common.server import GrpcServer
from services.directory import handlers as directory_handlers
from services.directory import main as directory_main
from support.pgserver import run_blocking
from support.ports import free_port
from support.smtp_sink import MailStore
from synthcity.city import City, generate_city
from synthcity.directory_csv import directory_csv_files
from synthcity.seed_directory import SEEDER
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
    settings: CaseSettings
    issuer: DevIssuer
    cases: Cases
    engine: AsyncEngine
    case_server: GrpcServer
    directory_server: GrpcServer
    stub: case_pb2_grpc.CaseServiceAsyncStub
    directory_stub: directory_pb2_grpc.DirectoryServiceAsyncStub
    dispatcher: OutboxDispatcher
    mail_clock: MailClock
    city: City
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def auth(self, role: str, **claims: Any) -> Metadata:
        """Metadata with a dev token, e.g. auth("officer", unit="units/farsta-bestallarenhet")."""
        return (("authorization", f"Bearer {self.issuer.mint(role=role, **claims)}"),)

    async def stop_directory(self) -> None:
        await self.directory_server.stop(0)

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
        settings = directory_main.DirectorySettings.from_env({"DIRECTORY_DATABASE_URL": url})
        engine = await open_database(settings.server, directory_main.MIGRATIONS)
        try:
            directory = directory_main.bootstrap(settings, engine, access=MemoryAccessLog())
            await directory_handlers.import_directory(
                directory=directory, caller=SEEDER, files=city_files(), validate_only=False
            )
        finally:
            await engine.dispose()

    run_blocking(seed())
    return path


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    folder = tmp_path_factory.mktemp("case-e2e-templates")
    return Templates(case=migrated_sqlite_template(folder), directory=seeded_directory(folder))


async def start_stack(tmp_path: Path, templates: Templates, case_database_url: str | None = None) -> Stack:
    """Starts both servers; the case service on a copy of the migrated SQLite database, or on the given
    database."""
    dev_dir = tmp_path / "dev"
    closers: list[Callable[[], Awaitable[Any]]] = []

    directory_settings = directory_main.DirectorySettings.from_env(
        {
            "DIRECTORY_DATABASE_URL": copy_sqlite(templates.directory, tmp_path / "directory.db"),
            "AUTH_DEV_DIR": str(dev_dir),
            "DIRECTORY_CACHE_SECONDS": "0",
        }
    )
    directory_engine = await open_database(directory_settings.server, directory_main.MIGRATIONS)
    closers.append(directory_engine.dispose)
    directory = directory_main.bootstrap(directory_settings, directory_engine)
    if isinstance(directory.access_log, AccessLogWriter):
        closers.append(directory.access_log.close)
    directory_server = await start_service(
        settings=directory_settings.server,
        engine=directory_engine,
        migrations=directory_main.MIGRATIONS,
        verifier=build_verifier(directory_settings.auth),
        services=[directory_main.service_definition(directory)],
        port=0,
    )
    closers.append(lambda: directory_server.stop(0))
    directory_address = f"127.0.0.1:{directory_server.port}"

    settings = CaseSettings.from_env(
        {
            "CASE_DATABASE_URL": case_database_url or copy_sqlite(templates.case, tmp_path / "case.db"),
            "CASE_DIRECTORY_ADDRESS": directory_address,
            "CASE_GRANT_KEY_FILE": str(tmp_path / "grant" / "grant-key.pem"),
            "AUTH_DEV_DIR": str(dev_dir),
            "CASE_SMTP_PORT": str(free_port()),
        }
    )
    engine = await open_database(settings.server, CASE_MIGRATIONS)
    closers.append(engine.dispose)
    directory_channel = grpc.aio.insecure_channel(settings.directory_address)
    closers.append(lambda: directory_channel.close(None))
    cases = bootstrap(settings, engine, directory=GrpcDirectory(directory_channel))
    if isinstance(cases.access_log, AccessLogWriter):
        closers.append(cases.access_log.close)
    mail_clock = MailClock()
    dispatcher = OutboxDispatcher(
        cases.uow, SmtpTransport(settings.smtp), sender=settings.smtp.sender, clock=mail_clock
    )
    case_server = await start_service(
        settings=settings.server,
        engine=engine,
        migrations=CASE_MIGRATIONS,
        verifier=build_verifier(settings.auth),
        services=[service_definition(cases)],
        port=0,
    )
    closers.append(lambda: case_server.stop(0))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{case_server.port}")
    closers.append(lambda: channel.close(None))
    directory_client_channel = grpc.aio.insecure_channel(directory_address)
    closers.append(lambda: directory_client_channel.close(None))
    return Stack(
        settings=settings,
        issuer=DevIssuer.load_or_create(dev_dir),
        cases=cases,
        engine=engine,
        case_server=case_server,
        directory_server=directory_server,
        stub=case_pb2_grpc.CaseServiceStub(channel),
        directory_stub=directory_pb2_grpc.DirectoryServiceStub(directory_client_channel),
        dispatcher=dispatcher,
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
