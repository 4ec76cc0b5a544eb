"""Another service's refusal, read as a domain error of ours: one translation for every client of another
service, from the canonical code and the google.rpc details (ErrorInfo reason and metadata, BadRequest
field violations), never from the message text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.common.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StaleEtag,
    Unauthenticated,
    Unavailable,
)

# Codes that say "not now": the call may succeed later, and nothing was done.
_NOT_NOW = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)


@dataclass(frozen=True)
class RpcDetails:
    """The google.rpc details another service sent with an error: its ErrorInfo, its BadRequest field
    violations and its RetryInfo delay in seconds. Empty when there were none, or when the trailers
    disagree with the call's status (then none of them is trusted)."""

    info: error_details_pb2.ErrorInfo | None = None
    violations: tuple[error_details_pb2.BadRequest.FieldViolation, ...] = ()
    retry_delay_seconds: float | None = None


def rpc_details(error: grpc.aio.AioRpcError) -> RpcDetails:
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:
        return RpcDetails()
    info: error_details_pb2.ErrorInfo | None = None
    violations: list[error_details_pb2.BadRequest.FieldViolation] = []
    delay: float | None = None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(bad_request.field_violations)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return RpcDetails(info, tuple(violations), delay)


def domain_error(
    error: grpc.aio.AioRpcError, *, service: str, field_of: Mapping[str, str] | None = None
) -> DomainError:
    """The domain error for `service`'s answer `error`.

    `field_of` renames the other service's fields to the caller's own, e.g. {"district": "case.district"},
    so a violation names a field of the request our caller sent. Our caller's input being refused stays
    INVALID_ARGUMENT, NOT_FOUND and so on; the other service down or failing becomes UNAVAILABLE, since for
    our caller it is a dependency that does not answer, and nothing was changed.
    """
    code = error.code()
    label = service.upper().replace("-", "_")
    if code in _NOT_NOW:
        return Unavailable(
            f"the {service} service does not answer; nothing was changed, try again",
            reason=f"{label}_UNAVAILABLE",
        )
    details = rpc_details(error)
    info, violations = details.info, details.violations
    reason = info.reason if info is not None and info.reason else None
    metadata = dict(info.metadata) if info is not None else {}
    message = error.details() or f"the {service} service refused"
    renames = field_of or {}
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        found = [FieldViolation(renames.get(v.field, v.field), v.description) for v in violations]
        return InvalidArgument(found or [FieldViolation("request", message)], reason=reason)
    if code == grpc.StatusCode.NOT_FOUND:
        resource = metadata.get("resource", "")
        return NotFound(resource or "the resource", message=message)
    if code == grpc.StatusCode.ABORTED and reason == "STALE_ETAG":
        return StaleEtag(metadata.get("resource", "the resource"))
    kinds: dict[grpc.StatusCode, type[DomainError]] = {
        grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
        grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
        grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
        grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    }
    kind = kinds.get(code)
    if kind is not None:
        return kind(message, reason=reason, metadata=metadata)
    return Unavailable(f"the {service} service failed ({code.name})", reason=f"{label}_FAILED")
