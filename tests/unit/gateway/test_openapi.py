"""The OpenAPI document, generated from the descriptors: field behaviours, JSON-mapping formats, comments,
every error response, and links from a created resource to what can be done with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.catalog import load_catalog
from gateway.composite import composite_paths
from gateway.openapi import Schemas, build_document, for_swagger_ui

DESCRIPTORS = Path(__file__).resolve().parents[3] / "gen" / "descriptors.binpb"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    catalog = load_catalog(descriptors=DESCRIPTORS)
    schemas = Schemas(catalog.comments)
    return build_document(catalog, extra_paths=composite_paths(schemas), schemas=schemas)


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_field_behaviours_and_the_json_mapping(document: dict[str, Any]) -> None:
    case = schema(document, "case.v1.Case")
    assert {"category", "case_type", "case_class", "feedback_channel"} <= set(case["required"])
    assert case["properties"]["status"]["readOnly"] is True
    assert case["properties"]["create_time"]["format"] == "date-time"
    assert case["properties"]["status"]["$ref"] == "#/components/schemas/case.v1.CaseStatus"
    assert "CASE_STATUS_OPEN" in schema(document, "case.v1.CaseStatus")["enum"]
    assert schema(document, "case.v1.StatisticsRow")["properties"]["contacts"]["type"] == "string"
    assert set(schema(document, "google.type.Date")["properties"]) == {"year", "month", "day"}
    update = document["paths"]["/api/v1/units/{unit}"]["patch"]
    mask = next(p for p in update["parameters"] if p.get("name") == "update_mask")
    assert mask["schema"]["type"] == "string"
    decision = schema(document, "mirror.v1.Decision")["properties"]
    assert decision["scope"]["additionalProperties"] == {"type": "string"}
    assert schema(document, "mirror.v1.SourceFreshness")["properties"]["age"]["pattern"].endswith("s$")


def test_descriptions_come_from_the_proto_comments(document: dict[str, Any]) -> None:
    create = document["paths"]["/api/v1/cases"]["post"]
    assert create["summary"] == "Registers a contact as a new case."
    assert (
        "did not give their identity"
        in schema(document, "case.v1.Case")["properties"]["anonymous"]["description"]
    )


def test_every_operation_answers_its_errors_as_problems(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            responses = operation["responses"]
            for status in ("400", "401", "403", "404", "500", "503", "504", "default"):
                assert responses[status] == {"$ref": "#/components/responses/Problem"}, (path, verb, status)
            if "requestBody" in operation:
                assert "413" in responses
                assert "415" in responses


def test_headers_of_commands_and_updates(document: dict[str, Any]) -> None:
    create = document["paths"]["/api/v1/cases"]["post"]
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in create["parameters"]
    update = document["paths"]["/api/v1/units/{unit}"]["patch"]
    assert {"$ref": "#/components/parameters/IfMatch"} in update["parameters"]
    assert "412" in update["responses"]
    assert "ETag" in document["paths"]["/api/v1/units/{unit}"]["get"]["responses"]["200"]["headers"]


def test_a_created_case_links_to_what_can_be_done_with_it(document: dict[str, Any]) -> None:
    links = document["paths"]["/api/v1/cases"]["post"]["responses"]["200"]["links"]
    assert {"GetCase", "ForwardCase", "AcknowledgeCase"} <= set(links)
    assert links["GetCase"]["operationId"] == "CaseService_GetCase"
    assert links["GetCase"]["parameters"] == {"case": "$response.body#/case/name#regex:^cases/([^/]+)$"}


def test_the_documentation_page_gets_the_same_document_written_as_3_0(document: dict[str, Any]) -> None:
    converted = for_swagger_ui(document)
    assert converted["openapi"].startswith("3.0")
    status = converted["components"]["schemas"]["case.v1.Case"]["properties"]["status"]
    assert status["allOf"] == [{"$ref": "#/components/schemas/case.v1.CaseStatus"}]
    assert status["readOnly"] is True
    assert document["openapi"] == "3.1.0"
