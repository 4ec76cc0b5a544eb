"""`python -m services.directory.main` as a process: refuses bad configuration, serves, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from aldredirekt.directory.v1 import directory_pb2 as pb
from aldredirekt.directory.v1 import directory_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.devissuer import DevIssuer
from support.ports import free_port
from tests.e2e.directory.conftest import bearer

REPOSITORY = Path(__file__).resolve().parents[3]
COMMAND = [sys.executable, "-m", "services.directory.main"]


def service_env(tmp_path: Path, port: int, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "DIRECTORY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'directory.db'}",
        "DIRECTORY_HOST": "127.0.0.1",
        "DIRECTORY_PORT": str(port),
        "AUTH_DEV_DIR": str(tmp_path / "dev"),
        "DIRECTORY_GRACE_SECONDS": "2",
        "AUTH_DEV": "true",
        **overrides,
    }


@dataclass
class Started:
    """A directory process a test started; `errors` is what it wrote on stderr, once it has ended."""

    process: subprocess.Popen[str]
    errors: str = ""


@contextlib.contextmanager
def started_service(env: dict[str, str]) -> Iterator[Started]:
    """Starts the service; at the end it is killed if still running, and its stderr is kept."""
    started = Started(
        subprocess.Popen(
            COMMAND, cwd=REPOSITORY, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
    )
    try:
        yield started
    finally:
        if started.process.poll() is None:
            started.process.kill()
        _, started.errors = started.process.communicate(timeout=10)


def test_a_bad_setting_stops_the_process_with_a_message_naming_the_variable(tmp_path: Path):
    env = service_env(tmp_path, free_port(), DIRECTORY_DB_POOL_SIZE="abc")

    finished = subprocess.run(COMMAND, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=60)

    assert finished.returncode != 0
    assert "DIRECTORY_DB_POOL_SIZE" in finished.stderr
    assert "abc" in finished.stderr
    assert not (tmp_path / "directory.db").exists()


def test_outside_local_runs_the_process_refuses_to_start_without_its_secrets(tmp_path: Path):
    env = service_env(tmp_path, free_port(), AUTH_DEV="false")
    for variable in ("AUTH_JWKS", "AUTH_ISSUER", "DIRECTORY_PAGE_TOKEN_KEY"):
        env.pop(variable, None)

    finished = subprocess.run(COMMAND, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=60)

    assert finished.returncode != 0
    assert "AUTH_JWKS" in finished.stderr
    assert "DIRECTORY_PAGE_TOKEN_KEY" in finished.stderr
    assert not (tmp_path / "directory.db").exists()


async def wait_until_serving(
    channel: grpc.aio.Channel, process: subprocess.Popen[str], within: float
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + within
    while True:
        assert process.poll() is None, "the service exited while starting"
        try:
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        assert time.monotonic() < deadline, "the service did not become SERVING in time"
        await asyncio.sleep(0.1)


async def test_the_process_serves_and_exits_cleanly_on_sigterm(tmp_path: Path):
    port = free_port()
    with started_service(service_env(tmp_path, port)) as started:
        process = started.process
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await wait_until_serving(channel, process, within=30)
            token = DevIssuer.load_or_create(tmp_path / "dev").mint(role="agent")
            answer = await directory_pb2_grpc.DirectoryServiceStub(channel).GetDistrict(
                pb.GetDistrictRequest(name="districts/norrmalm"), metadata=bearer(token), timeout=5
            )

        process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, 10)
        took = time.monotonic() - stopped_at

    assert answer.current_district.name == "districts/norra-innerstaden"
    assert process.returncode == 0, started.errors
    assert took < 5


def live_workers(parent: int, expected: int, within: float) -> set[int]:
    """The parent's child processes once `expected` of them run (or what there is after `within` s)."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    deadline = time.monotonic() + within
    while True:
        found = {int(pid) for pid in children.read_text().split()} if children.exists() else set()
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def still_running(pids: set[int]) -> bool:
    return any(Path(f"/proc/{pid}").exists() for pid in pids)


async def test_several_workers_share_the_port_and_all_stop_on_sigterm(tmp_path: Path):
    port = free_port()
    with started_service(service_env(tmp_path, port, DIRECTORY_WORKERS="2")) as started:
        process = started.process
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await wait_until_serving(channel, process, within=30)
        workers = await asyncio.to_thread(live_workers, process.pid, 2, 20)
        # A worker that could not bind the shared port would have exited, and the parent stopped the rest.
        await asyncio.sleep(1)
        both_alive = (
            process.poll() is None and len(await asyncio.to_thread(live_workers, process.pid, 2, 0)) == 2
        )

        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, 15)

    assert len(workers) == 2
    assert both_alive
    assert process.returncode == 0, started.errors
    assert not await asyncio.to_thread(still_running, workers)


async def test_a_second_service_on_a_taken_port_fails_instead_of_sharing_it(tmp_path: Path):
    port = free_port()
    with started_service(service_env(tmp_path, port)) as first:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await wait_until_serving(channel, first.process, within=30)
        second = await asyncio.to_thread(
            subprocess.run,
            COMMAND,
            cwd=REPOSITORY,
            env=service_env(tmp_path / "other", port),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert second.returncode != 0
