"""`make run`: migrates and seeds the local SQLite databases, starts the services, and waits for Ctrl-C.

Every process is a child of this one; Ctrl-C (or SIGTERM) stops them all, each draining its calls. What is
started is the COMPONENTS table, in order, each once the one before it is up. A component that cannot start,
or dies later, is named with the end of its log under var/log/, and everything else is then stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

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

    def port(self, environ: Mapping[str, str]) -> int:
        """The port from the component's variable, or the default; ValueError when it is not a port."""
        raw = environ.get(self.port_variable, "").strip()
        if not raw:
            return self.default_port
        port = int(raw)
        if not 0 < port < 65536:
            raise ValueError(raw)
        return port

    def command(self, environ: Mapping[str, str]) -> list[str]:
        port = self.port(environ)
        return [sys.executable, "-m", self.module, *(a.format(port=port) for a in self.arguments)]


COMPONENTS = [
    Component(
        "smtp-sink", "support.smtp_sink", "SMTP_SINK_PORT", 2525, grpc=False, arguments=("--port", "{port}")
    ),
    Component("directory", "services.directory.main", "DIRECTORY_PORT", 50052),
    Component("case", "services.case.main", "CASE_PORT", 50051),
]

BANNER = (
    "\nA development token (agent role, valid one hour):\n"
    "  make token ROLE=agent      # also officer UNIT=units/…, directory_admin, citizen PERSON=…\n"
    "\nTry it:\n"
    "  .venv/bin/python -m scripts.call directory ListDistricts '{\"page_size\": 3}'\n"
    "  .venv/bin/python -m scripts.call directory SearchOfficers "
    '\'{"language": "fi", "page_size": 2}\'\n'
    "  .venv/bin/python -m scripts.call directory ResolveResponsible "
    '\'{"person_number": "19400101-1230", "postal_code": "16270", "purpose": "demo"}\'\n'
    "  .venv/bin/python -m scripts.call case ListReferenceData\n"
    "  .venv/bin/python -m scripts.call case GetCaseStatistics "
    '\'{"startDate": {"year": 2026, "month": 1, "day": 1}, "endDate": {"year": 2026, "month": 12, '
    '"day": 31}, "groupBy": ["STATISTICS_DIMENSION_CASE_TYPE"]}\'\n'
    "\nMail sent to the units' functional mailboxes lands in var/mail/ (one .eml file each).\n"
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
            port = component.port(environ)
        except ValueError:
            raw = environ.get(component.port_variable)
            problems.append(
                f"{component.port_variable} must be a port number for {component.name}, got {raw!r}"
            )
            continue
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
        return cls(component, process, f"{HOST}:{component.port(environ)}", log, start)

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
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout=1)
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
) -> int:
    """Starts the components and watches them until should_stop() says so (0) or one of them fails (1)."""
    environ = os.environ if environ is None else environ
    log_dir.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    try:
        for component in components:
            child = Child.start(component, log_dir, environ)
            children.append(child)
            if not asyncio.run(wait_until_up(child, children, should_stop, start_seconds)):
                if should_stop():
                    return 0
                ended = first_ended(children)
                if ended is None:
                    child.report(f"did not come up on {child.address} within {start_seconds:g} s")
                else:
                    when = "starting" if ended is child else f"{component.name} was starting"
                    ended.report(f"{how_it_ended(ended.process.returncode)} while {when}")
                return 1
            print(f"== {component.name} serving on {child.address} (log: {shown(child.log)})", flush=True)
        if banner:
            print(banner, flush=True)
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
    print("== migrating and seeding the local databases under var/", flush=True)
    run_step("-m", "synthcity.seed_directory")
    run_step("-m", "synthcity.seed_cases")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return run(COMPONENTS, log_dir=ROOT / "var" / "log", should_stop=lambda: stopping, banner=BANNER)


if __name__ == "__main__":
    sys.exit(main())
