"""The case service: `bootstrap()` wires it, `serve()` runs it (python -m services.case.main)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from aldredirekt.case.v1 import case_pb2, case_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case.api import CaseServicer
from services.case.directory_client import Directory, GrpcDirectory
from services.case.handlers import Cases, escalate_overdue
from services.case.mail import OutboxDispatcher, SmtpSettings, SmtpTransport
from services.case.store import access_log, registrar, unit_of_work_factory
from services.common.audit_writer import AccessLog, AccessLogWriter
from services.common.auth import SigningKey, jwks_document
from services.common.grants import GrantIssuer
from services.common.migrate import migrations_dir
from services.common.runtime import build_verifier, main_of, open_database, start_service
from services.common.server import ServiceDefinition
from services.common.settings import AuthSettings, Env, ServerSettings
from services.common.telemetry import configure_telemetry, grpc_client_interceptors

SERVICE = "case"
DEFAULT_PORT = 50051
MIGRATIONS: Path = migrations_dir(SERVICE)
log = logging.getLogger("aldredirekt.case")


@dataclass(frozen=True)
class CaseSettings:
    server: ServerSettings
    auth: AuthSettings
    directory_address: str
    smtp: SmtpSettings
    grant_key_file: str
    grant_issuer: str
    grant_ttl_minutes: int
    message_domain: str
    outbox_interval: float
    overdue_interval: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CaseSettings:
        env = Env(environ)
        settings = cls(
            server=ServerSettings.from_env(env, service=SERVICE, default_port=DEFAULT_PORT),
            auth=AuthSettings.from_env(env),
            directory_address=env.text("CASE_DIRECTORY_ADDRESS", "127.0.0.1:50052"),
            smtp=SmtpSettings(
                host=env.text("CASE_SMTP_HOST", "127.0.0.1"),
                port=env.integer("CASE_SMTP_PORT", 2525, minimum=1, maximum=65535),
                sender=env.text("CASE_SMTP_SENDER", "aldredirekt@stockholm.example"),
                starttls=env.flag("CASE_SMTP_STARTTLS", False),
                username=env.optional_text("CASE_SMTP_USERNAME"),
                password=env.optional_text("CASE_SMTP_PASSWORD"),
            ),
            grant_key_file=env.text("CASE_GRANT_KEY_FILE", "var/case/grant-key.pem"),
            grant_issuer=env.text("CASE_GRANT_ISSUER", "aldredirekt-case"),
            grant_ttl_minutes=env.integer("CASE_GRANT_TTL_MINUTES", 30, minimum=1, maximum=60),
            message_domain=env.text("CASE_MESSAGE_DOMAIN", "aldredirekt.stockholm.example"),
            outbox_interval=env.number("CASE_OUTBOX_INTERVAL_SECONDS", 5.0, minimum=0.1),
            overdue_interval=env.number("CASE_OVERDUE_INTERVAL_SECONDS", 60.0, minimum=0.1),
        )
        env.check()
        return settings


def load_grant_key(path: Path) -> SigningKey:
    """The key grants are signed with; created on first use (local runs), with its JWKS written beside it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = SigningKey.generate("ES256")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(key.to_pem())
    key = SigningKey.from_pem(path.read_bytes())
    path.with_suffix(".jwks.json").write_text(json.dumps(jwks_document([key]), indent=2))
    return key


def bootstrap(
    settings: CaseSettings,
    engine: AsyncEngine,
    *,
    directory: Directory,
    access: AccessLog | None = None,
) -> Cases:
    key = load_grant_key(Path(settings.grant_key_file))
    return Cases(
        uow=unit_of_work_factory(engine),
        register=registrar(engine),
        access_log=access or AccessLogWriter(engine, access_log, service=SERVICE),
        directory=directory,
        grants=GrantIssuer(
            key, issuer=settings.grant_issuer, ttl=timedelta(minutes=settings.grant_ttl_minutes)
        ),
        grant_jwks=json.dumps(jwks_document([key])),
        message_domain=settings.message_domain,
    )


def directory_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, interceptors=grpc_client_interceptors())


def service_definition(cases: Cases) -> ServiceDefinition:
    return ServiceDefinition(
        add_to_server=case_pb2_grpc.add_CaseServiceServicer_to_server,
        servicer=CaseServicer(cases),
        full_name=case_pb2.DESCRIPTOR.services_by_name["CaseService"].full_name,
    )


async def run_every(interval: float, job_name: str, job: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await job()
        except Exception:
            log.exception("%s failed", job_name)
        await asyncio.sleep(interval)


async def serve(settings: CaseSettings) -> None:
    telemetry = configure_telemetry(SERVICE)
    engine = await open_database(settings.server, MIGRATIONS, telemetry)
    channel = directory_channel(settings.directory_address)
    cases = bootstrap(settings, engine, directory=GrpcDirectory(channel))
    dispatcher = OutboxDispatcher(cases.uow, SmtpTransport(settings.smtp), sender=settings.smtp.sender)
    cases.mail_queued = dispatcher.wake
    server = await start_service(
        settings=settings.server,
        engine=engine,
        migrations=MIGRATIONS,
        verifier=build_verifier(settings.auth),
        telemetry=telemetry,
        services=[service_definition(cases)],
    )
    background = [
        asyncio.create_task(dispatcher.run(settings.outbox_interval), name="outbox"),
        asyncio.create_task(
            run_every(settings.overdue_interval, "overdue escalation", lambda: escalate_overdue(cases=cases)),
            name="overdue",
        ),
    ]
    try:
        await server.wait_for_signal(settings.server.grace_seconds)
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if isinstance(cases.access_log, AccessLogWriter):
            await cases.access_log.close()
        await channel.close(None)
        await engine.dispose()
        telemetry.shutdown()
        log.info("stopped")


def main() -> None:
    main_of(SERVICE, "services.case.main", CaseSettings.from_env, serve)


if __name__ == "__main__":
    main()
