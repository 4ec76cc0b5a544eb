"""`make run`: migrates and seeds the local SQLite databases, starts the services, and waits for Ctrl-C.

Every process is a child of this one; Ctrl-C (or SIGTERM) stops them all, each draining its calls.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Component:
    name: str
    module: str
    port_variable: str
    port: int
    grpc: bool = True

    @property
    def address(self) -> str:
        return f"127.0.0.1:{int(os.environ.get(self.port_variable, self.port))}"


COMPONENTS = [
    Component("smtp-sink", "support.smtp_sink", "SMTP_SINK_PORT", 2525, grpc=False),
    Component("directory", "services.directory.main", "DIRECTORY_PORT", 50052),
    Component("case", "services.case.main", "CASE_PORT", 50051),
]


def run_step(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


async def wait_listening(address: str, deadline: float) -> bool:
    host, _, port = address.rpartition(":")
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            return True
        except OSError:
            await asyncio.sleep(0.2)
    return False


async def wait_serving(address: str, deadline: float) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    return False


def main() -> int:
    (ROOT / "var").mkdir(exist_ok=True)
    print("== migrating and seeding the local databases under var/", flush=True)
    run_step("-m", "synthcity.seed_directory")
    run_step("-m", "synthcity.seed_cases")
    children: list[tuple[Component, subprocess.Popen[bytes]]] = []
    logs = ROOT / "var" / "log"
    logs.mkdir(exist_ok=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for component in COMPONENTS:
            log_file = (logs / f"{component.name}.log").open("ab")
            process = subprocess.Popen(
                [sys.executable, "-m", component.module],
                cwd=ROOT,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )
            children.append((component, process))
            wait = wait_serving if component.grpc else wait_listening
            if not asyncio.run(wait(component.address, time.monotonic() + 30)):
                print(
                    f"!! {component.name} did not become healthy; see var/log/{component.name}.log",
                    flush=True,
                )
                return 1
            print(f"== {component.name} serving on {component.address} (log: var/log/{component.name}.log)")
        print(
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
            "\nCtrl-C stops everything.",
            flush=True,
        )
        while not stopping:
            for component, process in children:
                if process.poll() is not None:
                    print(
                        f"!! {component.name} exited with {process.returncode}; "
                        f"see var/log/{component.name}.log"
                    )
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        for _, process in reversed(children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for component, process in reversed(children):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
            print(f"== {component.name} stopped")


if __name__ == "__main__":
    sys.exit(main())
