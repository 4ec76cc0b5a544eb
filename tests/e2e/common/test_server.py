"""The shared gRPC server, started for real on port 0 with a tiny probe service and called over the wire."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.sdk.trace import TracerProvider

from services.common.auth import JwksSource, Role, TokenVerifier
from services.common.devissuer import DEV_AUDIENCE, DEV_ISSUER, DevIssuer
from services.common.errors import (
    ERROR_DOMAIN,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from services.common.logs import JsonFormatter
from services.common.server import GrpcServer, GrpcService, allow, current_caller, start_grpc_server
from tests.rich_errors import error_info, refused, rich_status

SERVICE = "aldredirekt.probe.v1.ProbeService"
SECRET = "191212121212 Tolvan Tolvansson"
Text = wrappers_pb2.StringValue
# The probe's RPCs, and whether each streams its answer.
METHODS = {
    "Whoami": False,
    "NotFound": False,
    "BadInput": False,
    "Crash": False,
    "Slow": False,
    "AgentsOnly": False,
    "Count": True,
}


def probe_descriptor(methods: dict[str, bool] = METHODS) -> ServiceDescriptor:
    """The probe service as a .proto would declare it: StringValue in, StringValue out."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="aldredirekt/probe/v1/probe.proto",
        package="aldredirekt.probe.v1",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    service = file.service.add(name="ProbeService")
    for name, streams in methods.items():
        service.method.add(
            name=name,
            input_type=".google.protobuf.StringValue",
            output_type=".google.protobuf.StringValue",
            server_streaming=streams,
        )
    pool.AddSerializedFile(file.SerializeToString())
    return pool.FindServiceByName(SERVICE)


EVERYONE = tuple(Role)


class ProbeServicer:
    """Handlers that behave as the tests need; every one reaches the interceptor like a real servicer's,
    and declares who may call it as a real servicer's does."""

    def __init__(self) -> None:
        self.slow_started = asyncio.Event()
        self.release_slow = asyncio.Event()
        self.started: list[str] = []

    @allow(*EVERYONE)
    async def Whoami(self, request: Text, context: Any) -> Text:
        caller = current_caller()
        roles = ",".join(sorted(caller.roles))
        return Text(value=f"{caller.subject}|{roles}|{caller.unit}")

    @allow(*EVERYONE)
    async def NotFound(self, request: Text, context: Any) -> Text:
        raise NotFound(f"cases/{request.value}")

    @allow(*EVERYONE)
    async def BadInput(self, request: Text, context: Any) -> Text:
        raise InvalidArgument.field("case.unit", "must name a unit, like units/farsta")

    @allow(*EVERYONE)
    async def Crash(self, request: Text, context: Any) -> Text:
        raise RuntimeError(f"row for {SECRET} is corrupt")

    @allow(*EVERYONE)
    async def Slow(self, request: Text, context: Any) -> Text:
        self.started.append(request.value)
        self.slow_started.set()
        await self.release_slow.wait()
        return Text(value=f"done {request.value}")

    @allow(Role.AGENT)
    async def AgentsOnly(self, request: Text, context: Any) -> Text:
        self.started.append(f"agents-only {request.value}")
        return Text(value="for agents")

    @allow(*EVERYONE)
    async def Count(self, request: Text, context: Any) -> AsyncIterator[Text]:
        for number in range(int(request.value)):
            yield Text(value=str(number))
        raise FailedPrecondition("the list changed while it was read", reason="LIST_CHANGED")


def add_probe_to_server(servicer: Any, server: grpc.aio.Server) -> None:
    def unary(behaviour: Callable[[Text, Any], Awaitable[Text]]) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=Text.FromString, response_serializer=Text.SerializeToString
        )

    handlers = {
        name: grpc.unary_stream_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=Text.FromString,
            response_serializer=Text.SerializeToString,
        )
        if streams
        else unary(getattr(servicer, name))
        for name, streams in METHODS.items()
        if hasattr(servicer, name)
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


def probe_service(servicer: Any) -> GrpcService:
    return GrpcService(descriptor=probe_descriptor(), add_to_server=add_probe_to_server, servicer=servicer)


@dataclass
class Running:
    server: GrpcServer
    channel: grpc.aio.Channel
    servicer: ProbeServicer
    issuer: DevIssuer
    readiness: list[bool]

    def token(self, **claims: Any) -> str:
        return self.issuer.mint(role=claims.pop("role", "officer"), **claims)

    def unary(self, method: str) -> grpc.aio.UnaryUnaryMultiCallable[Text, Text]:
        return self.channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=Text.SerializeToString,
            response_deserializer=Text.FromString,
        )

    async def call(self, method: str, value: str = "", *, token: str | None = None) -> Text:
        metadata = None if token is None else (("authorization", f"Bearer {token}"),)
        return await self.unary(method)(Text(value=value), metadata=metadata, timeout=10)


def traced_calls() -> grpc.aio.ServerInterceptor[Any, Any]:
    """A span per call, recorded nowhere, so that internal errors carry a trace id as in production.

    Health is left out as services.common.telemetry leaves it out: its Watch is no async generator.
    """
    untraced = filters.negate(filters.service_name("grpc.health.v1.Health"))
    interceptor: grpc.aio.ServerInterceptor[Any, Any] = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=TracerProvider(), filter_=untraced
    )
    return interceptor


@pytest.fixture
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    # Marked `untraced`, the server runs as a service does when no span is kept: without OpenTelemetry's
    # interceptor.
    traced = request.node.get_closest_marker("untraced") is None
    limit = request.node.get_closest_marker("max_active_calls")
    issuer = DevIssuer.load_or_create(tmp_path / "dev")
    verifier = TokenVerifier(DEV_ISSUER, DEV_AUDIENCE, JwksSource(issuer.jwks_path))
    servicer = ProbeServicer()
    readiness = [True]

    async def ready() -> bool:
        return readiness[-1]

    server = await start_grpc_server(
        services=[probe_service(servicer)],
        verifier=verifier,
        host="127.0.0.1",
        port=0,
        ready=ready,
        extra_interceptors=[traced_calls()] if traced else [],
        max_active_calls=limit.args[0] if limit else None,
        readiness_interval=0.05,
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Running(server, channel, servicer, issuer, readiness)
    finally:
        servicer.release_slow.set()
        await channel.close(None)
        await server.stop(0)


async def health_of(running: Running, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(running.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    status: int = response.status
    return status


async def test_a_call_without_a_token_is_unauthenticated(running: Running):
    error = await refused(running.call("Whoami"))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(error).reason == "TOKEN_MISSING"


async def test_a_call_with_a_token_from_another_issuer_is_unauthenticated(running: Running, tmp_path: Path):
    stranger = DevIssuer.load_or_create(tmp_path / "stranger")

    error = await refused(running.call("Whoami", token=stranger.mint(role="officer")))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(error).reason == "TOKEN_INVALID"


async def test_the_handler_sees_the_caller_its_token_names(running: Running):
    token = running.token(role=["officer", "agent"], subject="handlaggare-7", unit="units/farsta")

    answer = await running.call("Whoami", token=token)

    assert answer.value == "handlaggare-7|agent,officer|units/farsta"


async def test_a_caller_in_a_role_the_rpc_does_not_allow_is_refused_before_it_runs(running: Running):
    error = await refused(running.call("AgentsOnly", "17", token=running.token(role="officer")))
    allowed = await running.call("AgentsOnly", "18", token=running.token(role=["officer", "agent"]))

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(error)
    assert (info.reason, dict(info.metadata)) == ("ROLE_NOT_ALLOWED", {"roles": "agent"})
    assert allowed.value == "for agents"
    assert running.servicer.started == ["agents-only 18"]


def test_each_rpc_of_a_service_declares_the_roles_that_may_call_it():
    roles = probe_service(ProbeServicer()).roles

    assert set(roles) == {f"/{SERVICE}/{name}" for name in METHODS}
    assert roles[f"/{SERVICE}/AgentsOnly"] == frozenset({Role.AGENT})
    assert roles[f"/{SERVICE}/Whoami"] == frozenset(Role)


def test_a_service_with_an_rpc_that_declares_no_roles_is_refused():
    class Undeclared(ProbeServicer):
        async def AgentsOnly(self, request: Text, context: Any) -> Text:  # no @allow
            return Text(value="open to all?")

    with pytest.raises(TypeError, match="AgentsOnly"):
        _ = probe_service(Undeclared()).roles


def test_an_rpc_allows_at_least_one_role():
    with pytest.raises(ValueError, match="at least one role"):
        allow()


def test_outside_a_call_there_is_no_caller():
    with pytest.raises(Unauthenticated):
        current_caller()


async def test_health_answers_without_a_token(running: Running):
    assert await health_of(running) == health_pb2.HealthCheckResponse.SERVING
    assert await health_of(running, SERVICE) == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_answers_without_a_token(running: Running):
    stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
    stream = stub.ServerReflectionInfo(timeout=10)
    await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    response = await stream.read()
    await stream.done_writing()

    assert isinstance(response, reflection_pb2.ServerReflectionResponse)
    names = {service.name for service in response.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


async def test_a_domain_error_becomes_its_status_with_details(running: Running):
    error = await refused(running.call("NotFound", "17", token=running.token()))

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "cases/17 was not found"
    info = error_info(error)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "NOT_FOUND",
        ERROR_DOMAIN,
        {"resource": "cases/17"},
    )


async def test_bad_input_comes_back_naming_the_field(running: Running):
    error = await refused(running.call("BadInput", token=running.token()))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad_request) for detail in rich_status(error).details)
    assert [v.field for v in bad_request.field_violations] == ["case.unit"]


async def test_an_unexpected_fault_is_internal_with_a_trace_id_and_nothing_of_its_cause(
    running: Running, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.ERROR, logger="aldredirekt.grpc"):
        error = await refused(running.call("Crash", token=running.token()))

    assert error.code() == grpc.StatusCode.INTERNAL
    message = error.details() or ""
    assert message.startswith("internal error (trace ")
    trace_id = message.removeprefix("internal error (trace ").removesuffix(")")
    assert len(trace_id) == 32
    assert int(trace_id, 16) != 0
    everything_sent = message + repr(error.trailing_metadata()) + repr(error.initial_metadata())
    assert "Tolvan" not in everything_sent
    assert "191212121212" not in everything_sent
    assert "corrupt" not in everything_sent
    # Operators find the cause in the log, under the method.
    assert any(record.exc_info and f"/{SERVICE}/Crash" in record.getMessage() for record in caplog.records)


async def test_a_stream_is_authenticated_and_ends_with_the_domain_errors_status(running: Running):
    stream = running.channel.unary_stream(
        f"/{SERVICE}/Count", request_serializer=Text.SerializeToString, response_deserializer=Text.FromString
    )

    without_token = stream(Text(value="3"), timeout=10)
    error = await refused(without_token.read())
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED

    call = stream(Text(value="3"), metadata=(("authorization", f"Bearer {running.token()}"),), timeout=10)
    received = []
    for _ in range(3):
        item = await call.read()
        assert isinstance(item, Text)
        received.append(item.value)
    error = await refused(call.read())
    assert received == ["0", "1", "2"]
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "LIST_CHANGED"


async def test_health_follows_readiness(running: Running):
    running.readiness.append(False)

    assert await running.server.refresh_health() is False
    assert await health_of(running) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert await health_of(running, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING

    running.readiness.append(True)
    assert await running.server.refresh_health() is True
    assert await health_of(running) == health_pb2.HealthCheckResponse.SERVING


async def test_stopping_reports_not_serving_and_lets_a_call_in_flight_finish(running: Running):
    slow = asyncio.create_task(running.call("Slow", "17", token=running.token()))
    await asyncio.wait_for(running.servicer.slow_started.wait(), timeout=10)
    watch = health_pb2_grpc.HealthStub(running.channel).Watch(health_pb2.HealthCheckRequest(service=""))
    first = await watch.read()
    assert isinstance(first, health_pb2.HealthCheckResponse)
    assert first.status == health_pb2.HealthCheckResponse.SERVING

    stopping = asyncio.create_task(running.server.stop(grace=10))
    update = await asyncio.wait_for(watch.read(), timeout=10)
    assert isinstance(update, health_pb2.HealthCheckResponse)
    assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()

    # Draining: the call that was under way is still served...
    assert not slow.done()
    running.servicer.release_slow.set()
    assert (await asyncio.wait_for(slow, timeout=10)).value == "done 17"
    # ...and the server is gone as soon as it is, without waiting out the grace period.
    await asyncio.wait_for(stopping, timeout=5)
    error = await refused(running.call("Whoami", token=running.token()))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.untraced
async def test_without_the_tracing_interceptor_a_call_still_continues_the_callers_trace(running: Running):
    trace_id = "4bf92f3577b34da6a3ce929e0eafa4a1"
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter("probe"))
    grpc_log = logging.getLogger("aldredirekt.grpc")
    grpc_log.addHandler(handler)
    grpc_log.setLevel(logging.INFO)
    try:
        await running.unary("Whoami")(
            Text(),
            metadata=(
                ("authorization", f"Bearer {running.token()}"),
                ("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),
            ),
            timeout=10,
        )
        await running.call("Whoami", token=running.token())
    finally:
        grpc_log.removeHandler(handler)

    continued, fresh = (json.loads(line) for line in lines.getvalue().splitlines())
    assert continued["grpc_method"] == fresh["grpc_method"] == f"/{SERVICE}/Whoami"
    assert continued["trace_id"] == trace_id
    # A call that brings no trace starts none here, or one of its own: never the previous call's.
    assert fresh.get("trace_id") != trace_id


@pytest.mark.max_active_calls(1)
async def test_calls_beyond_the_limit_wait_their_turn_in_the_order_they_came(running: Running):
    token = running.token()
    first = asyncio.create_task(running.call("Slow", "first", token=token))
    await running.servicer.slow_started.wait()
    second = asyncio.create_task(running.call("Slow", "second", token=token))
    await asyncio.sleep(0.1)  # so that the server has the second in hand before the third is sent
    third = asyncio.create_task(running.call("Slow", "third", token=token))
    await asyncio.sleep(0.2)

    # Only the first handler runs; the others wait, unanswered and not refused.
    assert running.servicer.started == ["first"]
    assert not second.done()
    assert not third.done()
    # Calls outside the limit's count (health) are answered meanwhile.
    assert await health_of(running) == health_pb2.HealthCheckResponse.SERVING

    running.servicer.release_slow.set()
    answers = await asyncio.wait_for(asyncio.gather(first, second, third), timeout=10)

    assert [answer.value for answer in answers] == ["done first", "done second", "done third"]
    assert running.servicer.started == ["first", "second", "third"]
