"""HTTP ⇄ protobuf for one binding: body, path, query, headers, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from aldredirekt.case.v1 import case_pb2
from aldredirekt.directory.v1 import directory_pb2

from gateway.catalog import Catalog, load_catalog
from gateway.problems import ProblemError
from gateway.transcoding import Transcoder, parse_if_match, response_document


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def transcoder(catalog: Catalog, method: str) -> Transcoder:
    rpc = next(r for r in catalog.rpcs if r.method.name == method)
    return Transcoder.of(rpc, rpc.bindings[0])


def build(t: Transcoder, **kwargs: Any) -> Any:
    values: dict[str, Any] = {
        "path_values": {},
        "query": [],
        "body": None,
        "idempotency_key": None,
        "if_match": None,
    }
    values.update(kwargs)
    return t.request(**values)


def test_query_parameters_fill_nested_repeated_and_enum_fields(catalog: Catalog) -> None:
    request = build(
        transcoder(catalog, "GetCaseStatistics"),
        query=[
            ("start_date.year", "2026"),
            ("start_date.month", "1"),
            ("startDate.day", "2"),
            ("group_by", "STATISTICS_DIMENSION_MONTH"),
            ("group_by", "STATISTICS_DIMENSION_DISTRICT"),
            ("include_csv", "true"),
        ],
    )
    assert (request.start_date.year, request.start_date.month, request.start_date.day) == (2026, 1, 2)
    assert list(request.group_by) == [
        case_pb2.STATISTICS_DIMENSION_MONTH,
        case_pb2.STATISTICS_DIMENSION_DISTRICT,
    ]
    assert request.include_csv is True


def test_the_path_wins_over_the_body_and_headers_fill_their_fields(catalog: Catalog) -> None:
    request = build(
        transcoder(catalog, "ForwardCase"),
        path_values={"name": "cases/7"},
        body={"name": "cases/8", "postal_code": "16270"},
        idempotency_key="key-1",
    )
    assert request == case_pb2.ForwardCaseRequest(name="cases/7", postal_code="16270", request_id="key-1")


def test_a_body_field_binding_and_if_match(catalog: Catalog) -> None:
    request = build(
        transcoder(catalog, "UpdateUnit"),
        path_values={"unit.name": "units/bromma"},
        body={"mailbox": "a@example.org", "etag": "old"},
        query=[("update_mask", "mailbox,phone_hours")],
        if_match='"fresh"',
    )
    assert request.unit.name == "units/bromma"
    assert request.unit.etag == "fresh"
    assert list(request.update_mask.paths) == ["mailbox", "phone_hours"]


def test_an_idempotency_key_that_contradicts_the_body_is_refused(catalog: Catalog) -> None:
    with pytest.raises(ProblemError) as refused:
        build(transcoder(catalog, "CreateCase"), body={"request_id": "a"}, idempotency_key="b")
    assert refused.value.problem.errors[0]["header"] == "Idempotency-Key"


@pytest.mark.parametrize(
    ("body", "field", "pointer"),
    [
        ({"case": {"feedback_channel": "NOPE"}}, "case.feedback_channel", "/case/feedback_channel"),
        ({"case": {"acute": "yes"}}, "case.acute", "/case/acute"),
        ({"contact": {"unknown": 1}}, "contact.unknown", "/contact/unknown"),
        ({"case": "text"}, "case", "/case"),
    ],
)
def test_a_body_the_mapping_refuses_names_the_field(
    catalog: Catalog, body: dict[str, Any], field: str, pointer: str
) -> None:
    with pytest.raises(ProblemError) as refused:
        build(transcoder(catalog, "CreateCase"), body=body)
    problem = refused.value.problem
    assert problem.status == 400
    assert problem.errors[0]["field"] == field
    assert problem.errors[0]["pointer"] == pointer
    assert "aldredirekt." not in problem.detail  # no internal type names


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ([("nothing", "1")], "is not a parameter"),
        ([("start_date", "2026-01-01")], "is a message"),
        ([("include_csv", "maybe")], "true or false"),
    ],
)
def test_a_bad_query_parameter_is_refused_by_name(
    catalog: Catalog, query: list[tuple[str, str]], why: str
) -> None:
    with pytest.raises(ProblemError) as refused:
        build(transcoder(catalog, "GetCaseStatistics"), query=query)
    assert why in refused.value.problem.errors[0]["detail"]
    assert refused.value.problem.errors[0]["parameter"] == query[0][0]


def test_an_answer_carries_its_etag_and_every_field_with_int64_as_text(catalog: Catalog) -> None:
    get_unit = transcoder(catalog, "GetUnit")
    answer = directory_pb2.GetUnitResponse(unit=directory_pb2.Unit(name="units/x", etag="e1"))
    assert get_unit.etag_of(answer) == "e1"
    row = response_document(case_pb2.StatisticsRow(contacts=2**40))
    assert row["contacts"] == str(2**40)
    assert row["acute"] == "0"  # defaults are written out, not left for the client to guess


def test_if_match_forms() -> None:
    assert parse_if_match('"abc"') == "abc"
    assert parse_if_match('W/"abc", "def"') == "abc"
    assert parse_if_match("*") is None
