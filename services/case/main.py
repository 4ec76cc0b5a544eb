"""The case service: its settings, `bootstrap()` (the one place it is wired) and its definition for the
runtime (python -m services.case.main)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from aldredirekt.case.v1 import case_pb2, case_pb2_grpc

from services.case.api import CaseServicer
from services.case.clients import CareSystem, Directory, GrpcDirectory, GrpcMirror
from services.case.handlers import Cases, escalate_overdue
from services.case.mail import MailDelivery, MailTransport, SmtpSettings, SmtpTransport
from services.case.store import MAIL, registrar, shared, unit_of_work_factory
from services.common.audit_writer import AccessLog, AccessLogWriter
from services.common.auth import SigningKey, jwks_document
from services.common.grants import GrantIssuer
from services.common.house import house_services
from services.common.leases import Lease, check_fence, run_under_lease
from services.common.migrate import migrations_dir
from services.common.outbox import OutboxSender
from services.common.pagination import PageTokens
from services.common.runtime import (
    Job,
    ServiceDefinition,
    Wiring,
    client_channel,
    main,
    open_engine,
    replica_name,
)
from services.common.server import GrpcService
from services.common.settings import AuthSettings, Env, ServerSettings, SettingsError
from services.common.telemetry import Telemetry

SERVICE = "case"
DEFAULT_PORT = 50051
MIGRATIONS: Path = migrations_dir(SERVICE)
log = logging.getLogger("aldredirekt.case")
# The default of a dependency bootstrap builds itself, told apart from one a test leaves out (None).
BUILT = object()


@dataclass(frozen=True)
class CaseSettings:
    server: ServerSettings
    auth: AuthSettings
    directory_address: str
    mirror_address: str
    smtp: SmtpSettings
    grant_key_file: str
    grant_issuer: str
    grant_ttl_minutes: int
    message_domain: str
    outbox_interval: float
    overdue_interval: float
    lease_seconds: float
    # Local runs create the grant key when it is missing; production must be given one.
    create_grant_key: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CaseSettings:
        env = Env(environ)
        settings = cls(
            server=ServerSettings.from_env(env, service=SERVICE, default_port=DEFAULT_PORT),
            auth=AuthSettings.from_env(env),
            directory_address=env.required(
                "CASE_DIRECTORY_ADDRESS", "127.0.0.1:50052", "the directory's gRPC address, host:port"
            ),
            mirror_address=env.required(
                "CASE_MIRROR_ADDRESS", "127.0.0.1:50053", "the mirror's gRPC address, host:port"
            ),
            smtp=SmtpSettings(
                host=env.required("CASE_SMTP_HOST", "127.0.0.1", "the mail relay for the units' notices"),
                port=env.integer("CASE_SMTP_PORT", 2525, minimum=1, maximum=65535),
                sender=env.text("CASE_SMTP_SENDER", "aldredirekt@stockholm.example"),
                starttls=env.flag("CASE_SMTP_STARTTLS", False),
                username=env.optional_text("CASE_SMTP_USERNAME"),
                password=env.optional_secret("CASE_SMTP_PASSWORD"),
            ),
            grant_key_file=env.required(
                "CASE_GRANT_KEY_FILE",
                "var/case/grant-key.pem",
                "the PEM file of the key access grants are signed with",
            ),
            grant_issuer=env.text("CASE_GRANT_ISSUER", "aldredirekt-case"),
            grant_ttl_minutes=env.integer("CASE_GRANT_TTL_MINUTES", 30, minimum=1, maximum=60),
            message_domain=env.text("CASE_MESSAGE_DOMAIN", "aldredirekt.stockholm.example"),
            outbox_interval=env.number("CASE_OUTBOX_INTERVAL_SECONDS", 5.0, minimum=0.1),
            overdue_interval=env.number("CASE_OVERDUE_INTERVAL_SECONDS", 60.0, minimum=0.1),
            lease_seconds=env.number("CASE_LEASE_SECONDS", 30.0, minimum=1.0),
            create_grant_key=env.dev,
        )
        if not settings.create_grant_key and not os.path.isfile(settings.grant_key_file):
            env.errors.append(SettingsError("CASE_GRANT_KEY_FILE", "names no file"))
        env.check()
        return settings


def load_grant_key(path: Path, *, create: bool) -> SigningKey:
    """The key grants are signed with; created on first use in local runs, with its JWKS beside it."""
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = SigningKey.generate("ES256")
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process of this service made it first
        else:
            with os.fdopen(descriptor, "wb") as out:
                out.write(key.to_pem())
    key = SigningKey.from_pem(path.read_bytes())
    if create:
        path.with_suffix(".jwks.json").write_text(json.dumps(jwks_document([key]), indent=2))
    return key


async def bootstrap(
    settings: CaseSettings,
    *,
    telemetry: Telemetry | None = None,
    directory: Directory | None = None,
    care_system: CareSystem | object | None = BUILT,
    access: AccessLog | None = None,
    mail_transport: MailTransport | None = None,
    clock: Callable[[], datetime] | None = None,
    holder: str | None = None,
) -> Wiring[Cases]:
    """Wires the case service: its database, the directory and mirror clients, the access log, grants, the
    outbox and its mail, and the jobs that run once across replicas. Tests pass fakes for what they replace
    (`care_system=None` forwards by the directory's rules alone)."""
    now = clock or (lambda: datetime.now(UTC))
    engine = open_engine(settings.server, telemetry)
    closers: list[Callable[[], Any]] = []
    if directory is None:
        channel = client_channel(settings.directory_address, telemetry)
        closers.append(lambda: channel.close(None))
        directory = GrpcDirectory(channel)
    if care_system is BUILT:
        mirror_channel = client_channel(settings.mirror_address, telemetry)
        closers.append(lambda: mirror_channel.close(None))
        care_system = GrpcMirror(mirror_channel)
    access_log = access or AccessLogWriter(engine, shared.access_log, service=SERVICE)
    if isinstance(access_log, AccessLogWriter):
        closers.insert(0, access_log.close)
    key = load_grant_key(Path(settings.grant_key_file), create=settings.create_grant_key)
    holder = holder or replica_name()
    sender = OutboxSender(
        engine,
        shared.outbox,
        {
            MAIL: MailDelivery(
                mail_transport or SmtpTransport(settings.smtp), sender=settings.smtp.sender, clock=now
            )
        },
        worker=holder,
        clock=now,
    )
    cases = Cases(
        uow=unit_of_work_factory(engine),
        register=registrar(engine),
        access_log=access_log,
        directory=directory,
        grants=GrantIssuer(
            key, issuer=settings.grant_issuer, ttl=timedelta(minutes=settings.grant_ttl_minutes)
        ),
        grant_jwks=json.dumps(jwks_document([key])),
        message_domain=settings.message_domain,
        clock=now,
        mail_queued=sender.wake,
        care_system=cast(CareSystem | None, care_system),
    )
    pages = PageTokens(settings.server.page_token_keys, service=SERVICE)
    overdue = Lease(
        engine,
        shared.leases,
        name="case.overdue",
        holder=holder,
        ttl_seconds=settings.lease_seconds,
        clock=now,
    )
    outbox = Lease(
        engine,
        shared.leases,
        name="case.outbox",
        holder=holder,
        ttl_seconds=settings.lease_seconds,
        clock=now,
    )

    async def escalate(epoch: int) -> None:
        async def fence(conn: Any) -> None:
            await check_fence(conn, shared.leases, name=overdue.name, epoch=epoch)

        await escalate_overdue(cases=cases, fence=fence)

    async def send_mail(epoch: int) -> None:
        await sender.send_under_lease(epoch, settings.outbox_interval)

    return Wiring(
        core=cases,
        engine=engine,
        services=[
            GrpcService(
                descriptor=case_pb2.DESCRIPTOR.services_by_name["CaseService"],
                add_to_server=case_pb2_grpc.add_CaseServiceServicer_to_server,
                servicer=CaseServicer(cases, pages),
            ),
            *house_services(
                service=SERVICE, engine=engine, tables=shared, access_log=access_log, pages=pages, clock=now
            ),
        ],
        jobs=[
            Job("overdue", lambda: run_under_lease(overdue, escalate, interval=settings.overdue_interval)),
            Job("outbox", lambda: run_under_lease(outbox, send_mail, interval=0.0)),
        ],
        outbox=sender,
        closers=closers,
    )


DEFINITION: ServiceDefinition[CaseSettings, Cases] = ServiceDefinition(
    name=SERVICE,
    module="services.case.main",
    migrations=MIGRATIONS,
    load_settings=CaseSettings.from_env,
    bootstrap=bootstrap,
)


if __name__ == "__main__":
    main(DEFINITION)
