"""A real directory process on a free port, holding the small synthetic city, for the scripts to talk to."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from aldredirekt.directory.v1 import directory_pb2 as pb
from aldredirekt.directory.v1 import directory_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.devissuer import DevIssuer
from support.ports import free_port
from tests.unit.directory.cities import city_files

REPOSITORY = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class DirectoryProcess:
    address: str
    dev_dir: Path

    def metadata(self, role: str) -> tuple[tuple[str, str], ...]:
        token = DevIssuer.load_or_create(self.dev_dir).mint(role=role)
        return (("authorization", f"Bearer {token}"),)


def wait_until_serving(address: str, process: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            assert process.poll() is None, "the directory exited while starting"
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, "the directory did not become SERVING in time"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def directory_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectoryProcess]:
    folder = tmp_path_factory.mktemp("directory-process")
    port = free_port()
    env = {
        **os.environ,
        "DIRECTORY_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'directory.db'}",
        "DIRECTORY_HOST": "127.0.0.1",
        "DIRECTORY_PORT": str(port),
        "AUTH_DEV_DIR": str(folder / "dev"),
        "DIRECTORY_GRACE_SECONDS": "1",
        "AUTH_DEV": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.directory.main"],
        cwd=REPOSITORY,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        running = DirectoryProcess(address=f"127.0.0.1:{port}", dev_dir=folder / "dev")
        wait_until_serving(running.address, process, within=60)
        with grpc.insecure_channel(running.address) as channel:
            directory_pb2_grpc.DirectoryServiceStub(channel).ImportDirectory(
                pb.ImportDirectoryRequest(
                    files=[pb.CsvFile(file_name=name, content=text) for name, text in city_files().items()]
                ),
                metadata=running.metadata("directory_admin"),
                timeout=60,
            )
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
