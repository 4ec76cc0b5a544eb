"""The directory service: `bootstrap()` wires it, `serve()` runs it (python -m services.directory.main)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from aldredirekt.directory.v1 import directory_pb2, directory_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.audit_writer import AccessLog, AccessLogWriter
from services.common.migrate import migrations_dir
from services.common.runtime import build_verifier, main_of, open_database, start_service
from services.common.server import ServiceDefinition
from services.common.settings import AuthSettings, Env, ServerSettings
from services.common.telemetry import configure_telemetry
from services.directory.api import DirectoryServicer
from services.directory.handlers import Directory, SnapshotCache
from services.directory.store import access_log, unit_of_work_factory

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
    def from_env(cls, environ: dict[str, str] | None = None) -> DirectorySettings:
        env = Env(environ)
        settings = cls(
            server=ServerSettings.from_env(env, service=SERVICE, default_port=DEFAULT_PORT),
            auth=AuthSettings.from_env(env),
            contact_center_phone=env.text("DIRECTORY_CONTACT_CENTER_PHONE", "08-80 65 65"),
            cache_seconds=env.number("DIRECTORY_CACHE_SECONDS", 1.0, minimum=0.0),
        )
        env.check()
        return settings


def bootstrap(
    settings: DirectorySettings, engine: AsyncEngine, *, access: AccessLog | None = None
) -> Directory:
    """Wires the use cases to a database engine, or to a fake access log in tests."""
    return Directory(
        uow=unit_of_work_factory(engine),
        access_log=access or AccessLogWriter(engine, access_log, service=SERVICE),
        contact_center_phone=settings.contact_center_phone,
        cache=SnapshotCache(max_age=settings.cache_seconds),
    )


def service_definition(directory: Directory) -> ServiceDefinition:
    return ServiceDefinition(
        add_to_server=directory_pb2_grpc.add_DirectoryServiceServicer_to_server,
        servicer=DirectoryServicer(directory),
        full_name=directory_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name,
    )


async def serve(settings: DirectorySettings) -> None:
    telemetry = configure_telemetry(SERVICE)
    engine = await open_database(settings.server, MIGRATIONS, telemetry)
    directory = bootstrap(settings, engine)
    server = await start_service(
        settings=settings.server,
        engine=engine,
        migrations=MIGRATIONS,
        verifier=build_verifier(settings.auth),
        telemetry=telemetry,
        services=[service_definition(directory)],
    )
    try:
        await server.wait_for_signal(settings.server.grace_seconds)
    finally:
        if isinstance(directory.access_log, AccessLogWriter):
            await directory.access_log.close()
        await engine.dispose()
        telemetry.shutdown()
        log.info("stopped")


def main() -> None:
    main_of(SERVICE, "services.directory.main", DirectorySettings.from_env, serve)


if __name__ == "__main__":
    main()
