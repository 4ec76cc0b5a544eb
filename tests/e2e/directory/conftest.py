"""A real directory server on port 0, seeded with the small synthetic city, and the generated client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aldredirekt.directory.v1 import directory_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.audit_writer import AccessLogWriter
from services.common.devissuer import DEV_AUDIENCE, DEV_ISSUER, DevIssuer
from services.common.runtime import build_verifier, open_database, start_service
from services.common.server import GrpcServer
from services.directory import handlers
from services.directory.handlers import Directory
from services.directory.main import MIGRATIONS, DirectorySettings, bootstrap, service_definition
from synthcity.city import City
from tests.integration.directory.databases import Templates, build_sqlite_templates, copy_sqlite
from tests.unit.directory.builders import ADMIN
from tests.unit.directory.cities import city_files, small_city

Metadata = tuple[tuple[str, str], ...]


def directory_settings(database_url: str, dev_dir: Path, **extra: str) -> DirectorySettings:
    return DirectorySettings.from_env(
        {
            "DIRECTORY_DATABASE_URL": database_url,
            "AUTH_DEV_DIR": str(dev_dir),
            "DIRECTORY_CACHE_SECONDS": "0",
            **extra,
        }
    )


async def stop_server(server: GrpcServer, grace: float) -> None:
    """Stops the server and lets its cancelled readiness check finish, so the engine can then be closed.

    GrpcServer.stop cancels the check without waiting for it; an engine disposed under a check that is
    still unwinding can leave the event loop unable to close.
    """
    await server.stop(grace)
    checks = [task for task in asyncio.all_tasks() if task.get_name() == "readiness"]
    await asyncio.gather(*checks, return_exceptions=True)


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class RunningDirectory:
    server: GrpcServer
    channel: grpc.aio.Channel
    stub: directory_pb2_grpc.DirectoryServiceStub
    issuer: DevIssuer
    directory: Directory
    engine: AsyncEngine
    city: City

    def auth(self, role: str, **claims: Any) -> Metadata:
        return bearer(self.issuer.mint(role=role, **claims))

    def expired_token(self, role: str = "agent") -> str:
        now = int(time.time())
        return self.issuer.key.sign(
            {
                "iss": DEV_ISSUER,
                "aud": DEV_AUDIENCE,
                "sub": "dev-agent",
                "iat": now - 7200,
                "nbf": now - 7200,
                "exp": now - 3600,
                "roles": [role],
            }
        )


@dataclass
class Servers:
    started: list[RunningDirectory] = field(default_factory=list)

    async def stop_all(self) -> None:
        for running in self.started:
            await stop_server(running.server, 0)
            await running.channel.close(None)
            if isinstance(running.directory.access_log, AccessLogWriter):
                await running.directory.access_log.close()
            await running.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return build_sqlite_templates(tmp_path_factory.mktemp("directory-templates"))


StartDirectory = Callable[..., Awaitable[RunningDirectory]]


@pytest.fixture
async def start_directory(tmp_path: Path) -> AsyncIterator[StartDirectory]:
    """Starts a directory server holding the small city; every one started is stopped afterwards.

    `import_city=False` is for a database that already holds it.
    """
    servers = Servers()

    async def start(database_url: str, *, import_city: bool = True) -> RunningDirectory:
        settings = directory_settings(database_url, tmp_path / "dev")
        engine = await open_database(settings.server, MIGRATIONS)
        directory = bootstrap(settings, engine)
        if import_city:
            await handlers.import_directory(
                directory=directory, caller=ADMIN, files=city_files(), validate_only=False
            )
        server = await start_service(
            settings=settings.server,
            engine=engine,
            migrations=MIGRATIONS,
            verifier=build_verifier(settings.auth),
            services=[service_definition(directory)],
            port=0,
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        running = RunningDirectory(
            server=server,
            channel=channel,
            stub=directory_pb2_grpc.DirectoryServiceStub(channel),
            issuer=DevIssuer.load_or_create(Path(settings.auth.dev_dir)),
            directory=directory,
            engine=engine,
            city=small_city(),
        )
        servers.started.append(running)
        return running

    yield start
    await servers.stop_all()


@pytest.fixture
async def running(
    start_directory: StartDirectory, sqlite_templates: Templates, tmp_path: Path
) -> RunningDirectory:
    """A directory server on a SQLite file that holds the small city."""
    return await start_directory(copy_sqlite(sqlite_templates.seeded, tmp_path), import_city=False)
