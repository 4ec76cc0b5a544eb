"""The directory service: its settings, `bootstrap()` (the one place it is wired) and its definition for the
runtime (python -m services.directory.main)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aldredirekt.directory.v1 import directory_pb2, directory_pb2_grpc

from services.common.audit_writer import AccessLog, AccessLogWriter
from services.common.house import house_services
from services.common.migrate import migrations_dir
from services.common.pagination import PageTokens
from services.common.runtime import ServiceDefinition, Wiring, main, open_engine
from services.common.server import GrpcService
from services.common.settings import AuthSettings, Env, ServerSettings
from services.common.telemetry import Telemetry
from services.directory.api import DirectoryServicer
from services.directory.handlers import Directory, SnapshotCache
from services.directory.store import shared, unit_of_work_factory

SERVICE = "directory"
DEFAULT_PORT = 50052
MIGRATIONS: Path = migrations_dir(SERVICE)
log = logging.getLogger("aldredirekt.directory")


@dataclass(frozen=True)
class DirectorySettings:
    server: ServerSettings
    auth: AuthSettings
    # Äldre direkt's public number (08-80 65 65, stockholm.se), the route to units reached only through it.
    contact_center_phone: str
    cache_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DirectorySettings:
        env = Env(environ)
        settings = cls(
            server=ServerSettings.from_env(env, service=SERVICE, default_port=DEFAULT_PORT),
            auth=AuthSettings.from_env(env),
            contact_center_phone=env.text("DIRECTORY_CONTACT_CENTER_PHONE", "08-80 65 65"),
            cache_seconds=env.number("DIRECTORY_CACHE_SECONDS", 1.0, minimum=0.0),
        )
        env.check()
        return settings


async def bootstrap(
    settings: DirectorySettings,
    *,
    telemetry: Telemetry | None = None,
    access: AccessLog | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Wiring[Directory]:
    """Wires the directory: its database, the access log, the copy in memory. Tests pass fakes."""
    now = clock or (lambda: datetime.now(UTC))
    engine = open_engine(settings.server, telemetry)
    access_log = access or AccessLogWriter(engine, shared.access_log, service=SERVICE)
    closers: list[Callable[[], Any]] = []
    if isinstance(access_log, AccessLogWriter):
        closers.append(access_log.close)
    directory = Directory(
        uow=unit_of_work_factory(engine),
        access_log=access_log,
        contact_center_phone=settings.contact_center_phone,
        cache=SnapshotCache(max_age=settings.cache_seconds),
        clock=now,
    )
    pages = PageTokens(settings.server.page_token_keys, service=SERVICE)
    return Wiring(
        core=directory,
        engine=engine,
        services=[
            GrpcService(
                descriptor=directory_pb2.DESCRIPTOR.services_by_name["DirectoryService"],
                add_to_server=directory_pb2_grpc.add_DirectoryServiceServicer_to_server,
                servicer=DirectoryServicer(directory, pages),
            ),
            *house_services(
                service=SERVICE, engine=engine, tables=shared, access_log=access_log, pages=pages, clock=now
            ),
        ],
        closers=closers,
    )


DEFINITION: ServiceDefinition[DirectorySettings, Directory] = ServiceDefinition(
    name=SERVICE,
    module="services.directory.main",
    migrations=MIGRATIONS,
    load_settings=DirectorySettings.from_env,
    bootstrap=bootstrap,
)


if __name__ == "__main__":
    main(DEFINITION)
