"""The mirror: its settings, `bootstrap()` (the one place it is wired) and its definition for the runtime
(python -m services.mirror.main)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aldredirekt.mirror.v1 import mirror_pb2, mirror_pb2_grpc

from services.common.audit_writer import AccessLog, AccessLogWriter
from services.common.auth import JwksSource
from services.common.errors import FailedPrecondition
from services.common.grants import GrantVerifier
from services.common.house import house_services
from services.common.leases import Lease, check_fence, run_under_lease
from services.common.migrate import migrations_dir
from services.common.pagination import PageTokens
from services.common.runtime import Job, ServiceDefinition, Wiring, main, open_engine, replica_name
from services.common.server import GrpcService
from services.common.settings import AuthSettings, Env, ServerSettings, SettingsError
from services.common.telemetry import Telemetry
from services.mirror.api import MirrorServicer
from services.mirror.clients import SourceConfig, UpstreamClient, load_sources
from services.mirror.handlers import operations
from services.mirror.handlers.mirror import Mirror
from services.mirror.handlers.sync import SourceSync, SyncSettings, run_sync_loop
from services.mirror.store import shared, unit_of_work_factory

SERVICE = "mirror"
DEFAULT_PORT = 50053
MIGRATIONS: Path = migrations_dir(SERVICE)
log = logging.getLogger("aldredirekt.mirror")


@dataclass(frozen=True)
class MirrorSettings:
    server: ServerSettings
    auth: AuthSettings
    sources: tuple[SourceConfig, ...]
    grant_jwks: str
    grant_issuer: str
    sync: SyncSettings
    sync_interval: float
    reconcile_interval: float
    stale_seconds: float
    upstream_timeout: float
    lease_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MirrorSettings:
        env = Env(environ)
        sources_file = env.required(
            "MIRROR_SOURCES_FILE", "var/mirror/sources.json", "the JSON file that lists the upstream sources"
        )
        sources: tuple[SourceConfig, ...] = ()
        if sources_file:
            try:
                sources = tuple(load_sources(sources_file))
            except SettingsError as error:
                env.errors.append(error)
        settings = cls(
            server=ServerSettings.from_env(env, service=SERVICE, default_port=DEFAULT_PORT),
            auth=AuthSettings.from_env(env),
            sources=sources,
            grant_jwks=env.required(
                "MIRROR_GRANT_JWKS",
                "var/case/grant-key.jwks.json",
                "the URL or file of the case service's access-grant keys (its JWKS)",
            ),
            grant_issuer=env.text("MIRROR_GRANT_ISSUER", "aldredirekt-case"),
            sync=SyncSettings(
                page_size=env.integer("MIRROR_PAGE_SIZE", 1000, minimum=10, maximum=1000),
                settle_seconds=env.number("MIRROR_SETTLE_SECONDS", 2.0, minimum=0.0),
                overlap_seconds=env.number("MIRROR_OVERLAP_SECONDS", 60.0, minimum=0.0),
                sweep_threshold=env.number("MIRROR_SWEEP_THRESHOLD", 0.05, minimum=0.0),
            ),
            sync_interval=env.number("MIRROR_SYNC_INTERVAL_SECONDS", 1.0, minimum=0.05),
            reconcile_interval=env.number("MIRROR_RECONCILE_INTERVAL_SECONDS", 3600.0, minimum=1.0),
            stale_seconds=env.number("MIRROR_STALE_SECONDS", 300.0, minimum=1.0),
            upstream_timeout=env.number("MIRROR_UPSTREAM_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            lease_seconds=env.number("MIRROR_LEASE_SECONDS", 30.0, minimum=1.0),
        )
        env.check()
        return settings


async def bootstrap(
    settings: MirrorSettings,
    *,
    telemetry: Telemetry | None = None,
    access: AccessLog | None = None,
    clock: Callable[[], datetime] | None = None,
    holder: str | None = None,
    run_sync: bool = True,
) -> Wiring[Mirror]:
    """Wires the mirror: its database, a client and a sync per source, the grant keys, the access log.
    Without `run_sync` it only serves what is stored (a test drives each source's sync itself)."""
    now = clock or (lambda: datetime.now(UTC))
    engine = open_engine(settings.server, telemetry)
    access_log = access or AccessLogWriter(engine, shared.access_log, service=SERVICE)
    holder = holder or replica_name()
    uow = unit_of_work_factory(engine)
    clients = {s.name: UpstreamClient(s, timeout=settings.upstream_timeout) for s in settings.sources}
    syncs = {
        name: SourceSync(client, uow, settings=settings.sync, clock=now) for name, client in clients.items()
    }
    mirror = Mirror(
        uow=uow,
        engine=engine,
        access_log=access_log,
        grants=GrantVerifier(JwksSource(settings.grant_jwks), issuer=settings.grant_issuer),
        clients=clients,
        syncs=syncs,
        stale_seconds=settings.stale_seconds,
        holder=holder,
        lease_seconds=settings.lease_seconds,
        clock=now,
        configured=tuple((s.name, s.kind, s.district_id) for s in settings.sources),
    )
    pages = PageTokens(settings.server.page_token_keys, service=SERVICE)
    closers: list[Callable[[], Any]] = []
    if isinstance(access_log, AccessLogWriter):
        closers.append(access_log.close)
    closers.extend(client.close for client in clients.values())

    def sync_job(name: str) -> Job:
        lease = Lease(
            engine,
            shared.leases,
            name=operations.SYNC_LEASE + name,
            holder=holder,
            ttl_seconds=settings.lease_seconds,
            clock=now,
        )

        async def keep_in_step(epoch: int) -> None:
            async def fence(conn: Any) -> None:
                await check_fence(conn, shared.leases, name=lease.name, epoch=epoch)

            async def reconcile() -> None:
                try:
                    await operations.reconcile_source(mirror=mirror, source=name)
                except FailedPrecondition as busy:
                    log.info("%s", busy.message)

            await mirror.ensure_sources()
            await run_sync_loop(
                syncs[name],
                interval=settings.sync_interval,
                reconcile_every=settings.reconcile_interval,
                reconcile=reconcile,
                fence=fence,
            )

        return Job(
            f"sync.{name}", lambda: run_under_lease(lease, keep_in_step, interval=settings.sync_interval)
        )

    return Wiring(
        core=mirror,
        engine=engine,
        services=[
            GrpcService(
                descriptor=mirror_pb2.DESCRIPTOR.services_by_name["MirrorService"],
                add_to_server=mirror_pb2_grpc.add_MirrorServiceServicer_to_server,
                servicer=MirrorServicer(mirror, pages),
            ),
            *house_services(
                service=SERVICE, engine=engine, tables=shared, access_log=access_log, pages=pages, clock=now
            ),
        ],
        jobs=[sync_job(name) for name in clients] if run_sync else [],
        closers=closers,
    )


DEFINITION: ServiceDefinition[MirrorSettings, Mirror] = ServiceDefinition(
    name=SERVICE,
    module="services.mirror.main",
    migrations=MIGRATIONS,
    load_settings=MirrorSettings.from_env,
    bootstrap=bootstrap,
)


if __name__ == "__main__":
    main(DEFINITION)
