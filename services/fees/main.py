"""The fees service: its settings, `bootstrap()` (the one place it is wired) and its definition for the
runtime (python -m services.fees.main)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aldredirekt.fees.v1 import fees_pb2, fees_pb2_grpc

from services.common.audit_writer import AccessLog, AccessLogWriter
from services.common.auth import JwksSource
from services.common.grants import GrantVerifier
from services.common.house import house_services
from services.common.leases import Lease, run_under_lease
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
from services.common.secrets import Secret
from services.common.server import GrpcService
from services.common.service_tokens import ServiceTokens, ServiceTokenSettings, service_tokens
from services.common.settings import AuthSettings, Env, ServerSettings, SettingsError
from services.common.telemetry import Telemetry
from services.fees import handlers
from services.fees.api import FeeServicer
from services.fees.clients import CaseCounts, GrpcCaseCounts, GrpcMirror, Mirror
from services.fees.finance import DeferralDelivery, FinanceDesk, FinanceSettings
from services.fees.handlers import Fees
from services.fees.model import ParameterError, Parameters, default_parameters_folder, load_parameters
from services.fees.model.deferral import FinanceAnswer
from services.fees.store import DEFERRAL, shared, unit_of_work_factory

SERVICE = "fees"
DEFAULT_PORT = 50054
MIGRATIONS: Path = migrations_dir(SERVICE)
log = logging.getLogger("aldredirekt.fees")


@dataclass(frozen=True)
class FeesSettings:
    server: ServerSettings
    auth: AuthSettings
    parameters_dir: str
    # Loaded and checked with the settings: a gap or a figure without a source stops the service at start.
    parameters: Parameters
    mirror_address: str
    case_address: str
    mirror_timeout: float
    case_timeout: float
    grant_jwks: str
    grant_issuer: str
    finance: FinanceSettings
    tokens: ServiceTokenSettings
    outbox_interval: float
    outbox_max_attempts: int
    lease_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FeesSettings:
        env = Env(environ)
        folder = env.text("FEES_PARAMETERS_DIR", str(default_parameters_folder()))
        parameters = Parameters({})
        try:
            parameters = load_parameters(folder)
        except ParameterError as wrong:
            env.errors.append(SettingsError("FEES_PARAMETERS_DIR", f"{folder}: {wrong}"))
        except OSError as wrong:
            env.errors.append(
                SettingsError("FEES_PARAMETERS_DIR", f"{folder} cannot be read ({type(wrong).__name__})")
            )
        key = Secret(
            file=env.optional_text("FEES_FINANCE_API_KEY_FILE") or "",
            env=env.optional_text("FEES_FINANCE_API_KEY_ENV")
            or ("UPSTREAM_AGRESSO_API_KEY" if env.dev else ""),
        )
        if not key.configured:
            env.errors.append(
                SettingsError(
                    "FEES_FINANCE_API_KEY_FILE",
                    "or FEES_FINANCE_API_KEY_ENV is required: where the finance system's API key is kept (a "
                    "file, or the name of the variable holding it)",
                )
            )
        finance_url = env.required(
            "FEES_FINANCE_URL",
            "http://127.0.0.1:7000",
            "the finance system's (Agresso's) base URL, for deferrals",
        )
        if not finance_url.startswith(("https://", "http://")):
            env.errors.append(SettingsError("FEES_FINANCE_URL", "must be an http(s) URL"))
        settings = cls(
            server=ServerSettings.from_env(env, service=SERVICE, default_port=DEFAULT_PORT),
            auth=AuthSettings.from_env(env),
            parameters_dir=folder,
            parameters=parameters,
            mirror_address=env.required(
                "FEES_MIRROR_ADDRESS", "127.0.0.1:50053", "the mirror's gRPC address, host:port"
            ),
            case_address=env.required(
                "FEES_CASE_ADDRESS", "127.0.0.1:50051", "the case service's gRPC address, host:port"
            ),
            mirror_timeout=env.number("FEES_MIRROR_TIMEOUT_SECONDS", 3.0, minimum=0.1),
            case_timeout=env.number("FEES_CASE_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            grant_jwks=env.required(
                "FEES_GRANT_JWKS",
                "var/case/grant-key.jwks.json",
                "the URL or file of the case service's access-grant keys (its JWKS)",
            ),
            grant_issuer=env.text("FEES_GRANT_ISSUER", "aldredirekt-case"),
            finance=FinanceSettings(
                url=finance_url,
                api_key=key,
                timeout_seconds=env.number("FEES_FINANCE_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            ),
            tokens=ServiceTokenSettings.from_env(env, prefix="FEES_"),
            outbox_interval=env.number("FEES_OUTBOX_INTERVAL_SECONDS", 5.0, minimum=0.05),
            outbox_max_attempts=env.integer("FEES_OUTBOX_MAX_ATTEMPTS", 100, minimum=1, maximum=10_000),
            lease_seconds=env.number("FEES_LEASE_SECONDS", 30.0, minimum=1.0),
        )
        env.check()
        return settings


async def bootstrap(
    settings: FeesSettings,
    *,
    telemetry: Telemetry | None = None,
    mirror: Mirror | None = None,
    case_counts: CaseCounts | None = None,
    tokens: ServiceTokens | None = None,
    finance: FinanceDesk | None = None,
    access: AccessLog | None = None,
    clock: Callable[[], datetime] | None = None,
    holder: str | None = None,
) -> Wiring[Fees]:
    """Wires the fees service: its database, the mirror and case clients, its own service token, the
    grant keys, the access log, and the outbox that hands deferrals to the finance system under a lease.
    Tests pass what they replace."""
    now = clock or (lambda: datetime.now(UTC))
    engine = open_engine(settings.server, telemetry)
    closers: list[Callable[[], Any]] = []
    if mirror is None:
        mirror_channel = client_channel(settings.mirror_address, telemetry)
        closers.append(lambda: mirror_channel.close(None))
        mirror = GrpcMirror(mirror_channel, timeout=settings.mirror_timeout)
    if case_counts is None:
        token_source = tokens or service_tokens(settings.tokens, settings.auth, service=SERVICE)
        closers.append(token_source.close)
        case_channel = client_channel(settings.case_address, telemetry)
        closers.append(lambda: case_channel.close(None))
        case_counts = GrpcCaseCounts(case_channel, token_source, timeout=settings.case_timeout)
    desk = finance or FinanceDesk(settings.finance)
    closers.append(desk.close)
    access_log = access or AccessLogWriter(engine, shared.access_log, service=SERVICE)
    if isinstance(access_log, AccessLogWriter):
        closers.insert(0, access_log.close)
    holder = holder or replica_name()
    fees = Fees(
        uow=unit_of_work_factory(engine),
        parameters=settings.parameters,
        mirror=mirror,
        case_counts=case_counts,
        grants=GrantVerifier(JwksSource(settings.grant_jwks), issuer=settings.grant_issuer),
        access_log=access_log,
        clock=now,
    )

    async def load(deferral_id: str) -> Any:
        return await handlers.deferral_to_send(fees=fees, deferral_id=deferral_id)

    async def record(deferral_id: str, answer: FinanceAnswer) -> None:
        await handlers.record_finance_answer(fees=fees, deferral_id=deferral_id, answer=answer)

    sender = OutboxSender(
        engine,
        shared.outbox,
        {DEFERRAL: DeferralDelivery(desk, load=load, record=record)},
        worker=holder,
        max_attempts=settings.outbox_max_attempts,
        clock=now,
    )
    fees.deferral_queued = sender.wake
    pages = PageTokens(settings.server.page_token_keys, service=SERVICE)
    outbox = Lease(
        engine,
        shared.leases,
        name="fees.outbox",
        holder=holder,
        ttl_seconds=settings.lease_seconds,
        clock=now,
    )

    async def send_deferrals(epoch: int) -> None:
        await sender.send_under_lease(epoch, settings.outbox_interval)

    return Wiring(
        core=fees,
        engine=engine,
        services=[
            GrpcService(
                descriptor=fees_pb2.DESCRIPTOR.services_by_name["FeeService"],
                add_to_server=fees_pb2_grpc.add_FeeServiceServicer_to_server,
                servicer=FeeServicer(fees),
            ),
            *house_services(
                service=SERVICE, engine=engine, tables=shared, access_log=access_log, pages=pages, clock=now
            ),
        ],
        jobs=[Job("outbox", lambda: run_under_lease(outbox, send_deferrals, interval=0.0))],
        outbox=sender,
        closers=closers,
    )


DEFINITION: ServiceDefinition[FeesSettings, Fees] = ServiceDefinition(
    name=SERVICE,
    module="services.fees.main",
    migrations=MIGRATIONS,
    load_settings=FeesSettings.from_env,
    bootstrap=bootstrap,
)


if __name__ == "__main__":
    main(DEFINITION)
