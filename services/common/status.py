"""The one mapping from domain errors to gRPC status with google.rpc details (ErrorInfo, BadRequest)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.common.errors import (
    ERROR_DOMAIN,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StaleEtag,
    Unauthenticated,
    Unavailable,
)

_CODES: dict[type[DomainError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    StaleEtag: grpc.StatusCode.ABORTED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code(error: DomainError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in _CODES:
            return _CODES[kind]  # type: ignore[index]
    return grpc.StatusCode.FAILED_PRECONDITION


# The status travels in the call's trailers twice (grpc-message, percent-encoded, and the details,
# base64-encoded), and clients refuse trailers beyond 8 KiB by default: an error that quoted a caller's
# huge value would reach them as RESOURCE_EXHAUSTED instead of itself. So every part is cut to a budget.
TRAILER_BUDGET_BYTES = 6 * 1024
MAX_MESSAGE_CHARS = 400
MAX_FIELD_CHARS = 100
MAX_DESCRIPTION_CHARS = 200
MAX_METADATA_CHARS = 200
MAX_VIOLATIONS = 10


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _trailer_bytes(status: status_pb2.Status) -> int:
    # Percent-encoding can triple a message's UTF-8 bytes; base64 adds a third to the details.
    return 3 * len(status.message.encode()) + (4 * int(status.ByteSize()) + 2) // 3


def to_status(error: DomainError) -> status_pb2.Status:
    """The google.rpc.Status for a domain error: an ErrorInfo always, BadRequest for bad fields.

    Within the trailer budget: long texts are cut, and of many violations the first ones are kept with
    a last one saying how many more there were.
    """
    metadata = {_cut(k, MAX_FIELD_CHARS): _cut(v, MAX_METADATA_CHARS) for k, v in error.metadata.items()}
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=metadata))
    code: int = status_code(error).value[0]
    message = _cut(error.message, MAX_MESSAGE_CHARS)
    if not isinstance(error, InvalidArgument):
        return status_pb2.Status(code=code, message=message, details=[info])
    violations = [
        error_details_pb2.BadRequest.FieldViolation(
            field=_cut(v.field, MAX_FIELD_CHARS), description=_cut(v.description, MAX_DESCRIPTION_CHARS)
        )
        for v in error.violations
    ]
    keep = min(len(violations), MAX_VIOLATIONS)
    while True:
        kept = violations[:keep]
        if keep < len(violations):
            kept.append(
                error_details_pb2.BadRequest.FieldViolation(
                    field="request", description=f"and {len(violations) - keep:,} more problems"
                )
            )
        bad_request = any_pb2.Any()
        bad_request.Pack(error_details_pb2.BadRequest(field_violations=kept))
        status = status_pb2.Status(code=code, message=message, details=[info, bad_request])
        if keep <= 1 or _trailer_bytes(status) <= TRAILER_BUDGET_BYTES:
            return status
        keep -= 1


def internal_status(trace_id: str | None) -> status_pb2.Status:
    """The status for an unexpected fault: generic, with nothing of the cause but a trace id."""
    suffix = f" (trace {trace_id})" if trace_id else ""
    return status_pb2.Status(code=code_pb2.INTERNAL, message=f"internal error{suffix}")
