"""The gRPC server every service runs on: grpc.aio with health, reflection, interceptors and a drain.

Authentication happens here for every call (the caller is then read with `current_caller()`), and so
does the first step of authorisation: every RPC declares once, with `@allow(...)` on its servicer method,
the roles that may call it, and a call in another role is refused before its request is looked at.
What depends on the data (a unit's own cases, a citizen's own person) is each use case's job. A request
whose bytes are not a valid message is INVALID_ARGUMENT, never an error of the framework's. Domain errors
become gRPC status with
google.rpc details in one place, `CallInterceptor`; anything unexpected becomes a generic INTERNAL
that carries only the trace id, and is logged with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer
from grpc_status import rpc_status
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from services.common.auth import Caller, Role, TokenVerifier, bearer_from_metadata
from services.common.errors import DomainError, InvalidArgument, Unauthenticated
from services.common.gate import FairGate
from services.common.status import internal_status, status_code, to_status

log = logging.getLogger("aldredirekt.grpc")

_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)

REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
# The health service name a liveness probe asks: SERVING while the process serves at all, whatever the
# database does, so that a database outage makes pods unready but does not restart them.
LIVENESS = "liveness"
# Probes and tooling must work without a token; nothing here reveals data.
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    f"/{REFLECTION_V1}/",
)

F = TypeVar("F", bound=Callable[..., Any])
_ALLOWED = "__allowed_roles__"


def allow(*roles: Role) -> Callable[[F], F]:
    """Declares who may call an RPC: `@allow(Role.AGENT)` on its servicer method. CallInterceptor refuses
    every other caller before the method runs; a method without a declaration is never served."""
    if not roles:
        raise ValueError("an RPC needs at least one role that may call it")

    def declare(method: F) -> F:
        setattr(method, _ALLOWED, frozenset(roles))
        return method

    return declare


@dataclass(frozen=True)
class GrpcService:
    """A servicer to serve, with its `add_…_to_server` function and the roles each of its RPCs allows."""

    descriptor: ServiceDescriptor
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any

    @property
    def full_name(self) -> str:
        return str(self.descriptor.full_name)

    @property
    def roles(self) -> dict[str, frozenset[Role]]:
        """Each RPC's full method path and the roles allowed to call it; raises for an undeclared RPC."""
        table: dict[str, frozenset[Role]] = {}
        for method in self.descriptor.methods:
            roles = getattr(getattr(self.servicer, method.name, None), _ALLOWED, None)
            if not roles:
                raise TypeError(f"{self.full_name}/{method.name} does not declare who may call it (@allow)")
            table[f"/{self.full_name}/{method.name}"] = roles
        return table


def current_caller() -> Caller:
    """The authenticated caller of the call being served."""
    caller = _caller.get()
    if caller is None:
        raise Unauthenticated("no authenticated caller", reason="TOKEN_MISSING")
    return caller


# The metadata keys the W3C trace context travels in.
_TRACE_HEADERS = ("traceparent", "tracestate")


def _enter_trace(metadata: Iterable[tuple[str, Any]]) -> object | None:
    """Makes a span current for the call unless the OpenTelemetry interceptor already did.

    Without that interceptor no span is kept (see `Telemetry.records_spans`), yet the call still needs
    a trace id: in every log line, in an INTERNAL error's message, and on to the services it calls. So a
    non-recording span is made here directly, continuing the caller's trace when one came with the
    call: a tenth of what a tracer's span costs, which matters at a thousand calls a second.
    """
    if trace.get_current_span().get_span_context().is_valid:
        return None
    carrier = {key: value for key, value in metadata if key in _TRACE_HEADERS}
    parent = trace.get_current_span(propagate.extract(carrier)).get_span_context() if carrier else None
    trace_id = parent.trace_id if parent is not None and parent.is_valid else random.getrandbits(128)
    span = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=trace_id,
            span_id=random.getrandbits(64),
            is_remote=False,
            trace_state=parent.trace_state if parent is not None else None,
        )
    )
    return otel_context.attach(trace.set_span_in_context(span))


def _leave_trace(token: object | None) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], status: Any) -> None:
    grpc_status = rpc_status.to_status(status)
    await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticates, maps errors and writes one log line per call, for unary and server-streaming RPCs."""

    def __init__(
        self,
        verifier: TokenVerifier,
        roles: Mapping[str, frozenset[Role]],
        *,
        max_active_calls: int | None = None,
    ):
        self.verifier = verifier
        self.roles = dict(roles)
        # Calls beyond the limit wait, in the order they came, before their handler starts. With no
        # limit, a burst of slow calls (each holding a database connection, waiting on the database)
        # let a few of them wait far longer than the rest: CreateCase at 32 in flight had a p99 of
        # 68 ms and a worst of 590 ms; with 16 at once, 40 and 230 ms, at higher throughput.
        self._admit: contextlib.AbstractAsyncContextManager[None] = (
            FairGate(max_active_calls) if max_active_calls else contextlib.nullcontext()
        )
        # The wrapped handler of each method, built once: the registered handlers never change.
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        if method not in self.roles:
            # Served but never declared: refused, so that a method added without a role table is closed.
            return grpc.unary_unary_rpc_method_handler(_refuse_unsupported)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        # No RPC streams requests today; one added later must not be served without a token, so it is
        # refused until this interceptor learns to authenticate it.
        return grpc.unary_unary_rpc_method_handler(_refuse_unsupported)

    async def _authenticate(self, metadata: Iterable[tuple[str, Any]]) -> Caller:
        token = bearer_from_metadata(metadata)
        if token is None:
            raise Unauthenticated(
                "a bearer token is required in the authorization metadata", reason="TOKEN_MISSING"
            )
        return await self.verifier.verify(token)

    def _serving(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> _Serving:
        return _Serving(self, method, context)

    def _wrap_unary(
        self, method: str, behaviour: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with self._serving(method, context), self._admit:
                return await behaviour(_decoded(request), context)
            return None  # the call was aborted with its status

        return call

    def _wrap_stream(self, method: str, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with self._serving(method, context):
                async for item in behaviour(_decoded(request), context):
                    yield item

        return call


class _Serving:
    """Around one call of either kind: trace, caller, error mapping and the call's log line.

    Written out as a class rather than with contextlib.asynccontextmanager: it runs on every call, and
    the generator machinery cost as much as the rest of it.
    """

    __slots__ = (
        "_caller",
        "_caller_token",
        "_context",
        "_interceptor",
        "_method",
        "_started",
        "_trace_token",
    )

    def __init__(
        self, interceptor: CallInterceptor, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        self._interceptor = interceptor
        self._method = method
        self._context = context
        self._caller: Caller | None = None
        self._caller_token: contextvars.Token[Caller | None] | None = None
        self._trace_token: object | None = None

    async def __aenter__(self) -> None:
        self._started = time.perf_counter()
        metadata = self._context.invocation_metadata() or ()
        self._trace_token = _enter_trace(metadata)
        try:
            self._caller = await self._interceptor._authenticate(metadata)
            self._caller.require_role(*self._interceptor.roles[self._method])
        except BaseException as error:
            # Refused before the handler ran: answered and logged like any failed call.
            await self.__aexit__(type(error), error, error.__traceback__)
            raise
        self._caller_token = _caller.set(self._caller)

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> bool:
        code = "OK"
        try:
            if error is None:
                return False
            if isinstance(error, DomainError):
                code = status_code(error).name
                await abort_with(self._context, to_status(error))
                return True
            if isinstance(error, asyncio.CancelledError):
                code = "CANCELLED"
                return False
            if not isinstance(error, Exception):
                return False
            if _is_abort(error):
                code = "ABORTED_BY_HANDLER"
                return False
            code = "INTERNAL"
            log.error(
                "unexpected error in %s",
                self._method,
                exc_info=(type(error), error, tb),
                extra={"grpc_method": self._method},
            )
            await abort_with(self._context, internal_status(current_trace_id()))
            return True
        finally:
            if self._caller_token is not None:
                _caller.reset(self._caller_token)
                self._caller_token = None
            _log_call(self._method, code, self._started, self._caller)
            _leave_trace(self._trace_token)
            self._trace_token = None


async def _refuse_unsupported(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this method is not served")


class _Undecodable:
    """What a request whose bytes are not a valid message decodes to, so that the call itself answers."""


_UNDECODABLE = _Undecodable()


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """The method's deserializer, answering `_UNDECODABLE` instead of raising: grpc would otherwise
    answer UNKNOWN with the exception's class name, before any of our code runs."""
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, RecursionError, ValueError, TypeError):
            return _UNDECODABLE

    return decode


def _decoded(request: Any) -> Any:
    if request is _UNDECODABLE:
        raise InvalidArgument.field(
            "request", "is not a valid message of this method: its bytes could not be decoded"
        )
    return request


def _is_abort(error: Exception) -> bool:
    # context.abort() raises an internal exception that must travel up untouched.
    return type(error).__name__ == "AbortError"


def _log_call(method: str, code: str, started: float, caller: Caller | None) -> None:
    if not log.isEnabledFor(logging.INFO):
        return  # nothing of the line is built when it would be dropped
    log.info(
        "%s %s",
        method,
        code,
        extra={
            "grpc_method": method,
            "grpc_code": code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "caller_roles": sorted(caller.roles) if caller else [],
        },
    )


@dataclass
class GrpcServer:
    """A started server. `ready` says whether it may be given traffic (database up, schema at head)."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    service_names: list[str]
    ready: Callable[[], Awaitable[bool]]
    readiness_interval: float
    _watcher: asyncio.Task[None] | None = None
    _draining: bool = False
    _serving: bool | None = field(default=None)

    async def refresh_health(self) -> bool:
        serving = (not self._draining) and await self.ready()
        if serving != self._serving:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in ["", *self.service_names]:
                await self.health.set(name, status)
            if self._serving is not None:
                log.warning("health changed to %s", "SERVING" if serving else "NOT_SERVING")
            self._serving = serving
        return serving

    async def _watch(self) -> None:
        while True:
            try:
                await self.refresh_health()
            except Exception:
                log.exception("readiness check failed")
            await asyncio.sleep(self.readiness_interval)

    def start_watching(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name="readiness")

    async def stop(self, grace: float) -> None:
        """Drains: NOT_SERVING first so no new traffic comes, then in-flight calls get `grace` seconds."""
        self._draining = True
        if self._watcher is not None:
            self._watcher.cancel()
            # Wait for it: a check still running when the engine is disposed can hang the loop's close.
            await asyncio.gather(self._watcher, return_exceptions=True)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)

    async def wait_for_signal(self, grace: float) -> None:
        """Serves until SIGTERM or SIGINT, then drains and returns."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
            log.info("stopping: draining in-flight calls for up to %.1f s", grace)
            await self.stop(grace)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def _serve_reflection_v1(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Reflection under grpc.reflection.v1 as well, which current grpcurl, Postman and grpcui ask for first.
    grpcio-reflection serves only v1alpha; the two protocols are the same messages under another package
    name, so the v1alpha servicer answers both."""
    servicer = ReflectionServicer(service_names)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )


MAX_CONNECTION_AGE_MS = 5 * 60 * 1000


async def start_grpc_server(
    *,
    services: Sequence[GrpcService],
    verifier: TokenVerifier,
    host: str,
    port: int,
    ready: Callable[[], Awaitable[bool]],
    extra_interceptors: Iterable[grpc.aio.ServerInterceptor[Any, Any]] = (),
    readiness_interval: float = 5.0,
    share_port: bool = False,
    max_active_calls: int | None = None,
) -> GrpcServer:
    """Starts a server on host:port (port 0 picks a free one) and begins reporting health.

    `max_active_calls` bounds the unary calls whose handlers run at once (see CallInterceptor); streams
    are not counted, since one could hold its place for minutes. `share_port` lets the worker processes
    of one service listen on the same port (SO_REUSEPORT); otherwise a second process on a taken port
    fails instead of silently splitting the traffic.
    """
    roles: dict[str, frozenset[Role]] = {}
    for service in services:
        roles.update(service.roles)
    server = grpc.aio.server(
        interceptors=[
            *extra_interceptors,
            CallInterceptor(verifier, roles, max_active_calls=max_active_calls),
        ],
        options=[
            ("grpc.max_receive_message_length", 32 * 1024 * 1024),
            ("grpc.max_send_message_length", 32 * 1024 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.so_reuseport", 1 if share_port else 0),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            # Clients keep one connection for as long as it lives, so replicas started later would get
            # no calls from them: a connection is asked to close (GOAWAY) after about five minutes, calls
            # in flight get half a minute more, and the client connects again, to any replica.
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
            ("grpc.max_connection_age_grace_ms", 30_000),
        ],
    )
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for definition in services:
        definition.add_to_server(definition.servicer, server)
    names = [d.full_name for d in services]
    reflected = [
        *names,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
        REFLECTION_V1,
    ]
    reflection.enable_server_reflection(reflected, server)
    _serve_reflection_v1(server, reflected)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not listen on {host}:{port}")
    await server.start()
    running = GrpcServer(
        server=server,
        port=bound,
        health=health,
        service_names=names,
        ready=ready,
        readiness_interval=readiness_interval,
    )
    await health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    await running.refresh_health()
    running.start_watching()
    return running
