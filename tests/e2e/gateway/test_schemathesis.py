"""Schemathesis against the running gateway's own OpenAPI document, with an agent's token: every operation
with generated requests, and stateful runs along the document's links (create a case, then get, forward,
acknowledge it and the rest). No answer may be a fault of ours, every answer must match the document, and
every error must be problem+json. Bounded so that the whole run takes well under a minute.

503 and 504 are answers the services give on purpose here (the mirror's sources are all down in the test
city), so they pass when they are problems with one of our reasons; any other 5xx fails.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode, Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.gateway.conftest import ASTRID, RunningGateway, Tokens, bearer

EXAMPLES_PER_OPERATION = 4
UPSTREAM_DOWN = {503, 504}


# What the runs got, by operation and status, to show that they reached what they are meant to test.
SEEN: Counter[tuple[str, int]] = Counter()


def problem_json_and_no_fault(ctx: Any, response: Response, case: Case[Any]) -> bool | None:
    """Every error is problem+json with the status it is sent with; no 5xx but an upstream's absence."""
    status = response.status_code
    SEEN[(case.operation.label, status)] += 1
    if status < 400:
        return None
    assert response.headers.get("content-type", [""])[0].startswith("application/problem+json"), status
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("https://aldredirekt.stockholm.se/problems/")
    assert "Traceback" not in response.text
    if status >= 500:
        assert status in UPSTREAM_DOWN, f"{case.method} {case.formatted_path}: {status} {problem}"
    return True


CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    problem_json_and_no_fault,
]


def valid_bodies(officer: str) -> dict[str, dict[str, Any]]:
    """Bodies that get past the services' checks, for the steps a stateful run must take to go on."""
    return {
        "POST /api/v1/cases": {
            "case": {
                "category": "aldreomsorg",
                "case_type": "hemtjanst",
                "case_class": "information-och-vagledning",
                "person_number": ASTRID,
                "feedback_channel": "FEEDBACK_CHANNEL_PHONE",
            },
            "contact": {
                "channel": "CHANNEL_PHONE",
                "party": "CONTACT_PARTY_SELF",
                "summary": "Frågar om hemtjänst.",
            },
        },
        "POST /api/v1/cases/{case}:forward": {"named_officer": officer, "note": "till enheten"},
    }


@pytest.fixture(scope="module")
def api(gateway: RunningGateway, city_officer: str) -> Any:
    loaded = schemathesis.openapi.from_url(f"{gateway.url}/api/v1/openapi.json")
    loaded.config.generation.update(modes=[GenerationMode.POSITIVE], max_examples=EXAMPLES_PER_OPERATION)
    bodies = valid_bodies(city_officer)

    @loaded.hook
    def map_body(context: Any, body: Any) -> Any:
        label = context.operation.label if context.operation is not None else ""
        return bodies.get(label, body)

    return loaded


@pytest.fixture(scope="module")
def agent_token(tokens: Tokens, city_officer: str) -> str:
    from tests.unit.directory.cities import small_city

    officer_id = city_officer.removeprefix("officers/")
    unit = next(o.unit_id for o in small_city().officers if o.officer_id == officer_id)
    # An agent who also works in the officer's unit, so that the unit's side of a case can be reached too.
    return tokens.issuer.mint(role=["agent", "officer"], subject="agent-stateful", unit=f"units/{unit}")


def test_every_operation_answers_within_its_document(api: Any, agent_token: str) -> None:
    failures: list[str] = []
    for result in api.get_all_operations():
        operation = result.ok()

        @given(operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def answers(case: Case[Any]) -> None:
            case.call_and_validate(headers=bearer(agent_token), checks=CHECKS, timeout=30)

        try:
            answers()
        except Exception as error:  # every operation is run; the failures are listed together
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
    operations = {label for label, _ in SEEN}
    assert len(operations) >= 45, operations
    assert SEEN[("POST /api/v1/cases", 200)] > 0
    assert any(status == 200 for (label, status) in SEEN if label.startswith("GET"))


def test_stateful_runs_along_the_links(api: Any, agent_token: str) -> None:
    # The case's workflow: the cases' operations only, so that every scenario can start from CreateCase.
    machine = api.include(path_regex=r"^/api/v1/cases").as_state_machine()

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"headers": bearer(agent_token), "timeout": 30}

        def validate_response(self, response: Response, case: Case[Any], **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    SEEN.clear()
    Workflow.run(
        settings=settings(
            max_examples=30,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    # The links were followed: a created case was reached by operations on it (a made-up number gets 400
    # or 404; a real case gets its answer, or the refusal of a step out of order or of another unit).
    assert SEEN[("POST /api/v1/cases", 200)] > 0
    on_a_case = [
        (label, status) for label, status in SEEN if "/cases/{case}" in label and status not in (400, 404)
    ]
    assert on_a_case, sorted(SEEN)
    for step in ("POST /api/v1/cases/{case}:forward", "POST /api/v1/cases/{case}:acknowledge"):
        assert any(label == step for label, _ in SEEN), step
