from __future__ import annotations

from typing import TypeVar

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.common.errors import (
    ERROR_DOMAIN,
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
from services.common.status import internal_status, status_code, to_status

ERROR_INFO = error_details_pb2.ErrorInfo.DESCRIPTOR
BAD_REQUEST = error_details_pb2.BadRequest.DESCRIPTOR
M = TypeVar("M", error_details_pb2.ErrorInfo, error_details_pb2.BadRequest)


def unpacked(detail: any_pb2.Any, kind: type[M]) -> M:
    message = kind()
    assert detail.Unpack(message)
    return message


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    [info] = [unpacked(d, error_details_pb2.ErrorInfo) for d in status.details if d.Is(ERROR_INFO)]
    return info


def bad_requests(status: status_pb2.Status) -> list[error_details_pb2.BadRequest]:
    return [unpacked(d, error_details_pb2.BadRequest) for d in status.details if d.Is(BAD_REQUEST)]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidArgument.field("unit", "is required"), grpc.StatusCode.INVALID_ARGUMENT),
        (NotFound("units/farsta"), grpc.StatusCode.NOT_FOUND),
        (AlreadyExists("units/farsta already exists"), grpc.StatusCode.ALREADY_EXISTS),
        (FailedPrecondition("the case is closed"), grpc.StatusCode.FAILED_PRECONDITION),
        (StaleEtag("units/farsta"), grpc.StatusCode.ABORTED),
        (PermissionDenied("not your unit"), grpc.StatusCode.PERMISSION_DENIED),
        (Unauthenticated("no token"), grpc.StatusCode.UNAUTHENTICATED),
        (Unavailable("the access log is down"), grpc.StatusCode.UNAVAILABLE),
        (DomainError("something the caller can fix"), grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_each_domain_error_has_its_own_grpc_code(error: DomainError, code: grpc.StatusCode):
    assert status_code(error) == code
    assert to_status(error).code == code.value[0]


def test_a_specialised_error_takes_the_code_of_the_error_it_specialises():
    class OfficerNotFound(NotFound):
        pass

    assert status_code(OfficerNotFound("officers/7")) == grpc.StatusCode.NOT_FOUND


def test_every_status_carries_an_error_info_with_reason_domain_and_metadata():
    error = AlreadyExists(
        "request_id 'r-1' was already used for a different request",
        reason="IDEMPOTENCY_KEY_REUSED",
        metadata={"request_id": "r-1"},
    )

    status = to_status(error)

    info = error_info(status)
    assert info.reason == "IDEMPOTENCY_KEY_REUSED"
    assert info.domain == ERROR_DOMAIN == "aldredirekt.stockholm.se"
    assert dict(info.metadata) == {"request_id": "r-1"}
    assert status.message == "request_id 'r-1' was already used for a different request"


def test_without_its_own_reason_an_error_reports_its_kind():
    assert error_info(to_status(NotFound("units/farsta"))).reason == "NOT_FOUND"
    assert error_info(to_status(StaleEtag("units/farsta"))).reason == "STALE_ETAG"


def test_bad_input_names_every_field_that_was_wrong():
    error = InvalidArgument(
        [
            FieldViolation("unit.mailbox", "must be an e-mail address"),
            FieldViolation("unit.acute_phone", "must be a Swedish phone number"),
        ]
    )

    status = to_status(error)

    [bad_request] = bad_requests(status)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("unit.mailbox", "must be an e-mail address"),
        ("unit.acute_phone", "must be a Swedish phone number"),
    ]
    assert error_info(status).reason == "INVALID_ARGUMENT"
    assert (
        status.message
        == "unit.mailbox: must be an e-mail address; unit.acute_phone: must be a Swedish phone number"
    )


def test_only_bad_input_carries_field_violations():
    assert bad_requests(to_status(FailedPrecondition("the case is closed"))) == []


def test_an_unexpected_fault_is_generic_and_carries_only_the_trace_id():
    status = internal_status("4bf92f3577b34da6a3ce929d0e0e4736")

    assert status.code == code_pb2.INTERNAL
    assert status.message == "internal error (trace 4bf92f3577b34da6a3ce929d0e0e4736)"
    assert list(status.details) == []


def test_an_unexpected_fault_outside_a_trace_says_only_internal_error():
    assert internal_status(None).message == "internal error"
