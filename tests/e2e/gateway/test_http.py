"""The gateway in front of the real services: retries made safe, etags, the composite resources, and what
its edge does for every request (CORS, body limits, security headers, the documentation page)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from support.ports import free_port
from tests.e2e.gateway.conftest import (
    ASTRID,
    RunningGateway,
    Tokens,
    bearer,
    gateway_environ,
    running_gateway,
)
from tests.live_services import LiveServices
from tests.unit.directory.cities import small_city

NEW_CASE: dict[str, Any] = {
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
        "summary": "Undrar om hemtjänsten.",
    },
}


def test_a_replayed_idempotency_key_gets_the_first_answer(gateway: RunningGateway, tokens: Tokens) -> None:
    key = f"gw-{uuid.uuid4()}"
    with gateway.client(headers=bearer(tokens.agent())) as client:
        first = client.post("/api/v1/cases", json=NEW_CASE, headers={"Idempotency-Key": key})
        again = client.post("/api/v1/cases", json=NEW_CASE, headers={"Idempotency-Key": key})
        other = {**NEW_CASE, "case": {**NEW_CASE["case"], "acute": True}}
        reused = client.post("/api/v1/cases", json=other, headers={"Idempotency-Key": key})
        fresh = client.post("/api/v1/cases", json=NEW_CASE, headers={"Idempotency-Key": key + "-2"})
    assert first.status_code == 200, first.text
    assert again.status_code == 200
    assert again.json()["case"]["name"] == first.json()["case"]["name"]
    assert fresh.json()["case"]["name"] != first.json()["case"]["name"]
    assert reused.status_code == 409
    assert reused.json()["type"].endswith("/IDEMPOTENCY_KEY_REUSED")
    assert reused.headers["content-type"] == "application/problem+json"


def test_an_update_with_a_stale_if_match_is_412(gateway: RunningGateway, tokens: Tokens) -> None:
    unit = small_city().units[0].unit_id
    with gateway.client(headers=bearer(tokens.admin())) as client:
        read = client.get(f"/api/v1/units/{unit}")
        etag = read.headers["etag"]
        change = {"mailbox": f"aldreomsorg.{uuid.uuid4().hex[:6]}@stockholm.example"}
        stale = client.patch(
            f"/api/v1/units/{unit}",
            params={"update_mask": "mailbox"},
            json=change,
            headers={"If-Match": '"old"'},
        )
        fresh = client.patch(
            f"/api/v1/units/{unit}",
            params={"update_mask": "mailbox"},
            json=change,
            headers={"If-Match": etag},
        )
        again = client.patch(
            f"/api/v1/units/{unit}",
            params={"update_mask": "mailbox"},
            json=change,
            headers={"If-Match": etag},
        )
    assert read.status_code == 200
    assert stale.status_code == 412, stale.text
    assert stale.json()["type"].endswith("/STALE_ETAG")
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["unit"]["mailbox"] == change["mailbox"]
    assert fresh.headers["etag"] != etag
    assert again.status_code == 412


def _key(entry: dict[str, Any]) -> tuple[datetime, str, int]:
    return (datetime.fromisoformat(entry["time"]), entry["service"], int(entry["sequence"]))


def test_the_access_log_is_merged_newest_first_and_paged_with_one_token(
    gateway: RunningGateway, tokens: Tokens
) -> None:
    with gateway.client(headers=bearer(tokens.citizen())) as client:
        # The citizen's own reads of the log are logged by every service: each has entries now.
        for _ in range(2):
            assert client.get("/api/v1/me/accessLog").status_code == 200
    with gateway.client(headers=bearer(tokens.auditor())) as client:
        paged: list[dict[str, Any]] = []
        token = ""
        for _ in range(100):
            page = client.post(
                "/api/v1/persons:accessLog",
                json={"person_number": ASTRID, "page_size": 2, "page_token": token},
            )
            assert page.status_code == 200, page.text
            assert len(page.json()["entries"]) <= 2
            paged += page.json()["entries"]
            token = page.json()["next_page_token"]
            if not token:
                break
        whole = client.post("/api/v1/persons:accessLog", json={"person_number": ASTRID, "page_size": 1000})
    assert not token
    names = [entry["name"] for entry in paged]
    assert len(names) == len(set(names)), "no entry twice"
    assert {entry["service"] for entry in paged} >= {"case", "directory", "mirror"}
    keys = [_key(entry) for entry in paged]
    assert keys == sorted(keys, reverse=True), "newest first across services"
    # A single page read afterwards holds the same entries, and besides them only the reads made since.
    later = [e["name"] for e in whole.json()["entries"] if _key(e) <= keys[0]]
    assert later == names


def test_a_forged_page_token_is_refused(gateway: RunningGateway, tokens: Tokens) -> None:
    with gateway.client(headers=bearer(tokens.auditor())) as client:
        first = client.post("/api/v1/persons:accessLog", json={"person_number": ASTRID, "page_size": 1})
        token = first.json()["next_page_token"]
        assert token
        forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        refused = client.post(
            "/api/v1/persons:accessLog", json={"person_number": ASTRID, "page_size": 1, "page_token": forged}
        )
    with gateway.client(headers=bearer(tokens.citizen())) as client:
        # Another caller's token is no token of theirs either.
        theirs = client.get("/api/v1/me/accessLog", params={"page_size": 1, "page_token": token})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "page_token"
    assert theirs.status_code == 400


def test_the_person_view_answers_each_part(gateway: RunningGateway, tokens: Tokens) -> None:
    with gateway.client(headers=bearer(tokens.agent())) as client:
        view = client.post(
            "/api/v1/persons:view", json={"person_number": ASTRID, "district": "districts/jarva"}
        )
        bad = client.post("/api/v1/persons:view", json={"person_number": "19380412-2427"})
    assert view.status_code == 200
    parts = view.json()
    assert parts["open_cases"]["status"] == 200
    assert parts["open_cases"]["data"]["cases"]
    # Without a grant the mirror refuses its part; the directory still answers from its rules.
    assert parts["overview"]["status"] == 403
    assert parts["overview"]["problem"]["type"].endswith("/GRANT_REQUIRED")
    assert parts["responsible"]["status"] == 200, parts["responsible"]
    assert parts["responsible"]["data"]["source"] == "DIRECTORY_RULES"
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["pointer"] == "/person_number"


def test_ready_when_every_service_it_fronts_is_serving(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        ready = client.get("/readyz")
        healthy = client.get("/healthz")
    assert healthy.status_code == 200
    assert ready.status_code == 200
    # Every deployable the protos have a service of, fees included.
    assert ready.json()["backends"] == {name: "SERVING" for name in ("case", "directory", "fees", "mirror")}


@pytest.fixture(scope="module")
def gateway_without_mirror(live: LiveServices) -> Iterator[RunningGateway]:
    environ = gateway_environ(live, GATEWAY_MIRROR_ADDRESS=f"127.0.0.1:{free_port()}")
    with running_gateway(environ) as running:
        yield running


def test_with_the_mirror_down_the_person_view_still_answers_the_other_parts(
    gateway_without_mirror: RunningGateway, tokens: Tokens
) -> None:
    with gateway_without_mirror.client(headers=bearer(tokens.agent())) as client:
        view = client.post(
            "/api/v1/persons:view", json={"person_number": ASTRID, "district": "districts/jarva"}
        )
        ready = client.get("/readyz")
        healthy = client.get("/healthz")
    assert view.status_code == 200
    parts = view.json()
    assert parts["overview"]["status"] == 503
    assert parts["overview"]["problem"]["detail"] == "the mirror service does not answer; try again"
    assert parts["open_cases"]["status"] == 200
    assert parts["responsible"]["status"] == 200
    # One backend down takes only its calls down, not the gateway out of the load balancer (which probes
    # /healthz); /readyz, the whole chain, names the one that is down.
    assert healthy.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["not_serving"] == ["mirror"]
    assert ready.json()["backends"]["mirror"] == "UNREACHABLE"
    assert ready.json()["backends"]["case"] == "SERVING"


def test_cors_answers_the_configured_front_ends_only(gateway: RunningGateway, tokens: Tokens) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    with gateway.client() as client:
        allowed = client.options(
            "/api/v1/cases", headers={"Origin": "https://agent.aldredirekt.example", **preflight}
        )
        refused = client.options("/api/v1/cases", headers={"Origin": "https://evil.example", **preflight})
        refused_call = client.get(
            "/api/v1/referenceData", headers={"Origin": "https://evil.example", **bearer(tokens.agent())}
        )
        same_origin = client.get(
            "/api/v1/referenceData", headers={"Origin": gateway.url, **bearer(tokens.agent())}
        )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://agent.aldredirekt.example"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    for answer in (refused, refused_call):
        assert answer.status_code == 403
        assert answer.headers["content-type"] == "application/problem+json"
        assert "access-control-allow-origin" not in answer.headers
    assert same_origin.status_code == 200


def test_a_body_over_the_limit_is_413_and_one_not_json_415(gateway: RunningGateway, tokens: Tokens) -> None:
    huge = b'{"case": {"provider": "' + b"x" * 2_000_000 + b'"}}'
    with gateway.client(headers=bearer(tokens.agent())) as client:
        announced = client.post("/api/v1/cases", content=huge, headers={"Content-Type": "application/json"})

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(huge), 65536):
                yield huge[start : start + 65536]

        streamed = client.post(
            "/api/v1/cases", content=chunks(), headers={"Content-Type": "application/json"}
        )
        text = client.post("/api/v1/cases", content=b"case=1", headers={"Content-Type": "text/plain"})
        broken = client.post("/api/v1/cases", content=b"{", headers={"Content-Type": "application/json"})
    for answer in (announced, streamed):
        assert answer.status_code == 413
        assert answer.json()["type"].endswith("/BODY_TOO_LARGE")
    assert text.status_code == 415
    assert text.headers["content-type"] == "application/problem+json"
    assert broken.status_code == 400


def test_every_answer_has_the_security_headers(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        for path in ("/api/v1/openapi.json", "/api/v1/docs", "/api/v1/nothing", "/healthz"):
            answer = client.get(path)
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert "max-age=" in answer.headers["strict-transport-security"]
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert "server" not in answer.headers


def test_the_documentation_page_is_served_from_the_gateways_own_files(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        page = client.get("/api/v1/docs")
        files = {
            name: client.get(f"/api/v1/docs/{name}")
            for name in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js")
        }
        document = client.get("/api/v1/docs/openapi.json")
        missing = client.get("/api/v1/docs/..%2Fsecret")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # no inline script: the CSP allows none
    assert "https://" not in page.text  # nothing from a CDN
    for answer in files.values():
        assert answer.status_code == 200
    assert files["swagger-ui-bundle.js"].headers["content-type"].startswith("text/javascript")
    assert document.json()["openapi"].startswith("3.0")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_framework_errors_are_problems_too(gateway: RunningGateway, tokens: Tokens) -> None:
    with gateway.client(headers=bearer(tokens.agent())) as client:
        wrong_verb = client.get("/api/v1/persons:view")
        unknown = client.get("/nothing/here")
        no_verb = client.delete("/api/v1/cases/1")
    for answer, status in ((wrong_verb, 405), (unknown, 404), (no_verb, 405)):
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == status
    assert no_verb.headers["allow"] == "GET"
