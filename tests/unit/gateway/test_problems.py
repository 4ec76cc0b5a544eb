"""The one table from gRPC codes to HTTP, code by code, and how a refusal becomes problem+json."""

from __future__ import annotations

import json

import grpc
import pytest

from gateway.problems import GRPC_TO_HTTP, FieldOrigins, Problem, from_domain_error, http_status, json_pointer
from services.common.errors import InvalidArgument, StaleEtag, Unauthenticated

# google/rpc/code.proto's HTTP mapping, written out again so that the table is checked, not copied.
EXPECTED = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
}


def test_the_table_has_all_seventeen_codes() -> None:
    assert {code.name for code in GRPC_TO_HTTP} == {code.name for code in grpc.StatusCode} == set(EXPECTED)


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_each_code_maps_as_code_proto_says(code: grpc.StatusCode) -> None:
    assert http_status(code) == EXPECTED[code.name]


def test_a_stale_etag_is_a_failed_precondition_of_http() -> None:
    assert http_status(grpc.StatusCode.ABORTED, "STALE_ETAG") == 412
    assert http_status(grpc.StatusCode.ABORTED, "OTHER") == 409
    assert from_domain_error(StaleEtag("units/x")).status == 412


@pytest.mark.parametrize(
    ("field", "pointer"),
    [
        ("case.person_number", "/case/person_number"),
        ("files[2].content", "/files/2/content"),
        ("a~b", "/a~0b"),
        ("request", ""),
    ],
)
def test_field_paths_become_json_pointers(field: str, pointer: str) -> None:
    assert json_pointer(field) == pointer


def test_a_violation_points_where_the_client_sent_the_field() -> None:
    origins = FieldOrigins(
        body="unit", path={"unit.name": ("unit",)}, headers={"request_id": "Idempotency-Key"}
    )
    assert origins.locate("unit.mailbox", "bad")["pointer"] == "/mailbox"
    assert origins.locate("unit.name", "bad")["parameter"] == "unit"
    assert origins.locate("request_id", "bad")["header"] == "Idempotency-Key"
    assert origins.locate("update_mask", "bad")["parameter"] == "update_mask"


def test_a_problem_is_rfc_9457_with_the_reason_as_its_type() -> None:
    problem = from_domain_error(InvalidArgument.field("case.person_number", "is not a valid person number"))
    response = problem.response("abc123")
    body = json.loads(bytes(response.body))
    assert response.media_type == "application/problem+json"
    assert body["type"] == "https://aldredirekt.stockholm.se/problems/INVALID_ARGUMENT"
    assert body["status"] == 400
    assert body["title"] == "Bad Request"
    assert body["trace_id"] == "abc123"
    assert body["errors"] == [
        {
            "field": "case.person_number",
            "detail": "is not a valid person number",
            "pointer": "/case/person_number",
        }
    ]


def test_a_missing_token_asks_for_one() -> None:
    problem = from_domain_error(Unauthenticated("no token", reason="TOKEN_MISSING"))
    assert problem.status == 401
    assert problem.headers["WWW-Authenticate"] == 'Bearer realm="aldredirekt"'


def test_retry_after_is_a_header() -> None:
    response = Problem(status=503, reason="X", detail="later", retry_after=3).response(None)
    assert response.headers["retry-after"] == "3"
