"""`python -m services.fees.main` as a process: parameter files it cannot vouch for stop it with a message
naming the file and the parameter; with good ones it migrates, serves and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from aldredirekt.fees.v1 import fees_pb2 as pb
from aldredirekt.fees.v1 import fees_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.devissuer import DevIssuer
from services.fees.model import default_parameters_folder
from support.ports import free_port

REPOSITORY = Path(__file__).resolve().parents[3]
COMMAND = [sys.executable, "-m", "services.fees.main"]


def service_env(tmp_path: Path, port: int, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "FEES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fees.db'}",
        "FEES_PORT": str(port),
        "FEES_GRACE_SECONDS": "1",
        "AUTH_DEV": "true",
        "AUTH_DEV_DIR": str(tmp_path / "dev"),
        "LOG_LEVEL": "WARNING",
        **overrides,
    }


def test_a_parameter_file_with_a_gap_stops_the_process_naming_file_and_parameter(tmp_path: Path):
    folder = tmp_path / "parameters"
    shutil.copytree(default_parameters_folder(), folder)
    taxa = folder / "stockholm_taxa.toml"
    taxa.write_text(
        taxa.read_text().replace(
            "valid_from = 2025-01-01\nvalid_to = 2025-12-31\nvalue = 17_600",
            "valid_from = 2025-02-01\nvalid_to = 2025-12-31\nvalue = 17_600",
            1,
        )
    )
    env = service_env(tmp_path, free_port(), FEES_PARAMETERS_DIR=str(folder))

    finished = subprocess.run(COMMAND, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=60)

    assert finished.returncode != 0
    assert "fees: configuration error: FEES_PARAMETERS_DIR" in finished.stderr
    assert "stockholm_taxa.toml: taxa_trygghetslarm: 2025-01-01: has no value from here until 2025-02-01" in (
        finished.stderr
    )
    assert not (tmp_path / "fees.db").exists()


async def _serving_then_what_if(port: int, token: str) -> pb.CalculateCareFeeWhatIfResponse:
    deadline = time.monotonic() + 30
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError:
                pass
            assert time.monotonic() < deadline, "the fees service never served"
            await asyncio.sleep(0.1)
        stub = fees_pb2_grpc.FeeServiceStub(channel)  # type: ignore[no-untyped-call]
        what_if: pb.CalculateCareFeeWhatIfResponse = await stub.CalculateCareFeeWhatIf(
            pb.CalculateCareFeeWhatIfRequest(inputs=pb.FeeInputs(), month="2026-05"),
            metadata=(("authorization", f"Bearer {token}"),),
        )
        return what_if


def test_the_process_migrates_serves_and_stops_on_sigterm(tmp_path: Path):
    port = free_port()
    process = subprocess.Popen(
        COMMAND,
        cwd=REPOSITORY,
        env=service_env(tmp_path, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        token = DevIssuer.load_or_create(tmp_path / "dev").mint(role="citizen", person_number="194001011230")
        answer = asyncio.run(_serving_then_what_if(port, token))
        assert answer.fee.month == "2026-05"
        assert answer.fee.total.ore == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
