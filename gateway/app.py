"""The HTTP app (Starlette on uvicorn): the transcoded API under /api/v1, the composite resources, the
OpenAPI document and its documentation page, and the probes.

The edge (`EdgeMiddleware`, plain ASGI so that it costs little on every request) gives each request its
trace, answers CORS for the configured front-end origins only, and puts the security headers and
`Cache-Control: no-store` on every answer. Every error, the framework's own included, is problem+json.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.composite import MY_ACCESS_LOG_PATH, PERSON_ACCESS_LOG_PATH, PERSON_VIEW_PATH, Outbound
from gateway.docs import DOCS_CSP, docs_file, docs_page
from gateway.problems import (
    FieldOrigins,
    Problem,
    ProblemError,
    from_domain_error,
    from_rpc_error,
    invalid,
    problem,
)
from gateway.settings import GatewaySettings
from gateway.transcoding import HTTP_BODY, read_json, response_json
from gateway.wiring import Gateway, Trace, bootstrap
from services.common.auth import Caller
from services.common.errors import DomainError, InvalidArgument
from services.common.personnummer import parse_person_number

log = logging.getLogger("aldredirekt.gateway")

TRACE_KEY = "aldredirekt.trace"
ROUTE_KEY = "aldredirekt.route"
API_PREFIX = "/api/"
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
JSON_TYPES = ("application/json",)
MAX_QUERY_FIELDS = 200
_REASONS = {
    401: "TOKEN_MISSING",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "BODY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_ARGUMENT",
}


def trace_of(scope: Scope) -> Trace:
    trace = scope.get(TRACE_KEY)
    if trace is None:
        trace = scope[TRACE_KEY] = Trace.of(None, None)
    assert isinstance(trace, Trace)
    return trace


# ---- the edge ------------------------------------------------------------------------------------------


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class EdgeMiddleware:
    """Trace, CORS, security headers and no-store, and one log line per request."""

    def __init__(self, app: ASGIApp, *, cors_origins: Sequence[str], hsts_seconds: int):
        self.app = app
        self.origins = frozenset(cors_origins)
        self.fixed: list[tuple[bytes, bytes]] = [
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if hsts_seconds:
            self.fixed.append(
                (b"strict-transport-security", f"max-age={hsts_seconds}; includeSubDomains".encode())
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        trace = scope[TRACE_KEY] = Trace.of(_header(headers, b"traceparent"), _header(headers, b"tracestate"))
        origin = _header(headers, b"origin")
        cross_origin = origin is not None and not _same_origin(origin, _header(headers, b"host"))
        allowed = cross_origin and origin is not None and origin.lower() in self.origins
        status_box = [0]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                extra = list(self.fixed)
                present = {key.lower() for key, _ in message.get("headers", [])}
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", API_CSP.encode()))
                if allowed and origin is not None:
                    extra += [
                        (b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-expose-headers", b"ETag, Retry-After"),
                        (b"vary", b"Origin"),
                    ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            if cross_origin and not allowed:
                refused = Problem(
                    status=403,
                    reason="ORIGIN_NOT_ALLOWED",
                    detail="this origin may not call the API: only the configured front ends may",
                )
                await refused.response(trace.trace_id)(scope, receive, send_with_headers)
                return
            if (
                allowed
                and scope["method"] == "OPTIONS"
                and _header(headers, b"access-control-request-method")
            ):
                await _preflight(headers)(scope, receive, send_with_headers)
                return
            await self.app(scope, receive, send_with_headers)
        finally:
            _log_request(scope, status_box[0], started, trace)


def _same_origin(origin: str, host: str | None) -> bool:
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


def _preflight(headers: Sequence[tuple[bytes, bytes]]) -> Response:
    asked = _header(headers, b"access-control-request-headers") or ""
    allowed_headers = (
        "Authorization, Content-Type, Idempotency-Key, If-Match, X-Access-Grant, Request-Timeout, "
    )
    allowed_headers += "X-Request-Timeout, traceparent, tracestate"
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
            "Access-Control-Allow-Headers": asked or allowed_headers,
            "Access-Control-Max-Age": "600",
        },
    )


def _log_request(scope: Scope, status: int, started: float, trace: Trace) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    # The route's template, never the path itself: paths name resources, and the log is no place for them.
    route = scope.get(ROUTE_KEY) or "unmatched"
    log.info(
        "%s %s %d",
        scope["method"],
        route,
        status,
        extra={
            "http_method": scope["method"],
            "http_route": route,
            "http_status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "trace_id": trace.trace_id,
        },
    )


# ---- requests ------------------------------------------------------------------------------------------


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes (announced or sent), and 415 unless it is JSON."""
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    if body.strip():
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in JSON_TYPES and not (
            media_type.startswith("application/") and media_type.endswith("+json")
        ):
            raise problem(
                415, "UNSUPPORTED_MEDIA_TYPE", "the body must be JSON (Content-Type: application/json)"
            )
    return body


def _too_large(limit: int) -> ProblemError:
    return problem(413, "BODY_TOO_LARGE", f"the body may be at most {limit:,} bytes")


def _query(request: Request) -> list[tuple[str, str]]:
    raw = request.scope.get("query_string", b"").decode("latin-1")
    try:
        return parse_qsl(raw, keep_blank_values=True, errors="strict", max_num_fields=MAX_QUERY_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise invalid(
            [("request", "the query string is not valid UTF-8 or has too many parameters")]
        ) from None


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope["path"])
    return path.split("?", 1)[0]


async def _prepared(request: Request) -> tuple[Gateway, Caller, Outbound]:
    gateway = gateway_of(request)
    caller = await gateway.caller(request.headers.get("authorization"))
    return gateway, caller, gateway.outbound(caller, request.headers, trace_of(request.scope))


async def transcoded(request: Request) -> Response:
    """Every annotated RPC: the request made from path, query, body and headers; the answer as JSON."""
    gateway = gateway_of(request)
    trace = trace_of(request.scope)
    path = _raw_path(request.scope)
    try:
        found = gateway.router.find(request.method, path)
    except UnicodeDecodeError:
        raise invalid([("request", "a path segment is not valid UTF-8")]) from None
    if found is None:
        allowed = gateway.router.allowed(path) or _COMPOSITE_VERBS.get(path, [])
        if allowed:
            raise problem(
                405,
                "METHOD_NOT_ALLOWED",
                f"{request.method} is not served here; {', '.join(allowed)} is",
                headers={"Allow": ", ".join(allowed)},
            )
        raise problem(404, "NOT_FOUND", "no resource is served at this path")
    transcoder = found.transcoder
    request.scope[ROUTE_KEY] = transcoder.binding.template.text
    caller = await gateway.caller(request.headers.get("authorization"))
    out = gateway.outbound(caller, request.headers, trace)
    body = None
    if transcoder.binding.body:
        body = read_json(await read_body(request, gateway.settings.max_body_bytes))
    idempotency_key = request.headers.get("idempotency-key")
    if_match = request.headers.get("if-match")
    message = transcoder.request(
        path_values=found.values,
        query=_query(request),
        body=body,
        idempotency_key=idempotency_key,
        if_match=if_match,
    )
    rpc = transcoder.rpc
    try:
        answer = await gateway.backends.call(
            rpc.backend, rpc.path, message, rpc.response_class, metadata=out.metadata, deadline=out.timeout
        )
    except grpc.aio.AioRpcError as error:
        origins = transcoder.origins(
            idempotency_key=idempotency_key is not None, if_match=if_match is not None
        )
        return from_rpc_error(error, backend=rpc.backend, origins=origins).response(trace.trace_id)
    if rpc.method.output_type.full_name == HTTP_BODY:
        # The RPC answers with the file itself (a CSV export): served as it is, in its own media type.
        file: Any = answer
        return Response(bytes(file.data), media_type=file.content_type or "application/octet-stream")
    headers: dict[str, str] = {}
    etag = transcoder.etag_of(answer)
    if etag is not None:
        headers["ETag"] = f'"{etag}"'
    return Response(response_json(answer), media_type="application/json", headers=headers)


def _json(document: Mapping[str, Any]) -> Response:
    return Response(
        json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(),
        media_type="application/json",
    )


def _object_body(raw: bytes, allowed: set[str]) -> dict[str, Any]:
    body = read_json(raw)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise invalid([("request", "the body must be a JSON object")])
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid([(name, "is not a field of this request") for name in unknown])
    return body


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid([(name, "must be a string")])
    return value


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid([(name, "must be a whole number")])
    try:
        number = int(value)
    except ValueError:
        raise invalid([(name, "must be a whole number")]) from None
    if not -(2**31) <= number < 2**31:
        raise invalid([(name, "must be a 32-bit whole number")])
    return number


def _person(value: str) -> str:
    if not value:
        raise invalid([("person_number", "is required")])
    try:
        return str(parse_person_number(value, field="person_number"))
    except InvalidArgument as error:
        raise invalid([(v.field, v.description) for v in error.violations]) from None


async def person_view(request: Request) -> Response:
    gateway, _caller, out = await _prepared(request)
    request.scope[ROUTE_KEY] = PERSON_VIEW_PATH
    body = _object_body(
        await read_body(request, gateway.settings.max_body_bytes),
        {"person_number", "purpose", "district", "postal_code"},
    )
    view = await gateway.composer.person_view(
        person_number=_person(_text(body, "person_number")),
        purpose=_text(body, "purpose"),
        district=_text(body, "district"),
        postal_code=_text(body, "postal_code"),
        out=out,
    )
    return _json(view)


async def my_access_log(request: Request) -> Response:
    gateway, caller, out = await _prepared(request)
    request.scope[ROUTE_KEY] = MY_ACCESS_LOG_PATH
    query = dict(_query(request))
    unknown = sorted(set(query) - {"page_size", "page_token"})
    if unknown:
        raise invalid(
            [(name, "is not a parameter of this method") for name in unknown], FieldOrigins(body="")
        )
    page = await gateway.composer.access_log(
        caller=caller,
        person_number="",
        page_size=_integer(query.get("page_size", "0") or "0", "page_size"),
        page_token=query.get("page_token", ""),
        out=out,
    )
    return _json(page)


async def person_access_log(request: Request) -> Response:
    gateway, caller, out = await _prepared(request)
    request.scope[ROUTE_KEY] = PERSON_ACCESS_LOG_PATH
    body = _object_body(
        await read_body(request, gateway.settings.max_body_bytes),
        {"person_number", "page_size", "page_token"},
    )
    page = await gateway.composer.access_log(
        caller=caller,
        person_number=_person(_text(body, "person_number")),
        page_size=_integer(body.get("page_size", 0) or 0, "page_size"),
        page_token=_text(body, "page_token"),
        out=out,
    )
    return _json(page)


# ---- documents and probes ------------------------------------------------------------------------------


async def openapi_document(request: Request) -> Response:
    return Response(gateway_of(request).openapi, media_type="application/json")


async def documentation(request: Request) -> Response:
    return Response(docs_page(), media_type="text/html", headers={"Content-Security-Policy": DOCS_CSP})


async def documentation_file(request: Request) -> Response:
    name = request.path_params["file"]
    if name == "openapi.json":
        return Response(gateway_of(request).docs_openapi, media_type="application/json")
    found = docs_file(name)
    if found is None:
        raise problem(404, "NOT_FOUND", "no such file of the documentation page")
    content, media_type = found
    return Response(content, media_type=media_type)


async def healthz(request: Request) -> Response:
    """The gateway itself can take calls: 503 only while it drains. What Kubernetes probes, so that a
    backend that is down fails only the calls that need it instead of taking every gateway out of the load
    balancer."""
    if gateway_of(request).draining:
        raise problem(503, "DRAINING", "the gateway is shutting down")
    return JSONResponse({"status": "serving"})


async def readyz(request: Request) -> Response:
    """Every service the gateway fronts answers SERVING on the standard health service: 200, or 503
    naming the ones that do not. For an operator or a synthetic check of the whole chain."""
    gateway = gateway_of(request)
    if gateway.draining:
        raise problem(503, "DRAINING", "the gateway is shutting down")
    states = await gateway.backends.health(deadline=1.0)
    down = sorted(name for name, state in states.items() if state != "SERVING")
    if down:
        return JSONResponse(
            {"status": "not ready", "not_serving": down, "backends": states},
            status_code=503,
            headers={"Cache-Control": "no-store"},
        )
    return JSONResponse({"status": "ready", "backends": states})


# ---- errors --------------------------------------------------------------------------------------------


async def _problem_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ProblemError)
    return error.problem.response(trace_of(request.scope).trace_id)


async def _domain_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, DomainError)
    return from_domain_error(error).response(trace_of(request.scope).trace_id)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    status = error.status_code
    reason = _REASONS.get(status, "HTTP_" + str(status))
    headers = dict(error.headers or {})
    detail = {
        404: "no resource is served at this path",
        405: f"{request.method} is not served here",
    }.get(status, str(error.detail))
    return Problem(status=status, reason=reason, detail=detail, headers=headers).response(
        trace_of(request.scope).trace_id
    )


async def _unexpected(request: Request, error: Exception) -> Response:
    trace = trace_of(request.scope)
    log.error("unexpected error", exc_info=error, extra={"trace_id": trace.trace_id})
    return Problem(
        status=500, reason="INTERNAL", code="INTERNAL", detail="internal error; the trace id identifies it"
    ).response(trace.trace_id)


class _CatchAll:
    """Turns what escapes the handlers into a 500 problem before Starlette's own error page could answer."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as error:
            if started or scope["type"] != "http":
                raise
            response = await _unexpected(Request(scope), error)
            await response(scope, receive, send)


VERBS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# The composite resources' verbs, for the 405 of another verb (the catch-all route matches it first).
_COMPOSITE_VERBS = {PERSON_VIEW_PATH: ["POST"], MY_ACCESS_LOG_PATH: ["GET"], PERSON_ACCESS_LOG_PATH: ["POST"]}


def create_app(
    settings: GatewaySettings, *, wire: Callable[[GatewaySettings], Awaitable[Gateway]] = bootstrap
) -> Starlette:
    """The app; its lifespan wires the gateway in the serving loop and closes it on shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gateway = await wire(settings)
        app.state.gateway = gateway
        try:
            yield
        finally:
            gateway.draining = True
            await gateway.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/api/v1/openapi.json", openapi_document, methods=["GET"]),
        Route("/api/v1/docs", documentation, methods=["GET"]),
        Route("/api/v1/docs/{file}", documentation_file, methods=["GET"]),
        Route(PERSON_VIEW_PATH, person_view, methods=["POST"]),
        Route(MY_ACCESS_LOG_PATH, my_access_log, methods=["GET"]),
        Route(PERSON_ACCESS_LOG_PATH, person_access_log, methods=["POST"]),
        Route("/api/{rest:path}", transcoded, methods=VERBS),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ProblemError: _problem_error,
            DomainError: _domain_error,
            HTTPException: _http_error,
        },
    )
    # Added last is outermost: the edge wraps the catch-all, so that a 500 carries the edge's headers too.
    app.add_middleware(_CatchAll)
    app.add_middleware(EdgeMiddleware, cors_origins=settings.cors_origins, hsts_seconds=settings.hsts_seconds)
    return app
