"""The gateway under load: what HTTP/JSON costs over calling the case service directly over gRPC.

    python bench/bench_gateway.py [--in-flight 32] [--duration 8] [--client-processes 2]

Starts a throwaway PostgreSQL, the directory (SQLite) and the case service (PostgreSQL), with the
development issuer, and the gateway in processes of their own, plus a bare Starlette app on uvicorn (one
endpoint answering `{}`), the floor any app on this framework and server stands on. The load comes from
client processes of its own (a minimal keep-alive HTTP/1.1 client for HTTP, grpc.aio for gRPC), so clients
and servers never share an event loop; on this machine they do share its cores, and the JSON gives the CPU
each used.

- GET a case at 500 requests/s offered, through the gateway and directly over gRPC, each call timed from
  when it was due (bench.harness.load_loop): the gateway's added latency is the difference of the p50s and
  of the p99s (targets: ≤ 2 ms and ≤ 5 ms). Both are measured again at the rate scaled by this run's echo
  figure (bench.harness.measure_latency_target), the figure to compare between runs.
- The same at half the rate the case service answered GetCase at full speed over gRPC in this run: a load
  it keeps up with on any machine, where the difference is the gateway's own cost rather than a backlog.
- Throughput at full speed of that GET and of POST /api/v1/cases (each with its own Idempotency-Key)
  through the gateway, of the bare endpoint, and of the GET over gRPC; the gateway's as a share of the bare
  endpoint's.

Prints one line of JSON on stdout; progress goes to stderr. Exits 0 whether or not the targets are met.
`--serve-bare PORT` is how the benchmark starts its bare app in a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from aldredirekt.case.v1 import case_pb2 as pb

from bench.harness import (
    CALL_TIMEOUT_S,
    Call,
    EchoScenario,
    ServiceProcess,
    add_load_arguments,
    echo_server_process,
    emit,
    exit_on_sigterm,
    measure_latency_target,
    note,
    postgres_database,
    run_load,
)
from services.common.devissuer import DevIssuer
from support.ports import free_port

TARGETS = {"added_p50_ms": 2.0, "added_p99_ms": 5.0, "rate_per_s": 500}
SUSTAINED_SHARE = 0.5
REPO_ROOT = Path(__file__).resolve().parents[1]

NEW_CASE = pb.CreateCaseRequest(
    case=pb.Case(
        category="aldreomsorg",
        case_type="hemtjanst",
        case_class="information-och-vagledning",
        person_number="19380412-2426",
        feedback_channel=pb.FEEDBACK_CHANNEL_PHONE,
    ),
    contact=pb.Contact(
        channel=pb.CHANNEL_PHONE, party=pb.CONTACT_PARTY_SELF, summary="Frågar om hemtjänsten."
    ),
)
NEW_CASE_JSON: dict[str, Any] = {
    "case": {
        "category": "aldreomsorg",
        "case_type": "hemtjanst",
        "case_class": "information-och-vagledning",
        "person_number": "19380412-2426",
        "feedback_channel": "FEEDBACK_CHANNEL_PHONE",
    },
    "contact": {
        "channel": "CHANNEL_PHONE",
        "party": "CONTACT_PARTY_SELF",
        "summary": "Frågar om hemtjänsten.",
    },
}


class UnexpectedAnswer(Exception):
    """Answered, but not what was asked for; counted as an error."""


# ---- scenarios --------------------------------------------------------------------------------------------


class _Connection:
    """One keep-alive HTTP/1.1 connection. httpx spent 3.5 ms of CPU per call here, more than the servers
    it measured; this spends a few tens of microseconds, so the clients no longer starve the servers of
    the machine's two cores."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        at = lowered.find(b"\r\ncontent-length:")
        if at < 0:
            raise UnexpectedAnswer("no content-length")
        end = lowered.index(b"\r\n", at + 2)
        body = await self.reader.readexactly(int(lowered[at + 17 : end]))
        return status, body


class HttpClient:
    """A pool of keep-alive connections to one host, one per call in flight."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self.idle: list[_Connection] = []
        self.opened: list[_Connection] = []

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        connection = self.idle.pop() if self.idle else await self._open()
        try:
            answer = await connection.request(raw)
        except BaseException:
            connection.writer.close()
            raise
        self.idle.append(connection)
        return answer

    async def _open(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        connection = _Connection(reader, writer)
        self.opened.append(connection)
        return connection

    def close(self) -> None:
        for connection in self.opened:
            connection.writer.close()


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextlib.asynccontextmanager
async def _http(base_url: str) -> AsyncIterator[HttpClient]:
    host, _, port = base_url.removeprefix("http://").partition(":")
    client = HttpClient(host, int(port))
    try:
        yield client
    finally:
        client.close()


@dataclass(frozen=True)
class HttpGetCase:
    base_url: str
    token: str
    case: str
    name: str = "gateway GET case"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        raw = _request("GET", f"/api/v1/{self.case}", {"Authorization": f"Bearer {self.token}"})
        async with _http(self.base_url) as client:

            async def call(n: int) -> None:
                status, _ = await client.request(raw)
                if status != 200:
                    raise UnexpectedAnswer(status)

            yield call


@dataclass(frozen=True)
class HttpCreateCase:
    base_url: str
    token: str
    name: str = "gateway POST case"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        prefix = f"bench-{os.getpid()}-{time.monotonic_ns()}"
        body = json.dumps(NEW_CASE_JSON).encode()
        async with _http(self.base_url) as client:

            async def call(n: int) -> None:
                headers = {
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"{prefix}-{n}",
                }
                status, _ = await client.request(_request("POST", "/api/v1/cases", headers, body))
                if status != 200:
                    raise UnexpectedAnswer(status)

            yield call


@dataclass(frozen=True)
class HttpBare:
    base_url: str
    name: str = "bare Starlette GET"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        raw = _request("GET", "/", {})
        async with _http(self.base_url) as client:

            async def call(n: int) -> None:
                status, _ = await client.request(raw)
                if status != 200:
                    raise UnexpectedAnswer(status)

            yield call


@dataclass(frozen=True)
class GrpcGetCase:
    address: str
    token: str
    case: str
    name: str = "gRPC GetCase"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        metadata = (("authorization", f"Bearer {self.token}"),)
        request = pb.GetCaseRequest(name=self.case)
        async with grpc.aio.insecure_channel(self.address) as channel:
            get = channel.unary_unary(
                "/aldredirekt.case.v1.CaseService/GetCase",
                request_serializer=pb.GetCaseRequest.SerializeToString,
                response_deserializer=pb.GetCaseResponse.FromString,
            )

            async def call(n: int) -> None:
                answer = await get(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
                if answer.case.name != self.case:
                    raise UnexpectedAnswer(answer.case.name)

            yield call


# ---- the bare app -----------------------------------------------------------------------------------------


def serve_bare(port: int) -> None:
    """A trivial Starlette app on uvicorn, configured as the gateway's server is."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def empty(request: Request) -> JSONResponse:
        return JSONResponse({})

    app = Starlette(routes=[Route("/", empty)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, server_header=False)


async def wait_for_http(url: str, process: ServiceProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            if process.process is None or process.process.poll() is not None:
                raise RuntimeError(f"{process.name} exited before serving")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url, timeout=1.0)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{process.name} did not serve within {timeout_s:.0f} s")
            await asyncio.sleep(0.1)


async def create_case(address: str, token: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        create = channel.unary_unary(
            "/aldredirekt.case.v1.CaseService/CreateCase",
            request_serializer=pb.CreateCaseRequest.SerializeToString,
            response_deserializer=pb.CreateCaseResponse.FromString,
        )
        answer = await create(NEW_CASE, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
        return str(answer.case.name)


# ---- the run ----------------------------------------------------------------------------------------------


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_load_arguments(parser, duration=8.0, client_processes=2)
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def _added(gateway: dict[str, Any], direct: dict[str, Any]) -> dict[str, float | None]:
    def diff(key: str) -> float | None:
        if gateway[key] is None or direct[key] is None:
            return None
        return round(float(gateway[key]) - float(direct[key]), 2)

    return {"p50_ms": diff("p50_ms"), "p99_ms": diff("p99_ms")}


def _added_met(added: dict[str, float | None], gateway: dict[str, Any], direct: dict[str, Any]) -> bool:
    p50, p99 = added["p50_ms"], added["p99_ms"]
    served = gateway["errors"] == direct["errors"] == 0
    return (
        served
        and p50 is not None
        and p99 is not None
        and p50 <= TARGETS["added_p50_ms"]
        and (p99 <= TARGETS["added_p99_ms"])
    )


def main() -> int:
    arguments = _arguments()
    if arguments.serve_bare is not None:
        serve_bare(arguments.serve_bare)
        return 0
    exit_on_sigterm()
    with (
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as folder,
        postgres_database("bench_gateway_case") as (_server, case_url),
    ):
        dev_dir = Path(folder) / "dev"
        issuer = DevIssuer.load_or_create(dev_dir)
        token = issuer.mint(role="agent", subject="bench-agent", ttl_seconds=7200)
        base = {"AUTH_DEV": "true", "AUTH_DEV_DIR": str(dev_dir), "LOG_LEVEL": "WARNING"}
        directory_port, case_port, gateway_port, bare_port = (free_port() for _ in range(4))
        directory = ServiceProcess(
            "directory",
            "services.directory.main",
            port=directory_port,
            env={
                **base,
                "DIRECTORY_PORT": str(directory_port),
                "DIRECTORY_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/directory.db",
            },
        )
        case = ServiceProcess(
            "case",
            "services.case.main",
            port=case_port,
            env={
                **base,
                "CASE_PORT": str(case_port),
                "CASE_DATABASE_URL": case_url,
                "CASE_DIRECTORY_ADDRESS": f"127.0.0.1:{directory_port}",
                "CASE_MIRROR_ADDRESS": f"127.0.0.1:{free_port()}",
                "CASE_GRANT_KEY_FILE": f"{folder}/grant-key.pem",
                "CASE_SMTP_PORT": str(free_port()),
            },
        )
        gateway = ServiceProcess(
            "gateway",
            "gateway",
            port=gateway_port,
            env={
                **base,
                "GATEWAY_PORT": str(gateway_port),
                "GATEWAY_CASE_ADDRESS": f"127.0.0.1:{case_port}",
                "GATEWAY_DIRECTORY_ADDRESS": f"127.0.0.1:{directory_port}",
                "GATEWAY_MIRROR_ADDRESS": f"127.0.0.1:{free_port()}",
                "GATEWAY_DESCRIPTORS": str(REPO_ROOT / "gen" / "descriptors.binpb"),
            },
        )
        bare = ServiceProcess(
            "bare app", "bench.bench_gateway", port=bare_port, args=["--serve-bare", str(bare_port)]
        )
        echo = echo_server_process()
        started: list[ServiceProcess] = []
        try:
            for process in (directory, case):
                process.start()
                started.append(process)
                asyncio.run(process.wait_until_serving())
            for process, url in (
                (gateway, f"http://127.0.0.1:{gateway_port}/healthz"),
                (bare, f"http://127.0.0.1:{bare_port}/"),
            ):
                process.start()
                started.append(process)
                asyncio.run(wait_for_http(url, process))
            echo.start()
            started.append(echo)
            asyncio.run(echo.wait_until_serving(health=False))
            case_name = asyncio.run(create_case(case.address, token))
            note(f"reading {case_name}")
            gateway_url = f"http://127.0.0.1:{gateway_port}"
            cpu = {"gateway": lambda: [gateway.pid], "case": lambda: [case.pid]}
            load = {
                "in_flight": arguments.in_flight,
                "duration_s": arguments.duration,
                "warmup_s": arguments.warmup,
                "processes": arguments.client_processes,
            }
            echo_result = run_load(EchoScenario(echo.address), **load)
            get_http = HttpGetCase(gateway_url, token, case_name)
            get_grpc = GrpcGetCase(case.address, token, case_name)
            grpc_full = run_load(get_grpc, cpu_groups=cpu, **load).summary()
            rate = float(TARGETS["rate_per_s"])
            # A rate the case service keeps up with on this machine, whatever its speed: the gateway's own
            # cost shows there, not the queue of a backend that has fallen behind.
            sustained = round(SUSTAINED_SHARE * grpc_full["calls_per_s"], 1)
            http_sustained = run_load(get_http, rate=sustained, cpu_groups=cpu, **load).summary()
            grpc_sustained = run_load(get_grpc, rate=sustained, cpu_groups=cpu, **load).summary()
            http_at_rate = measure_latency_target(
                get_http, rate=rate, p99_limit_ms=1000.0, echo=echo_result, cpu_groups=cpu, **load
            )
            grpc_at_rate = measure_latency_target(
                get_grpc, rate=rate, p99_limit_ms=1000.0, echo=echo_result, cpu_groups=cpu, **load
            )
            get_full = run_load(get_http, cpu_groups=cpu, **load).summary()
            create_full = run_load(HttpCreateCase(gateway_url, token), cpu_groups=cpu, **load).summary()
            bare_full = run_load(
                HttpBare(f"http://127.0.0.1:{bare_port}"),
                cpu_groups={"bare": lambda: [bare.pid]},
                **load,
            ).summary()
        finally:
            exits = {process.name: process.stop() for process in reversed(started)}
    added = _added(http_at_rate, grpc_at_rate)
    added_scaled = _added(http_at_rate["scaled"], grpc_at_rate["scaled"])
    added_sustained = _added(http_sustained, grpc_sustained)
    floor = bare_full["calls_per_s"] or 0.0
    met = {
        "added_latency_at_500_per_s": _added_met(added, http_at_rate, grpc_at_rate),
        "added_latency_scaled": _added_met(added_scaled, http_at_rate["scaled"], grpc_at_rate["scaled"]),
        "added_latency_sustained": _added_met(added_sustained, http_sustained, grpc_sustained),
    }
    emit(
        {
            "benchmark": "gateway",
            "database": "postgresql (case), sqlite (directory)",
            "in_flight": arguments.in_flight,
            "client_processes": arguments.client_processes,
            "warmup_s": arguments.warmup,
            "duration_s": arguments.duration,
            "get_case": {
                "added_by_gateway": {
                    "at_500_per_s": added,
                    "scaled": added_scaled,
                    "sustained": {"offered_per_s": sustained, **added_sustained},
                },
                "gateway_sustained": http_sustained,
                "grpc_sustained": grpc_sustained,
                "gateway_at_offered_rate": http_at_rate,
                "grpc_at_offered_rate": grpc_at_rate,
                "gateway_full_speed": get_full,
                "grpc_full_speed": grpc_full,
                "share_of_bare": round(get_full["calls_per_s"] / floor, 3) if floor else None,
            },
            "create_case": {
                "gateway_full_speed": create_full,
                "share_of_bare": round(create_full["calls_per_s"] / floor, 3) if floor else None,
            },
            "bare_starlette_full_speed": bare_full,
            "echo_baseline": echo_result.summary(),
            "targets": TARGETS,
            "targets_detail": met,
            "targets_met": all(met.values()),
            "exit_codes": exits,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
