"""The gateway in this process, on a free port, in front of the real services (tests.live_services), and the
tokens to call it with."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from aldredirekt.case.v1 import case_pb2
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.main import load_settings, server
from services.case import handlers as case_handlers
from services.common.devissuer import DevIssuer
from services.common.errors import ERROR_DOMAIN
from services.directory import handlers as directory_handlers
from support.ports import free_port
from tests.live_services import LiveServices, live_services
from tests.person_numbers import person_number
from tests.unit.case.builders import AGENT, contact, new_case
from tests.unit.directory.cities import city_files, small_city

REPO_ROOT = Path(__file__).resolve().parents[3]
ASTRID = person_number(date(1938, 4, 12), serial="242")


@dataclass
class RunningGateway:
    url: str
    thread: threading.Thread
    stop: Any

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@contextmanager
def running_gateway(environ: Mapping[str, str]) -> Iterator[RunningGateway]:
    """The gateway served by uvicorn in a thread of its own (its own event loop), until the block ends."""
    port = free_port()
    settings = load_settings({**environ, "GATEWAY_PORT": str(port)})
    uvicorn_server = server(settings)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(uvicorn_server.serve())
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        if failure or not thread.is_alive():
            raise RuntimeError(f"the gateway did not start: {failure}")
        if time.monotonic() > deadline:
            raise TimeoutError("the gateway did not start within 30 s")
        time.sleep(0.02)

    def stop() -> None:
        uvicorn_server.should_exit = True
        thread.join(30)

    running = RunningGateway(url=f"http://127.0.0.1:{port}", thread=thread, stop=stop)
    try:
        yield running
    finally:
        stop()


def gateway_environ(live: LiveServices, **extra: str) -> dict[str, str]:
    return {
        "AUTH_DEV": "true",
        "AUTH_DEV_DIR": str(live.issuer.directory),
        "GATEWAY_DESCRIPTORS": str(REPO_ROOT / "gen" / "descriptors.binpb"),
        "GATEWAY_CORS_ORIGINS": "https://agent.aldredirekt.example",
        "LOG_LEVEL": "WARNING",
        **{f"GATEWAY_{name.upper()}_ADDRESS": address for name, address in live.addresses.items()},
        **extra,
    }


async def _seed(name: str, running: Any) -> None:
    if name == "directory":
        await directory_handlers.import_directory(
            directory=running.core, files=city_files(), validate_only=False
        )
    if name == "case":
        issuer = DevIssuer.load_or_create(Path(running.settings.auth.dev_dir))
        agent = replace(AGENT, token=issuer.mint(role="agent", subject=AGENT.subject))
        for _ in range(3):
            await case_handlers.create_case(
                cases=running.core,
                caller=agent,
                case=new_case(person_number=ASTRID),
                contact=contact(),
                anonymous=False,
            )


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServices]:
    with live_services(Path(tmp_path_factory.mktemp("gateway-live")), prepare=_seed) as started:
        yield started


@pytest.fixture(scope="session")
def city_officer() -> str:
    return f"officers/{small_city().officers[0].officer_id}"


@pytest.fixture(scope="session")
def gateway(live: LiveServices) -> Iterator[RunningGateway]:
    with running_gateway(gateway_environ(live)) as running:
        yield running


@dataclass(frozen=True)
class Tokens:
    issuer: DevIssuer

    def agent(self, subject: str = "agent-anna") -> str:
        return self.issuer.mint(role="agent", subject=subject)

    def auditor(self) -> str:
        return self.issuer.mint(role="auditor", subject="auditor-ada")

    def citizen(self, person: str = ASTRID) -> str:
        return self.issuer.mint(role="citizen", subject="citizen-astrid", person_number=person)

    def admin(self) -> str:
        return self.issuer.mint(role="directory_admin", subject="admin-alva")

    def officer(self, unit: str) -> str:
        return self.issuer.mint(role="officer", subject="officer-olle", unit=unit)


@pytest.fixture(scope="session")
def tokens(live: LiveServices) -> Tokens:
    return Tokens(live.issuer)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- a stand-in backend ---------------------------------------------------------------------------------


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def get_case(request: case_pb2.GetCaseRequest, context: grpc.ServicerContext) -> case_pb2.GetCaseResponse:
    code_name = request.name.removeprefix("cases/")
    if code_name == "OK":
        return case_pb2.GetCaseResponse(case=case_pb2.Case(name="cases/OK", etag="e-1"))
    if code_name == "RAW":
        # An answer with no details of ours, as a crashed or foreign server gives: the text must not leak.
        context.abort(grpc.StatusCode.INTERNAL, "Traceback: KeyError in /srv/case/handlers.py at 10.0.0.7")
    code = grpc.StatusCode[code_name]
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=f"{code_name}_REASON", domain=ERROR_DOMAIN, metadata={"k": "v"}
            )
        )
    ]
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        violation = error_details_pb2.BadRequest.FieldViolation(field="name", description="is bad")
        details.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        delay = duration_pb2.Duration(seconds=2, nanos=500_000_000)
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=code.value[0], message=f"the case said {code_name}", details=details)
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def stand_in() -> Iterator[str]:
    """A stand-in for the case service: GetCase of "cases/<CODE>" answers that code with our details,
    "cases/OK" a case, "cases/RAW" an INTERNAL with nothing of ours."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(
        get_case,
        request_deserializer=case_pb2.GetCaseRequest.FromString,
        response_serializer=case_pb2.GetCaseResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("aldredirekt.case.v1.CaseService", {"GetCase": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)
