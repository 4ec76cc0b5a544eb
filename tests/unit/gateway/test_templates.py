"""Path templates: parsed, matched on the raw path, and written as OpenAPI paths."""

from __future__ import annotations

import pytest
from aldredirekt.case.v1 import case_pb2
from aldredirekt.directory.v1 import directory_pb2

from gateway.templates import TemplateError, parse_template


def test_a_resource_name_is_matched_and_decoded() -> None:
    template = parse_template("/api/v1/{name=cases/*}", case_pb2.GetCaseRequest.DESCRIPTOR)
    assert template.match("/api/v1/cases/12") == {"name": "cases/12"}
    assert template.match("/api/v1/cases/a%20b") == {"name": "cases/a b"}
    assert template.match("/api/v1/cases/12/contacts") is None
    assert template.openapi_path == "/api/v1/cases/{case}"


def test_a_custom_verb_is_never_read_as_part_of_the_name() -> None:
    get = parse_template("/api/v1/{name=cases/*}", case_pb2.GetCaseRequest.DESCRIPTOR)
    forward = parse_template("/api/v1/{name=cases/*}:forward", case_pb2.ForwardCaseRequest.DESCRIPTOR)
    assert get.match("/api/v1/cases/12:forward") is None
    assert forward.match("/api/v1/cases/12:forward") == {"name": "cases/12"}
    assert forward.openapi_path == "/api/v1/cases/{case}:forward"


def test_a_nested_field_and_several_wildcards() -> None:
    update = parse_template("/api/v1/{unit.name=units/*}", directory_pb2.UpdateUnitRequest.DESCRIPTOR)
    assert update.match("/api/v1/units/bromma") == {"unit.name": "units/bromma"}
    revoke = parse_template(
        "/api/v1/{name=cases/*/consents/*}:revoke", case_pb2.RevokeConsentRequest.DESCRIPTOR
    )
    assert revoke.match("/api/v1/cases/3/consents/9:revoke") == {"name": "cases/3/consents/9"}
    assert [p.name for p in revoke.parameters] == ["case", "consent"]


def test_a_variable_must_name_a_field_of_the_request() -> None:
    with pytest.raises(TemplateError):
        parse_template("/api/v1/{nothing=cases/*}", case_pb2.GetCaseRequest.DESCRIPTOR)
