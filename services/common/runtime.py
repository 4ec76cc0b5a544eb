"""What every service's `serve()` does around its own wiring: logs, telemetry, database, tokens, server."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.auth import JwksSource, TokenVerifier
from services.common.db import create_engine, database_answers
from services.common.devissuer import DevIssuer
from services.common.logs import configure_logging
from services.common.migrate import schema_is_at_head, upgrade_to_head
from services.common.server import GrpcServer, ServiceDefinition, start_grpc_server
from services.common.settings import AuthSettings, ServerSettings, SettingsError
from services.common.telemetry import Telemetry, grpc_server_interceptors, instrument_sqlalchemy

log = logging.getLogger("aldredirekt.runtime")

WORKER_MARKER = "ALDREDIREKT_WORKER"

S = TypeVar("S", bound="_ServiceSettings")


def build_verifier(auth: AuthSettings) -> TokenVerifier:
    if auth.uses_dev_issuer:
        from services.common.devissuer import DEV_ISSUER

        issuer = DevIssuer.load_or_create(Path(auth.dev_dir))
        log.warning(
            "AUTH_JWKS is not set: trusting the local development issuer; never do this in production"
        )
        return TokenVerifier(auth.issuer or DEV_ISSUER, auth.audience, JwksSource(issuer.jwks_path))
    assert auth.jwks is not None
    assert auth.issuer is not None
    return TokenVerifier(auth.issuer, auth.audience, JwksSource(auth.jwks))


def readiness(engine: AsyncEngine, migrations: Path) -> Callable[[], Awaitable[bool]]:
    """SERVING only while the database answers and its schema is at head."""

    async def ready() -> bool:
        if not await database_answers(engine):
            return False
        try:
            return await schema_is_at_head(engine, migrations)
        except Exception:
            log.exception("could not read the schema version")
            return False

    return ready


async def open_database(
    settings: ServerSettings, migrations: Path, telemetry: Telemetry | None = None
) -> AsyncEngine:
    """The service's engine, migrated when configured; its statements are traced when spans are kept."""
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    if telemetry is not None and telemetry.records_spans:
        instrument_sqlalchemy(engine)
    if settings.migrate_on_start:
        await upgrade_to_head(engine, migrations)
    return engine


async def start_service(
    *,
    settings: ServerSettings,
    engine: AsyncEngine,
    migrations: Path,
    verifier: TokenVerifier,
    services: Sequence[ServiceDefinition],
    telemetry: Telemetry | None = None,
    port: int | None = None,
) -> GrpcServer:
    server = await start_grpc_server(
        services=services,
        verifier=verifier,
        host=settings.host,
        port=settings.port if port is None else port,
        ready=readiness(engine, migrations),
        extra_interceptors=(
            grpc_server_interceptors() if telemetry is not None and telemetry.records_spans else ()
        ),
        share_port=settings.workers > 1 or os.environ.get(WORKER_MARKER) == "1",
        max_active_calls=settings.max_active_calls,
    )
    log.info("%s listening on %s:%d", settings.service, settings.host, server.port)
    # What exists now (modules, descriptors, caches) lives as long as the process: moved out of the
    # collector's reach, it no longer lengthens every full collection, which pause all calls at once.
    gc.freeze()
    return server


def run_workers(settings: ServerSettings, module: str, serve_one: Callable[[], None]) -> int:
    """Runs the service in `settings.workers` processes sharing its port, as in grpc's multiprocessing
    example: one Python process uses one core, so a service on a larger node runs several.

    With one worker the service runs in this process. Otherwise this process migrates once, starts the
    workers (which then skip migrating), passes SIGTERM and SIGINT on to them, and exits when they have;
    if one dies the others are stopped too, so the orchestrator restarts the whole pod.
    """
    if settings.workers <= 1 or os.environ.get(WORKER_MARKER) == "1":
        serve_one()
        return 0
    if settings.port == 0:
        sys.exit(f"{settings.service}: several workers need a fixed port, not 0")
    prefix = settings.service.upper() + "_"
    env = {**os.environ, WORKER_MARKER: "1", prefix + "MIGRATE_ON_START": "false"}
    if settings.migrate_on_start:
        subprocess.run([sys.executable, "-m", "services.common.migrate", settings.service], check=True)
    children = [subprocess.Popen([sys.executable, "-m", module], env=env) for _ in range(settings.workers)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes: list[int] = []
    while len(codes) < len(children):
        _pid, status = os.wait()
        codes.append(os.waitstatus_to_exitcode(status))
        if codes[-1] != 0:
            forward(signal.SIGTERM, None)
    return max(codes, key=abs)


class _ServiceSettings(Protocol):
    @property
    def server(self) -> ServerSettings: ...


def main_of(
    service: str,
    module: str,
    load_settings: Callable[[], S],
    serve: Callable[[S], Coroutine[Any, Any, None]],
) -> None:
    """What every service's `python -m` does: read and check its settings (a wrong value stops it with
    the variable's name), set up logging, and serve in one process or in `<SVC>_WORKERS` of them."""
    try:
        settings = load_settings()
    except SettingsError as error:
        sys.exit(f"{service}: configuration error: {error}")
    configure_logging(service, settings.server.log_level)
    sys.exit(run_workers(settings.server, module, lambda: asyncio.run(serve(settings))))
