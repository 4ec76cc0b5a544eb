"""The runtime kit: how any service is started, run and stopped, from its definition.

A service is defined once (`ServiceDefinition`): its name, its migrations, how its settings are read and its
`bootstrap`, the one place where it is wired (engine, clients, outbox, jobs, clock) into a `Wiring`. From
there the runtime does the same for every service, in production, in `make run` and in the end-to-end tests:

    start():  bootstrap, migrate when configured, serve gRPC (health, reflection, auth), start the jobs
    Running.stop():  NOT_SERVING, drain in-flight calls for the grace period, stop the jobs, close the wiring
    main():  read and check the settings (a wrong value stops it naming the variable), log as JSON, serve
             until SIGTERM in one process or in `<SVC>_WORKERS` of them
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import grpc
import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.auth import JwksSource, TokenVerifier
from services.common.db import create_engine, database_answers
from services.common.devissuer import DEV_ISSUER, DevIssuer
from services.common.logs import configure_logging
from services.common.migrate import migration_heads, schema_is_at, upgrade_to_head
from services.common.outbox import OutboxSender
from services.common.server import GrpcServer, GrpcService, start_grpc_server
from services.common.settings import AuthSettings, ServerSettings, SettingsError
from services.common.telemetry import (
    Telemetry,
    configure_telemetry,
    grpc_client_interceptors,
    grpc_server_interceptors,
    instrument_sqlalchemy,
)

log = logging.getLogger("aldredirekt.runtime")

WORKER_MARKER = "ALDREDIREKT_WORKER"

T = TypeVar("T")


class ServiceSettings(Protocol):
    """What every service's settings hold, beside its own."""

    @property
    def server(self) -> ServerSettings: ...

    @property
    def auth(self) -> AuthSettings: ...


S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True)
class Job:
    """Background work of a service: a coroutine that runs until it is cancelled (e.g. run_under_lease)."""

    name: str
    run: Callable[[], Coroutine[Any, Any, object]]


@dataclass
class Wiring(Generic[T]):
    """What a service's bootstrap made: its use cases (`core`), its database, the gRPC services to serve,
    its background jobs, and what to close once it has stopped serving, in the order given."""

    core: T
    engine: AsyncEngine
    services: list[GrpcService]
    jobs: list[Job] = field(default_factory=list)
    # The service's outbox sender, for tests and tools that deliver at once rather than waiting for the job.
    outbox: OutboxSender | None = None
    closers: list[Callable[[], Awaitable[object]]] = field(default_factory=list)

    async def close(self) -> None:
        for closer in self.closers:
            try:
                await closer()
            except Exception:
                log.exception("closing the service failed")
        await self.engine.dispose()


@dataclass(frozen=True)
class ServiceDefinition(Generic[S, T]):
    """A deployable service, as the runtime starts it."""

    name: str
    module: str
    migrations: Path
    load_settings: Callable[[Mapping[str, str] | None], S]
    bootstrap: Callable[..., Awaitable[Wiring[T]]]


def build_verifier(auth: AuthSettings) -> TokenVerifier:
    if auth.uses_dev_issuer:
        # Only reachable with AUTH_DEV=true: the settings refuse a missing AUTH_JWKS otherwise.
        issuer = DevIssuer.load_or_create(Path(auth.dev_dir))
        log.warning("AUTH_DEV=true: trusting the local development issuer; never do this in production")
        return TokenVerifier(auth.issuer or DEV_ISSUER, auth.audience, JwksSource(issuer.jwks_path))
    assert auth.jwks is not None
    assert auth.issuer is not None
    return TokenVerifier(auth.issuer, auth.audience, JwksSource(auth.jwks))


def replica_name() -> str:
    """Who holds a lease or claims outbox rows: this host and process, unique across replicas and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def client_channel(address: str, telemetry: Telemetry | None = None) -> grpc.aio.Channel:
    """A channel to another service; its calls are traced when spans are kept. Bootstraps call this."""
    traced = telemetry is not None and telemetry.records_spans
    return grpc.aio.insecure_channel(address, interceptors=grpc_client_interceptors() if traced else None)


def open_engine(settings: ServerSettings, telemetry: Telemetry | None = None) -> AsyncEngine:
    """The service's engine; its statements are traced when spans are kept. Bootstraps call this."""
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, tls=settings.database_tls)
    if telemetry is not None and telemetry.records_spans:
        instrument_sqlalchemy(engine)
    return engine


def readiness(engine: AsyncEngine, migrations: Path) -> Callable[[], Awaitable[bool]]:
    """SERVING only while the database answers and its schema is at head."""
    heads = migration_heads(migrations)

    async def ready() -> bool:
        if not await database_answers(engine):
            return False
        try:
            return await schema_is_at(engine, heads)
        except Exception:
            log.exception("could not read the schema version")
            return False

    return ready


@dataclass
class Running(Generic[T]):
    """A started service: its server, its wiring and its running jobs."""

    definition: ServiceDefinition[Any, T]
    settings: ServiceSettings
    wiring: Wiring[T]
    server: GrpcServer
    telemetry: Telemetry | None
    tasks: list[asyncio.Task[object]]
    _stopped: bool = False

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def core(self) -> T:
        return self.wiring.core

    async def stop(self, grace: float | None = None) -> None:
        """Drains: NOT_SERVING at once, in-flight calls get `grace` seconds (the settings' by default),
        then the jobs are stopped and everything the wiring opened is closed."""
        if self._stopped:
            return
        self._stopped = True
        await self.server.stop(self.settings.server.grace_seconds if grace is None else grace)
        for task in self.tasks:
            task.cancel()
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        for task, result in zip(self.tasks, results, strict=True):
            if isinstance(result, Exception):
                log.error("job %s ended with %s", task.get_name(), type(result).__name__)
        await self.wiring.close()
        if self.telemetry is not None:
            self.telemetry.shutdown()
        log.info("%s stopped", self.definition.name)

    async def serve_until_signal(self) -> None:
        """Serves until SIGTERM or SIGINT, then stops as `stop()` does."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        try:
            watcher = asyncio.create_task(stopping.wait())
            # A job that ends on its own (it should not) is as fatal as a signal: the pod restarts.
            done, _ = await asyncio.wait([watcher, *self.tasks], return_when=asyncio.FIRST_COMPLETED)
            if watcher not in done:
                log.error("a background job ended; stopping the service")
            watcher.cancel()
            log.info(
                "stopping: draining in-flight calls for up to %.1f s", self.settings.server.grace_seconds
            )
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()


async def migrate(definition: ServiceDefinition[Any, Any], wiring: Wiring[Any]) -> None:
    await upgrade_to_head(wiring.engine, definition.migrations)


async def start(
    definition: ServiceDefinition[S, T],
    settings: S,
    *,
    telemetry: Telemetry | None = None,
    port: int | None = None,
    **overrides: Any,
) -> Running[T]:
    """Bootstraps the service, migrates its database when configured, serves it and starts its jobs.

    `overrides` go to the bootstrap (a test's clock, a fake client); `port` replaces the configured one.
    """
    wiring = await definition.bootstrap(settings, telemetry=telemetry, **overrides)
    try:
        if settings.server.migrate_on_start:
            await migrate(definition, wiring)
        server = await start_grpc_server(
            services=wiring.services,
            verifier=build_verifier(settings.auth),
            host=settings.server.host,
            port=settings.server.port if port is None else port,
            ready=readiness(wiring.engine, definition.migrations),
            extra_interceptors=(
                grpc_server_interceptors() if telemetry is not None and telemetry.records_spans else ()
            ),
            share_port=settings.server.workers > 1 or os.environ.get(WORKER_MARKER) == "1",
            max_active_calls=settings.server.max_active_calls,
        )
    except BaseException:
        await wiring.close()
        raise
    tasks: list[asyncio.Task[object]] = [
        asyncio.create_task(job.run(), name=f"{definition.name}.{job.name}") for job in wiring.jobs
    ]
    log.info("%s listening on %s:%d", definition.name, settings.server.host, server.port)
    # What exists now (modules, descriptors, caches) lives as long as the process: moved out of the
    # collector's reach, it no longer lengthens every full collection, which pause all calls at once.
    gc.freeze()
    return Running(
        definition=definition,
        settings=settings,
        wiring=wiring,
        server=server,
        telemetry=telemetry,
        tasks=tasks,
    )


@contextlib.asynccontextmanager
async def wired(
    definition: ServiceDefinition[S, T], settings: S, **overrides: Any
) -> AsyncIterator[Wiring[T]]:
    """The service wired and migrated (when configured) but not serving: for seeding and for tests that
    call its use cases directly. Closed on leaving."""
    wiring = await definition.bootstrap(settings, **overrides)
    try:
        if settings.server.migrate_on_start:
            await migrate(definition, wiring)
        yield wiring
    finally:
        await wiring.close()


async def serve(definition: ServiceDefinition[S, Any], settings: S) -> None:
    telemetry = configure_telemetry(definition.name)
    running = await start(definition, settings, telemetry=telemetry)
    await running.serve_until_signal()


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


def run_loop(main: Coroutine[Any, Any, T], event_loop: str = "uvloop") -> T:
    """Runs `main` to its end on a new event loop: uvloop's (libuv) or the standard library's (`asyncio`).

    uvloop is the default of every process that serves: the standard loop's sockets and callbacks are
    Python, and in the mirror's overview they took as much CPU as the call's own work (asyncpg's writes
    alone were a sixth of it); on uvloop the mirror spends 0.9 ms of CPU on a call instead of 1.6 ms.
    grpc's asyncio stack runs on either. `EVENT_LOOP=asyncio` goes back to the standard loop.
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if event_loop == "uvloop" else None) as runner:
        return runner.run(main)


def main(definition: ServiceDefinition[Any, Any]) -> None:
    """What every service's `python -m` does: read and check its settings (a wrong value stops it with
    the variable's name), set up logging, and serve in one process or in `<SVC>_WORKERS` of them."""
    try:
        settings = definition.load_settings(None)
    except SettingsError as error:
        sys.exit(f"{definition.name}: configuration error: {error}")
    configure_logging(definition.name, settings.server.log_level)
    sys.exit(
        run_workers(
            settings.server,
            definition.module,
            lambda: run_loop(serve(definition, settings), settings.server.event_loop),
        )
    )
