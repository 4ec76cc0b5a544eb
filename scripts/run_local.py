"""`make run`: migrates and seeds the local SQLite databases, starts the services, and waits for Ctrl-C.

Every process is a child of this one; Ctrl-C (or SIGTERM) stops them all, each draining its calls. What is
started is the COMPONENTS table, in order, each once the one before it is up. A component that cannot start,
or dies later, is named with the end of its log under var/log/, and everything else is then stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

import upstreams
from support.ports import HOST, port_is_taken

ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 20
START_SECONDS = 30.0
# What is read of a log to find its last lines; a service that ran for days has a long one.
LOG_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Component:
    """A process `make run` starts: `python -m <module>`, the port it serves on and how to tell it is up."""

    name: str
    module: str
    port_variable: str
    default_port: int
    grpc: bool = True
    # Arguments after the module; "{port}" becomes the component's port, for programs that take it so.
    arguments: tuple[str, ...] = ()
    # For an HTTP component: the path that answers 200 once it is ready (else a TCP connect will do).
    ready_path: str = ""
    # Every port it listens on, from its own: the stand-ins listen on thirteen.
    all_ports: Callable[[int], Sequence[int]] | None = None
    # How long it may take to come up, when longer than the others: the stand-ins generate the city first.
    start_seconds: float | None = None

    def port(self, environ: Mapping[str, str]) -> int:
        """The port from the component's variable, or the default; ValueError when it is not a port."""
        raw = environ.get(self.port_variable, "").strip()
        if not raw:
            return self.default_port
        port = int(raw)
        if not 0 < port < 65536:
            raise ValueError(raw)
        return port

    def ports(self, environ: Mapping[str, str]) -> list[int]:
        port = self.port(environ)
        return list(self.all_ports(port)) if self.all_ports else [port]

    def command(self, environ: Mapping[str, str]) -> list[str]:
        port = self.port(environ)
        return [sys.executable, "-m", self.module, *(a.format(port=port) for a in self.arguments)]


COMPONENTS = [
    Component(
        "smtp-sink", "support.smtp_sink", "SMTP_SINK_PORT", 2525, grpc=False, arguments=("--port", "{port}")
    ),
    # Agresso and each district's Paraply (ports from 7000) with their control listener, for the mirror.
    Component(
        "upstreams",
        "upstreams",
        "UPSTREAMS_BASE_PORT",
        7000,
        grpc=False,
        all_ports=lambda base: sorted(upstreams.layout(base).values()),
        start_seconds=120.0,
    ),
    Component("directory", "services.directory.main", "DIRECTORY_PORT", 50052),
    Component("mirror", "services.mirror.main", "MIRROR_PORT", 50053),
    Component("case", "services.case.main", "CASE_PORT", 50051),
    # Asks the mirror for fee bases, the case service for billable contacts, Agresso's stand-in for deferrals.
    Component("fees", "services.fees.main", "FEES_PORT", 50054),
    Component("gateway", "gateway", "GATEWAY_PORT", 8080, grpc=False, ready_path="/readyz"),
]

BANNER = (
    "\nA development token (agent role, valid one hour):\n"
    "  make token ROLE=agent      # also officer UNIT=units/…, operator, finance, citizen PERSON=…\n"
    "\nREST for the front ends, with its OpenAPI document and documentation page:\n"
    "  http://127.0.0.1:8080/api/v1/docs\n"
    '  curl -s -H "Authorization: Bearer $(make -s token)" '
    "'http://127.0.0.1:8080/api/v1/districts?page_size=3'\n"
    "\nA caller's consent, its access grant and one read across all districts and Agresso:\n"
    "  .venv/bin/python -m scripts.demo            # each step with the command that does it by hand\n"
    "\nTry the services over gRPC:\n"
    "  .venv/bin/python -m scripts.call directory ListDistricts '{\"page_size\": 3}'\n"
    "  .venv/bin/python -m scripts.call directory ResolveResponsible "
    '\'{"person_number": "19400101-1230", "postal_code": "16270", "purpose": "demo"}\'\n'
    "  .venv/bin/python -m scripts.call case GetCaseStatistics "
    '\'{"startDate": {"year": 2026, "month": 1, "day": 1}, "endDate": {"year": 2026, "month": 12, '
    '"day": 31}, "groupBy": ["STATISTICS_DIMENSION_CASE_TYPE"]}\'\n'
    "  .venv/bin/python -m scripts.call mirror ListSources --role operator\n"
    "\nA care fee worked out on the phone (a single pensioner, 18,000 kr a month, 20 hours of home help):\n"
    '  .venv/bin/python -m scripts.call fees CalculateCareFeeWhatIf \'{"month": "2026-03", "inputs": '
    '{"incomes": [{"kind": "INCOME_KIND_PENSION", "monthly": {"ore": "1800000"}}], '
    '"housingCost": {"ore": "700000"}, "services": {"hemtjanstHours": 20}}}\'\n'
    "\nMail sent to the units' functional mailboxes lands in var/mail/ (one .eml file each).\n"
    "The stand-ins' knobs (latency, errors, downtime, …): see upstreams/README.md.\n"
    "\nCtrl-C stops everything."
)


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def shown(path: Path) -> str:
    """The path as a reader in the repository would type it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def port_problems(components: Sequence[Component], environ: Mapping[str, str]) -> list[str]:
    """Why some component could not listen where it is meant to: a bad port variable or a taken port."""
    problems = []
    for component in components:
        try:
            ports = component.ports(environ)
        except ValueError:
            raw = environ.get(component.port_variable)
            problems.append(
                f"{component.port_variable} must be a port number for {component.name}, got {raw!r}"
            )
            continue
        for port in ports:
            if port_is_taken(port):
                problems.append(
                    f"port {port} of {component.name} ({component.port_variable}) is taken: "
                    "another `make run` may be up; stop it first"
                )
    return problems


@dataclass
class Child:
    """A started component, and where this run's part of its log begins."""

    component: Component
    process: subprocess.Popen[bytes]
    address: str
    log: Path
    log_start: int
    started_at: float = 0.0

    @classmethod
    def start(cls, component: Component, log_dir: Path, environ: Mapping[str, str]) -> Child:
        log = log_dir / f"{component.name}.log"
        with log.open("ab") as log_file:
            # Earlier runs stay in the log; only what this one writes is shown when it fails.
            start = log_file.tell()
            process = subprocess.Popen(
                component.command(environ),
                cwd=ROOT,
                env=dict(environ),
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )
        return cls(component, process, f"{HOST}:{component.port(environ)}", log, start, time.monotonic())

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        try:
            with self.log.open("rb") as log_file:
                end = log_file.seek(0, os.SEEK_END)
                log_file.seek(max(self.log_start, end - LOG_TAIL_BYTES))
                text = log_file.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def report(self, what_happened: str) -> None:
        """Says what happened to the component and shows the end of its log: most often the cause."""
        tail = self.log_tail()
        if not tail:
            warn(f"!! {self.component.name} {what_happened}; {shown(self.log)} is empty")
            return
        warn(f"!! {self.component.name} {what_happened}; the end of {shown(self.log)}:")
        for line in tail:
            warn(f"   {line}")


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with {returncode}"


async def is_up(component: Component, address: str) -> bool:
    if component.grpc:
        # A fresh channel each time: a channel that failed to connect waits out a backoff before retrying.
        async with grpc.aio.insecure_channel(address) as channel:
            try:
                answer = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            except grpc.aio.AioRpcError:
                return False
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
    host, _, port = address.rpartition(":")
    if component.ready_path:
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                answer = await client.get(f"http://{address}{component.ready_path}")
        except httpx.HTTPError:
            return False
        return answer.status_code == 200
    for each in component.all_ports(int(port)) if component.all_ports else [int(port)]:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, each), timeout=1)
        except (OSError, TimeoutError):
            return False
        writer.close()
        await writer.wait_closed()
    return True


async def wait_until_up(
    child: Child, children: Sequence[Child], should_stop: Callable[[], bool], within: float
) -> bool:
    """Whether the child came up; False as soon as any child exits, a stop is asked for, or time is up."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if should_stop() or first_ended(children) is not None:
            return False
        if await is_up(child.component, child.address):
            return True
        await asyncio.sleep(0.2)
    return False


def first_ended(children: Sequence[Child]) -> Child | None:
    return next((child for child in children if child.process.poll() is not None), None)


def stop_all(children: Sequence[Child]) -> None:
    """Stops the children that still run, the last started first, each given time to drain its calls."""
    running = [child for child in reversed(children) if child.process.poll() is None]
    for child in running:
        child.process.send_signal(signal.SIGTERM)
    for child in running:
        try:
            child.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
        print(f"== {child.component.name} stopped", flush=True)


def run(
    components: Sequence[Component],
    *,
    log_dir: Path,
    environ: Mapping[str, str] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    banner: str = "",
    start_seconds: float = START_SECONDS,
    when_up: Callable[[Sequence[Child]], None] | None = None,
) -> int:
    """Starts the components and watches them until should_stop() says so (0) or one of them fails (1)."""
    environ = os.environ if environ is None else environ
    log_dir.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    try:
        for component in components:
            child = Child.start(component, log_dir, environ)
            children.append(child)
            within = component.start_seconds or start_seconds
            if not asyncio.run(wait_until_up(child, children, should_stop, within)):
                if should_stop():
                    return 0
                ended = first_ended(children)
                if ended is None:
                    child.report(f"did not come up on {child.address} within {within:g} s")
                else:
                    when = "starting" if ended is child else f"{component.name} was starting"
                    ended.report(f"{how_it_ended(ended.process.returncode)} while {when}")
                return 1
            print(f"== {component.name} serving on {child.address} (log: {shown(child.log)})", flush=True)
        if banner:
            print(banner, flush=True)
        if when_up is not None:
            when_up(children)
        while not should_stop():
            ended = first_ended(children)
            if ended is not None:
                ended.report(how_it_ended(ended.process.returncode))
                warn("!! stopping everything else")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        stop_all(children)


def configure_mirror(environ: dict[str, str] | os._Environ[str]) -> None:
    """Points the mirror at the stand-ins: their sources file under var/mirror, their secrets in the
    environment the children inherit (the file names them, it does not hold them)."""
    base = int(environ.get("UPSTREAMS_BASE_PORT", "7000") or 7000)
    ports = upstreams.layout(base)
    urls = {name: f"http://{HOST}:{port}" for name, port in ports.items()}
    secrets = upstreams.credentials(int(environ.get("UPSTREAMS_SECRET_SEED", "2026") or 2026))
    folder = ROOT / "var" / "mirror"
    folder.mkdir(parents=True, exist_ok=True)
    sources = folder / "sources.json"
    sources.write_text(json.dumps(upstreams.sources_document(urls), indent=2))
    environ.setdefault("MIRROR_SOURCES_FILE", str(sources.relative_to(ROOT)))
    for name, value in secrets.environment().items():
        environ.setdefault(name, value)


def report_first_sync(children: Sequence[Child], *, within: float = 300.0) -> None:
    """Says, in the background, when the mirror has read every source in full for the first time."""
    mirror = next((c for c in children if c.component.name == "mirror"), None)
    if mirror is None:
        return

    def watch() -> None:
        from aldredirekt.mirror.v1 import mirror_pb2, mirror_pb2_grpc

        from services.common.devissuer import DevIssuer

        token = DevIssuer.load_or_create(ROOT / "var" / "dev-issuer").mint(role="operator")
        deadline = time.monotonic() + within
        with grpc.insecure_channel(mirror.address) as channel:
            stub = mirror_pb2_grpc.MirrorServiceStub(channel)
            while time.monotonic() < deadline and mirror.process.poll() is None:
                try:
                    listed = stub.ListSources(
                        mirror_pb2.ListSourcesRequest(),
                        metadata=(("authorization", f"Bearer {token}"),),
                        timeout=5,
                    )
                except grpc.RpcError:
                    time.sleep(1)
                    continue
                never = mirror_pb2.SOURCE_STATE_NEVER_SYNCED
                if listed.sources and all(
                    s.state != never and s.synced_through.seconds for s in listed.sources
                ):
                    records = sum(s.records for s in listed.sources)
                    took = time.monotonic() - mirror.started_at
                    print(
                        f"== mirror: first full sync of {len(listed.sources)} sources done, {records:,} "
                        f"records in {took:.0f} s",
                        flush=True,
                    )
                    return
                time.sleep(1)

    threading.Thread(target=watch, name="first-sync", daemon=True).start()


def run_step(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def main() -> int:
    # A local run: the development issuer, development keys and every service on loopback. Production
    # never sets this, and without it a service refuses to start on missing settings.
    os.environ["AUTH_DEV"] = "true"
    # Before anything is seeded or started: a second `make run` must not get halfway and then fail.
    problems = port_problems(COMPONENTS, os.environ)
    if problems:
        for problem in problems:
            warn(f"!! {problem}")
        return 1
    (ROOT / "var").mkdir(exist_ok=True)
    configure_mirror(os.environ)
    print("== migrating and seeding the local databases under var/", flush=True)
    run_step("-m", "synthcity.seed_directory")
    run_step("-m", "synthcity.seed_cases")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return run(
        COMPONENTS,
        log_dir=ROOT / "var" / "log",
        should_stop=lambda: stopping,
        banner=BANNER,
        when_up=report_first_sync,
    )


if __name__ == "__main__":
    sys.exit(main())
