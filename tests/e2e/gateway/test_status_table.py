"""Through the gateway, code by code: a backend's every canonical code becomes the HTTP status of
google/rpc/code.proto, as problem+json, with its details passed on and nothing internal leaked.

The backend is a stand-in for the case service (see conftest) that answers GetCase for "cases/<CODE>" with
that code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from gateway.catalog import load_catalog
from services.common.devissuer import DevIssuer
from support.ports import free_port
from tests.e2e.gateway.conftest import REPO_ROOT, RunningGateway, bearer, running_gateway
from tests.unit.gateway.test_problems import EXPECTED


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer.load_or_create(Path(tmp_path_factory.mktemp("status-issuer")))


@pytest.fixture(scope="module")
def gateway(stand_in: str, issuer: DevIssuer) -> Iterator[RunningGateway]:
    nowhere = f"127.0.0.1:{free_port()}"
    environ = {
        "AUTH_DEV": "true",
        "AUTH_DEV_DIR": str(issuer.directory),
        "GATEWAY_DESCRIPTORS": str(REPO_ROOT / "gen" / "descriptors.binpb"),
        # Every deployable the contract has answers nowhere, except the stand-in case service.
        **{f"GATEWAY_{name.upper()}_ADDRESS": nowhere for name in load_catalog().backends},
        "GATEWAY_CASE_ADDRESS": stand_in,
        "GATEWAY_DEFAULT_TIMEOUT_SECONDS": "2",
        "LOG_LEVEL": "ERROR",
    }
    with running_gateway(environ) as running:
        yield running


CODES = [code for code in grpc.StatusCode if code != grpc.StatusCode.OK]


@pytest.mark.parametrize("code", CODES, ids=lambda c: c.name)
def test_each_code_reaches_the_client_as_its_http_status(
    gateway: RunningGateway, issuer: DevIssuer, code: grpc.StatusCode
) -> None:
    with gateway.client(headers=bearer(issuer.mint(role="agent"))) as client:
        answer = client.get(f"/api/v1/cases/{code.name}")
    assert answer.status_code == EXPECTED[code.name]
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == answer.status_code
    assert problem["type"] == f"https://aldredirekt.stockholm.se/problems/{code.name}_REASON"
    assert problem["code"] == code.name
    assert problem["detail"] == f"the case said {code.name}"
    assert problem["metadata"] == {"k": "v"}
    assert len(problem["trace_id"]) == 32
    assert answer.headers["cache-control"] == "no-store"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert problem["errors"] == [{"field": "name", "detail": "is bad", "parameter": "case"}]
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        assert answer.headers["retry-after"] == "3"


def test_success_carries_the_etag(gateway: RunningGateway, issuer: DevIssuer) -> None:
    with gateway.client(headers=bearer(issuer.mint(role="agent"))) as client:
        answer = client.get("/api/v1/cases/OK")
    assert answer.status_code == 200
    assert answer.headers["etag"] == '"e-1"'
    assert answer.json()["case"]["name"] == "cases/OK"


def test_an_answer_without_our_details_leaks_nothing(gateway: RunningGateway, issuer: DevIssuer) -> None:
    with gateway.client(headers=bearer(issuer.mint(role="agent"))) as client:
        answer = client.get("/api/v1/cases/RAW")
    assert answer.status_code == 500
    text = answer.text
    for secret in ("Traceback", "handlers.py", "10.0.0.7", "KeyError"):
        assert secret not in text
    assert answer.json()["type"].endswith("/INTERNAL")


def test_a_backend_that_does_not_answer_is_503_without_its_address(
    gateway: RunningGateway, issuer: DevIssuer
) -> None:
    with gateway.client(headers=bearer(issuer.mint(role="agent"))) as client:
        answer = client.get("/api/v1/units/bromma")
    assert answer.status_code == 503
    problem = answer.json()
    assert problem["detail"] == "the directory service does not answer; try again"
    assert "127.0.0.1" not in answer.text
    assert "ipv4" not in answer.text


def test_the_clients_deadline_is_passed_on_and_checked(gateway: RunningGateway, issuer: DevIssuer) -> None:
    with gateway.client(headers=bearer(issuer.mint(role="agent"))) as client:
        refused = client.get("/api/v1/cases/OK", headers={"Request-Timeout": "soon"})
        kept = client.get("/api/v1/cases/OK", headers={"X-Request-Timeout": "5"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["header"] == "Request-Timeout"
    assert kept.status_code == 200
