"""A service's own token by the client-credentials grant, against a real token endpoint on loopback (a
Starlette app on uvicorn): the request RFC 6749 asks for, one token shared until shortly before it runs out,
one request however many callers wait, a clear refusal, and UNAVAILABLE when the endpoint is down."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.errors import Unavailable
from services.common.secrets import Secret
from services.common.service_tokens import ClientCredentials, ServiceTokenSettings
from upstreams.server import Listener

CLIENT_ID = "aldredirekt fees"
SECRET = "s3cret:with/odd+chars"


@dataclass
class TokenEndpoint:
    """An identity provider's token endpoint: checks the client's credentials, counts what it issues."""

    expires_in: int = 300
    delay: float = 0.0
    requests: list[dict[str, str]] = field(default_factory=list)
    issued: int = 0

    async def token(self, request: Request) -> JSONResponse:
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = dict(parse_qsl((await request.body()).decode()))
        self.requests.append(form)
        if self.delay:
            await asyncio.sleep(self.delay)
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        client, _, secret = base64.b64decode(encoded).decode().partition(":") if encoded else ("", "", "")
        if scheme != "Basic" or (unquote_plus(client), unquote_plus(secret)) != (CLIENT_ID, SECRET):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "bad client"}, status_code=401
            )
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        self.issued += 1
        return JSONResponse(
            {"access_token": f"token-{self.issued}", "token_type": "Bearer", "expires_in": self.expires_in}
        )


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[TokenEndpoint, Listener]]:
    provider = TokenEndpoint()
    app = Starlette(routes=[Route("/oauth2/token", provider.token, methods=["POST"])])
    listener = Listener("token-endpoint", app, "127.0.0.1", 0)
    await listener.start()
    yield provider, listener
    await listener.stop()


def client(listener: Listener, tmp_path: Path, clock: Clock, *, secret: str = SECRET) -> ClientCredentials:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(secret + "\n")
    settings = ServiceTokenSettings(
        token_url=f"http://127.0.0.1:{listener.port}/oauth2/token",
        client_id=CLIENT_ID,
        secret=Secret(file=str(secret_file)),
        audience="aldredirekt",
        scope="case.billing",
        timeout_seconds=2.0,
    )
    return ClientCredentials(settings, clock=clock)


async def test_a_token_is_asked_for_as_rfc_6749_says_and_reused_until_shortly_before_it_runs_out(
    endpoint: tuple[TokenEndpoint, Listener], tmp_path: Path
):
    provider, listener = endpoint
    clock = Clock()
    tokens = client(listener, tmp_path, clock)
    try:
        assert await tokens.token() == "token-1"
        clock.now += 200
        assert await tokens.token() == "token-1"
        assert provider.requests == [
            {"grant_type": "client_credentials", "audience": "aldredirekt", "scope": "case.billing"}
        ]
        # Thirty seconds before its end the token is renewed.
        clock.now += 75
        assert await tokens.token() == "token-2"
        assert len(provider.requests) == 2
    finally:
        await tokens.close()


async def test_callers_waiting_at_once_share_one_request(
    endpoint: tuple[TokenEndpoint, Listener], tmp_path: Path
):
    provider, listener = endpoint
    provider.delay = 0.2
    tokens = client(listener, tmp_path, Clock())
    try:
        got = await asyncio.gather(*(tokens.token() for _ in range(20)))
        assert set(got) == {"token-1"}
        assert len(provider.requests) == 1
    finally:
        await tokens.close()


async def test_a_token_a_callee_refused_is_forgotten_and_the_next_call_fetches_another(
    endpoint: tuple[TokenEndpoint, Listener], tmp_path: Path
):
    _, listener = endpoint
    tokens = client(listener, tmp_path, Clock())
    try:
        first = await tokens.token()
        tokens.forget("some-other-token")
        assert await tokens.token() == first
        tokens.forget(first)
        assert await tokens.token() == "token-2"
    finally:
        await tokens.close()


async def test_credentials_the_endpoint_refuses_are_a_clear_error_that_never_holds_the_secret(
    endpoint: tuple[TokenEndpoint, Listener], tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    _, listener = endpoint
    tokens = client(listener, tmp_path, Clock(), secret="wrong-secret-value")
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(Unavailable) as caught:
            await tokens.token()
    finally:
        await tokens.close()
    assert caught.value.reason == "SERVICE_TOKEN_REFUSED"
    assert "invalid_client" in caught.value.message
    assert "client id and secret" in caught.value.message
    assert "wrong-secret-value" not in caught.value.message
    assert "wrong-secret-value" not in caplog.text


async def test_an_endpoint_that_is_down_makes_the_token_unavailable_until_it_is_back(
    endpoint: tuple[TokenEndpoint, Listener], tmp_path: Path
):
    _, listener = endpoint
    tokens = client(listener, tmp_path, Clock())
    try:
        await listener.stop()
        with pytest.raises(Unavailable) as caught:
            await tokens.token()
        assert caught.value.reason == "SERVICE_TOKEN_UNAVAILABLE"
        await listener.start()
        assert await tokens.token() == "token-1"
    finally:
        await tokens.close()


async def test_a_rotated_secret_file_is_read_at_the_next_request(
    endpoint: tuple[TokenEndpoint, Listener], tmp_path: Path
):
    _, listener = endpoint
    clock = Clock()
    tokens = client(listener, tmp_path, clock, secret="the-old-one")
    try:
        with pytest.raises(Unavailable):
            await tokens.token()
        (tmp_path / "client-secret").write_text(SECRET)
        assert await tokens.token() == "token-1"
    finally:
        await tokens.close()
