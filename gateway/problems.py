"""Every error the gateway answers, as RFC 9457 `application/problem+json`.

One table maps the 17 canonical gRPC codes to HTTP, as google/rpc/code.proto gives them, with one
exception: ABORTED for a stale etag is 412, since the client's If-Match (or the etag it sent) failed.
The problem's `type` is `https://aldredirekt.stockholm.se/problems/<REASON>`, the ErrorInfo reason of the
service's answer (e.g. OTHER_UNIT, STALE_ETAG), or the code's name when the answer has none. Only what
our services said for the caller reaches the `detail`: an answer without our ErrorInfo (a channel that
could not connect, a deadline that ran out here) gets a fixed sentence, so no address, stack trace or
internal name ever leaves the gateway. BadRequest violations become `errors`, each with the field's path
and where the client sent it (a JSON pointer into the body, or the parameter or header); RetryInfo
becomes Retry-After.
"""

from __future__ import annotations

import http
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from starlette.responses import Response

from services.common.errors import ERROR_DOMAIN, DomainError, InvalidArgument
from services.common.remote import rpc_details
from services.common.status import status_code

PROBLEM_TYPE_BASE = "https://aldredirekt.stockholm.se/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

# google/rpc/code.proto, code by code.
GRPC_TO_HTTP: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
STALE_ETAG = "STALE_ETAG"
_BY_NUMBER: dict[int, grpc.StatusCode] = {int(code.value[0]): code for code in grpc.StatusCode}

# What the gateway says when the answer carries nothing of ours to pass on.
_FIXED_DETAIL: Mapping[grpc.StatusCode, str] = {
    grpc.StatusCode.CANCELLED: "the request was cancelled",
    grpc.StatusCode.UNKNOWN: "the {backend} service failed; the trace id identifies the failure",
    grpc.StatusCode.INVALID_ARGUMENT: "the request is not valid",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the {backend} service did not answer in time",
    grpc.StatusCode.NOT_FOUND: "not found",
    grpc.StatusCode.ALREADY_EXISTS: "it exists already",
    grpc.StatusCode.PERMISSION_DENIED: "this is not allowed",
    grpc.StatusCode.UNAUTHENTICATED: "a valid bearer token is required",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "too many requests; try again later",
    grpc.StatusCode.FAILED_PRECONDITION: "the request cannot be served in the current state",
    grpc.StatusCode.ABORTED: "the request conflicted with another; try again",
    grpc.StatusCode.OUT_OF_RANGE: "a value is out of range",
    grpc.StatusCode.UNIMPLEMENTED: "the {backend} service does not serve this",
    grpc.StatusCode.INTERNAL: "internal error; the trace id identifies the failure",
    grpc.StatusCode.UNAVAILABLE: "the {backend} service does not answer; try again",
    grpc.StatusCode.DATA_LOSS: "internal error; the trace id identifies the failure",
}


def http_status(code: grpc.StatusCode, reason: str = "") -> int:
    if code == grpc.StatusCode.ABORTED and reason == STALE_ETAG:
        return 412
    return GRPC_TO_HTTP.get(code, 500)


def title_of(status: int) -> str:
    if status == 499:
        return "Client Closed Request"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_INDEX = re.compile(r"\[(\d+)\]")


def json_pointer(field_path: str) -> str:
    """`case.person_number` → `/case/person_number`; `files[2].content` → `/files/2/content`."""
    if field_path in ("", "request"):
        return ""
    tokens = _INDEX.sub(r".\1", field_path).split(".")
    return "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in tokens if token)


@dataclass(frozen=True)
class FieldOrigins:
    """Where the client sent each field of a request, so that an error points at what they wrote."""

    # "*" when the body is the request, a field's name when it is that field, "" when there is none.
    body: str = "*"
    # Field path → the path parameters it was bound from.
    path: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Field path → the header it came from (Idempotency-Key, If-Match).
    headers: Mapping[str, str] = field(default_factory=dict)

    def locate(self, field_path: str, description: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"field": field_path, "detail": description}
        head = _INDEX.sub("", field_path).split(".")[0]
        if field_path in self.headers:
            entry["header"] = self.headers[field_path]
        elif field_path in self.path or head in self.path:
            params = self.path.get(field_path) or self.path[head]
            entry["parameter"] = params[-1]
        elif self.body == "*" or field_path == "request":
            entry["pointer"] = json_pointer(field_path)
        elif self.body and (field_path == self.body or field_path.startswith(self.body + ".")):
            entry["pointer"] = json_pointer(field_path[len(self.body) + 1 :])
        else:
            entry["parameter"] = field_path
        return entry


@dataclass
class Problem:
    status: int
    reason: str
    detail: str
    code: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def document(self, trace_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.reason,
            "title": title_of(self.status),
            "status": self.status,
            "detail": self.detail,
        }
        if self.code:
            body["code"] = self.code
        body["reason"] = self.reason
        if self.errors:
            body["errors"] = self.errors
        if self.metadata:
            body["metadata"] = self.metadata
        if trace_id:
            body["trace_id"] = trace_id
        return body

    def response(self, trace_id: str | None) -> Response:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return Response(
            json.dumps(self.document(trace_id), ensure_ascii=False, separators=(",", ":")).encode(),
            status_code=self.status,
            headers=headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


class ProblemError(Exception):
    """Raised where the gateway itself refuses a request; answered as its problem."""

    def __init__(self, problem: Problem):
        super().__init__(problem.detail)
        self.problem = problem


def problem(status: int, reason: str, detail: str, **extra: Any) -> ProblemError:
    return ProblemError(Problem(status=status, reason=reason, detail=detail, **extra))


def invalid(violations: Iterable[tuple[str, str]], origins: FieldOrigins | None = None) -> ProblemError:
    """400 for input the gateway could not turn into a request, naming each field."""
    where = origins or FieldOrigins()
    found = list(violations)
    return ProblemError(
        Problem(
            status=400,
            reason="INVALID_ARGUMENT",
            code="INVALID_ARGUMENT",
            detail="; ".join(f"{name or 'request'}: {text}" for name, text in found),
            errors=[where.locate(name, text) for name, text in found],
        )
    )


def from_rpc_error(
    error: grpc.aio.AioRpcError, *, backend: str, origins: FieldOrigins | None = None
) -> Problem:
    """The problem for a service's refusal or failure."""
    code = error.code()
    found = rpc_details(error)
    info, violations = found.info, found.violations
    retry_after = None if found.retry_delay_seconds is None else max(1, math.ceil(found.retry_delay_seconds))
    ours = info is not None and info.domain == ERROR_DOMAIN
    reason = info.reason if ours and info is not None and info.reason else code.name
    fixed = _FIXED_DETAIL.get(code, "internal error").format(backend=backend)
    message = (error.details() or "") if ours else ""
    where = origins or FieldOrigins()
    result = Problem(
        status=http_status(code, reason),
        reason=reason,
        code=code.name,
        detail=message or fixed,
        errors=[where.locate(v.field, v.description) for v in violations] if ours else [],
        metadata=dict(info.metadata) if ours and info is not None else {},
        retry_after=retry_after,
    )
    if result.status == 401:
        result.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return result


def from_domain_error(error: DomainError, origins: FieldOrigins | None = None) -> Problem:
    """The problem for a refusal of the gateway's own (a token, a page token, a person number), through the
    same code table as the services' answers."""
    code = status_code(error)
    where = origins or FieldOrigins()
    errors = (
        [where.locate(v.field, v.description) for v in error.violations]
        if isinstance(error, InvalidArgument)
        else []
    )
    result = Problem(
        status=http_status(code, error.reason),
        reason=error.reason,
        code=code.name,
        detail=error.message,
        errors=errors,
        metadata=dict(error.metadata),
    )
    if result.status == 401:
        realm = 'Bearer realm="aldredirekt"'
        result.headers["WWW-Authenticate"] = (
            realm if error.reason == "TOKEN_MISSING" else realm + ', error="invalid_token"'
        )
    return result


def code_of(number: int) -> grpc.StatusCode:
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)
