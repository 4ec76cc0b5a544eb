"""A real directory server on port 0, seeded with the small synthetic city, and the generated client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aldredirekt.directory.v1 import directory_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import runtime
from services.common.devissuer import DEV_AUDIENCE, DEV_ISSUER, DevIssuer
from services.common.runtime import Running
from services.common.server import GrpcServer
from services.directory import handlers
from services.directory.handlers import Directory
from services.directory.main import DEFINITION, DirectorySettings
from synthcity.city import City
from tests.integration.directory.databases import Templates, build_sqlite_templates, copy_sqlite
from tests.unit.directory.cities import city_files, small_city

Metadata = tuple[tuple[str, str], ...]


def directory_settings(database_url: str, dev_dir: Path, **extra: str) -> DirectorySettings:
    return DirectorySettings.from_env(
        {
            "DIRECTORY_DATABASE_URL": database_url,
            "AUTH_DEV_DIR": str(dev_dir),
            "DIRECTORY_CACHE_SECONDS": "0",
            "AUTH_DEV": "true",
            **extra,
        }
    )


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class RunningDirectory:
    running: Running[Directory]
    channel: grpc.aio.Channel
    stub: directory_pb2_grpc.DirectoryServiceStub
    issuer: DevIssuer
    city: City

    @property
    def server(self) -> GrpcServer:
        return self.running.server

    @property
    def directory(self) -> Directory:
        return self.running.core

    @property
    def engine(self) -> AsyncEngine:
        return self.running.wiring.engine

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
            await running.running.stop(0)
            await running.channel.close(None)


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
        started = await runtime.start(DEFINITION, settings, port=0)
        if import_city:
            await handlers.import_directory(directory=started.core, files=city_files(), validate_only=False)
        channel = grpc.aio.insecure_channel(started.address)
        running = RunningDirectory(
            running=started,
            channel=channel,
            stub=directory_pb2_grpc.DirectoryServiceStub(channel),
            issuer=DevIssuer.load_or_create(Path(settings.auth.dev_dir)),
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
