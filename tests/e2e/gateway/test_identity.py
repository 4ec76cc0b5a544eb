"""Tokens are checked at the gateway, against the identity provider's JWKS over HTTP: a missing, expired or
foreign token is refused there, an unknown kid makes it read the keys again (not more often than its
cooldown), and while the provider is down the keys it knows keep serving."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.catalog import load_catalog
from services.common.auth import SigningKey, jwks_document
from services.common.devissuer import DEV_ISSUER, DevIssuer
from support.ports import free_port
from tests.e2e.gateway.conftest import REPO_ROOT, RunningGateway, bearer, running_gateway


@dataclass
class IdentityProvider:
    """Serves a JWKS over HTTP; `down` makes it answer 503; counts the reads."""

    keys: list[SigningKey]
    down: bool = False
    reads: int = 0
    server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityProvider]:
    issuer = DevIssuer.load_or_create(Path(tmp_path_factory.mktemp("idp")))
    state = IdentityProvider(keys=[issuer.key])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.reads += 1
            if state.down:
                self.send_response(503)
                self.end_headers()
                return
            body = json.dumps(jwks_document(state.keys)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()


@pytest.fixture(scope="module")
def gateway(provider: IdentityProvider, stand_in: str) -> Iterator[RunningGateway]:
    nowhere = f"127.0.0.1:{free_port()}"
    environ = {
        "AUTH_JWKS": provider.url,
        "AUTH_ISSUER": DEV_ISSUER,
        "GATEWAY_PAGE_TOKEN_KEY": "p" * 40,
        "GATEWAY_DESCRIPTORS": str(REPO_ROOT / "gen" / "descriptors.binpb"),
        # Every deployable the contract has answers nowhere, except the stand-in case service.
        **{f"GATEWAY_{name.upper()}_ADDRESS": nowhere for name in load_catalog().backends},
        "GATEWAY_CASE_ADDRESS": stand_in,
        "GATEWAY_JWKS_UNKNOWN_KID_SECONDS": "0.5",
        "LOG_LEVEL": "ERROR",
    }
    with running_gateway(environ) as running:
        yield running


def mint(key: SigningKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": DEV_ISSUER, "aud": "aldredirekt", "sub": "agent-anna", "iat": now, "exp": now + 600}
    body |= {"roles": ["agent"], **claims}
    return key.sign(body)


def get_case(gateway: RunningGateway, headers: dict[str, str]) -> Any:
    with gateway.client(headers=headers) as client:
        return client.get("/api/v1/cases/OK")


def test_a_good_token_passes(gateway: RunningGateway, provider: IdentityProvider) -> None:
    assert get_case(gateway, bearer(mint(provider.keys[0]))).status_code == 200


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "TOKEN_MISSING"),
        ({"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, "TOKEN_INVALID"),
        ({"Authorization": "Bearer not-a-jwt"}, "TOKEN_INVALID"),
    ],
)
def test_a_missing_or_malformed_token_is_refused(
    gateway: RunningGateway, headers: dict[str, str], reason: str
) -> None:
    answer = get_case(gateway, headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["reason"] == reason
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_an_expired_token_is_refused(gateway: RunningGateway, provider: IdentityProvider) -> None:
    token = mint(provider.keys[0], iat=1_000_000, exp=1_000_600)
    answer = get_case(gateway, bearer(token))
    assert answer.status_code == 401
    assert answer.json()["reason"] == "TOKEN_EXPIRED"


def test_a_token_for_another_audience_is_refused(gateway: RunningGateway, provider: IdentityProvider) -> None:
    answer = get_case(gateway, bearer(mint(provider.keys[0], aud="someone-else")))
    assert answer.status_code == 401
    assert "audience" in answer.json()["detail"]


def test_an_unknown_kid_reads_the_keys_again_and_a_rotated_key_is_then_known(
    gateway: RunningGateway, provider: IdentityProvider
) -> None:
    rotated = SigningKey.generate("ES256")
    time.sleep(0.6)  # past the cooldown of the reads before
    before = provider.reads
    refused = get_case(gateway, bearer(mint(rotated)))
    assert refused.status_code == 401
    assert provider.reads == before + 1
    # Within the cooldown another unknown kid does not reach the provider.
    get_case(gateway, bearer(mint(SigningKey.generate("ES256"))))
    assert provider.reads == before + 1
    provider.keys.append(rotated)
    time.sleep(0.6)
    assert get_case(gateway, bearer(mint(rotated, sub="agent-bo"))).status_code == 200


def test_while_the_provider_is_down_the_known_keys_keep_serving(
    gateway: RunningGateway, provider: IdentityProvider
) -> None:
    provider.down = True
    try:
        time.sleep(0.6)
        # An unknown kid makes the gateway try the provider, which fails; the keys it had stay.
        assert get_case(gateway, bearer(mint(SigningKey.generate("ES256")))).status_code == 401
        assert get_case(gateway, bearer(mint(provider.keys[0], sub="agent-cecilia"))).status_code == 200
    finally:
        provider.down = False
