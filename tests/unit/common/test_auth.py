from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from services.common.auth import (
    Caller,
    JwksSource,
    Role,
    SigningKey,
    TokenVerifier,
    bearer_from_metadata,
    jwks_document,
    parse_jwks,
)
from services.common.errors import PermissionDenied, Unauthenticated, Unavailable

ISSUER = "https://login.example.test"
AUDIENCE = "aldredirekt"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-17",
        "iat": now,
        "exp": now + 600,
        "roles": ["agent"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def write_jwks(path: Path, *keys: SigningKey) -> None:
    overwrite(path, json.dumps(jwks_document(keys)))


def overwrite(path: Path, text: str) -> None:
    path.write_text(text)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.generate("RS256")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jwks_path(tmp_path: Path, key: SigningKey) -> Path:
    path = tmp_path / "jwks.json"
    write_jwks(path, key)
    return path


@pytest.fixture
def verifier(jwks_path: Path, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(ISSUER, AUDIENCE, JwksSource(jwks_path, clock=clock))


async def refused(verifier: TokenVerifier, token: str | None) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    if token:
        assert token not in caught.value.message
    return caught.value


# --- a good token ------------------------------------------------------------------------------------


async def test_valid_token_names_the_caller(verifier: TokenVerifier, key: SigningKey) -> None:
    token = key.sign(claims(sub="officer-3", roles=["officer", "agent"], unit="units/vasterort"))

    caller = await verifier.verify(token)

    assert caller == Caller(
        subject="officer-3",
        roles=frozenset({Role.OFFICER, Role.AGENT}),
        unit="units/vasterort",
        person_number=None,
        token=token,
    )


async def test_rs256_tokens_are_accepted(tmp_path: Path, rsa_key: SigningKey) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, rsa_key)
    verifier = TokenVerifier(ISSUER, AUDIENCE, JwksSource(path))

    caller = await verifier.verify(rsa_key.sign(claims(roles=["finance"])))

    assert caller.roles == {Role.FINANCE}


async def test_citizen_is_the_person_in_their_token_in_twelve_digit_form(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    token = key.sign(claims(roles=["citizen"], person_number="19121212-1212"))

    caller = await verifier.verify(token)

    assert caller.person_number == "191212121212"
    assert caller.has_role(Role.CITIZEN)


async def test_roles_this_system_does_not_know_are_ignored(verifier: TokenVerifier, key: SigningKey) -> None:
    caller = await verifier.verify(key.sign(claims(roles=["agent", "janitor", 7])))

    assert caller.roles == {Role.AGENT}


async def test_token_expired_within_the_leeway_is_still_accepted(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    now = int(time.time())

    caller = await verifier.verify(key.sign(claims(iat=now - 600, exp=now - 10)))

    assert caller.subject == "user-17"


# --- refused tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "   "])
async def test_missing_token_is_refused_as_missing(verifier: TokenVerifier, token: str | None) -> None:
    error = await refused(verifier, token)

    assert error.reason == "TOKEN_MISSING"


async def test_token_expired_beyond_the_leeway_is_refused_as_expired(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    now = int(time.time())

    error = await refused(verifier, key.sign(claims(iat=now - 600, exp=now - 60)))

    assert error.reason == "TOKEN_EXPIRED"


async def test_token_not_valid_yet_is_refused(verifier: TokenVerifier, key: SigningKey) -> None:
    now = int(time.time())

    error = await refused(verifier, key.sign(claims(nbf=now + 120, exp=now + 720)))

    assert error.reason == "TOKEN_INVALID"
    assert "not valid yet" in error.message


async def test_token_from_another_issuer_is_refused(verifier: TokenVerifier, key: SigningKey) -> None:
    error = await refused(verifier, key.sign(claims(iss="https://evil.example.test")))

    assert error.reason == "TOKEN_INVALID"
    assert "issuer" in error.message


async def test_token_for_another_audience_is_refused(verifier: TokenVerifier, key: SigningKey) -> None:
    error = await refused(verifier, key.sign(claims(aud="some-other-app")))

    assert error.reason == "TOKEN_INVALID"
    assert "audience" in error.message


async def test_token_signed_by_another_key_under_a_known_kid_is_refused(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    impostor = SigningKey.generate("ES256", kid=key.kid)

    error = await refused(verifier, impostor.sign(claims()))

    assert error.reason == "TOKEN_INVALID"
    assert "signature" in error.message


async def test_token_signed_by_an_unpublished_key_is_refused(verifier: TokenVerifier) -> None:
    error = await refused(verifier, SigningKey.generate("ES256").sign(claims()))

    assert error.reason == "TOKEN_INVALID"


async def test_unsigned_token_is_refused(verifier: TokenVerifier, key: SigningKey) -> None:
    token = unsigned_token({"alg": "none", "typ": "JWT", "kid": key.kid}, claims()) + "."

    error = await refused(verifier, token)

    assert error.reason == "TOKEN_INVALID"


async def test_token_signed_with_the_public_key_as_an_hmac_secret_is_refused(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    signing_input = unsigned_token({"alg": "HS256", "typ": "JWT", "kid": key.kid}, claims())
    secret = json.dumps(key.public_jwk()).encode()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()

    error = await refused(verifier, f"{signing_input}.{b64url(signature)}")

    assert error.reason == "TOKEN_INVALID"


async def test_token_whose_algorithm_differs_from_its_key_is_refused(
    tmp_path: Path, key: SigningKey, rsa_key: SigningKey
) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, rsa_key)
    verifier = TokenVerifier(ISSUER, AUDIENCE, JwksSource(path))
    # An ES256 signature presented under the RSA key's kid.
    token = SigningKey.from_pem(key.to_pem(), kid=rsa_key.kid).sign(claims())

    error = await refused(verifier, token)

    assert error.reason == "TOKEN_INVALID"


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        "....",
        "eyJhbGciOiJFUzI1NiJ9.e30",
        "eyJhbGciOiJFUzI1NiJ9.!!!.???",
        "Bearer x.y.z",
    ],
)
async def test_malformed_token_is_refused(verifier: TokenVerifier, token: str) -> None:
    error = await refused(verifier, token)

    assert error.reason == "TOKEN_INVALID"


async def test_token_without_a_kid_is_refused(verifier: TokenVerifier, key: SigningKey) -> None:
    token = jwt.encode(claims(), key.to_pem(), algorithm="ES256")

    error = await refused(verifier, token)

    assert error.reason == "TOKEN_INVALID"


async def test_token_without_expiry_is_refused(verifier: TokenVerifier, key: SigningKey) -> None:
    error = await refused(verifier, key.sign(claims(exp=None)))

    assert error.reason == "TOKEN_INVALID"
    assert "exp" in error.message


async def test_token_with_no_known_role_is_refused(verifier: TokenVerifier, key: SigningKey) -> None:
    error = await refused(verifier, key.sign(claims(roles=["janitor"])))

    assert error.reason == "NO_KNOWN_ROLE"


async def test_token_with_a_malformed_unit_is_refused(verifier: TokenVerifier, key: SigningKey) -> None:
    error = await refused(verifier, key.sign(claims(roles=["officer"], unit="vasterort")))

    assert error.reason == "TOKEN_INVALID"
    assert "unit" in error.message


async def test_citizen_token_without_a_person_number_is_refused(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    error = await refused(verifier, key.sign(claims(roles=["citizen"])))

    assert error.reason == "TOKEN_INVALID"
    assert "person_number" in error.message


async def test_invalid_person_number_is_refused_without_repeating_it(
    verifier: TokenVerifier, key: SigningKey
) -> None:
    error = await refused(verifier, key.sign(claims(roles=["citizen"], person_number="191212121213")))

    assert error.reason == "TOKEN_INVALID"
    assert "191212121213" not in error.message


# --- keys from the issuer ----------------------------------------------------------------------------


async def test_rotated_key_is_fetched_when_a_token_names_an_unknown_kid(
    verifier: TokenVerifier, jwks_path: Path, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(key.sign(claims()))
    rotated = SigningKey.generate("ES256")
    write_jwks(jwks_path, rotated)
    clock.advance(31)

    caller = await verifier.verify(rotated.sign(claims()))

    assert caller.subject == "user-17"


async def test_unknown_kids_do_not_reload_the_keys_more_than_every_thirty_seconds(
    verifier: TokenVerifier, jwks_path: Path, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(key.sign(claims()))
    rotated = SigningKey.generate("ES256")
    write_jwks(jwks_path, rotated)
    clock.advance(10)

    error = await refused(verifier, rotated.sign(claims()))
    clock.advance(21)
    caller = await verifier.verify(rotated.sign(claims()))

    assert error.reason == "TOKEN_INVALID"
    assert caller.subject == "user-17"


async def test_withdrawn_key_stops_verifying_after_the_refresh_interval(
    verifier: TokenVerifier, jwks_path: Path, key: SigningKey, clock: FakeClock
) -> None:
    token = key.sign(claims())
    await verifier.verify(token)
    write_jwks(jwks_path, SigningKey.generate("ES256"))
    clock.advance(301)

    error = await refused(verifier, token)

    assert error.reason == "TOKEN_INVALID"


async def test_known_keys_keep_serving_when_a_reload_fails(
    verifier: TokenVerifier, jwks_path: Path, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(key.sign(claims()))
    overwrite(jwks_path, "{ not json")
    clock.advance(301)

    caller = await verifier.verify(key.sign(claims()))

    assert caller.subject == "user-17"


async def test_keys_that_cannot_be_read_make_verification_unavailable(
    tmp_path: Path, key: SigningKey
) -> None:
    verifier = TokenVerifier(ISSUER, AUDIENCE, JwksSource(tmp_path / "missing.json"))

    with pytest.raises(Unavailable) as caught:
        await verifier.verify(key.sign(claims()))

    assert caught.value.reason == "JWKS_UNAVAILABLE"


class JwksServer:
    def __init__(self, document: dict[str, Any]) -> None:
        self.body = json.dumps(document).encode()
        self.requests = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                self.wfile.write(served.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"


@pytest.fixture
def jwks_server(key: SigningKey) -> Iterator[JwksServer]:
    served = JwksServer(jwks_document([key]))
    thread = threading.Thread(target=served.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()
    thread.join()


async def test_keys_are_fetched_from_an_http_jwks_and_cached(
    jwks_server: JwksServer, key: SigningKey
) -> None:
    verifier = TokenVerifier(ISSUER, AUDIENCE, JwksSource(jwks_server.url))

    first = await verifier.verify(key.sign(claims(sub="a")))
    second = await verifier.verify(key.sign(claims(sub="b")))

    assert (first.subject, second.subject) == ("a", "b")
    assert jwks_server.requests == 1


def test_jwks_keeps_only_keys_it_can_verify_with(key: SigningKey, rsa_key: SigningKey) -> None:
    p384 = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True)
    document = {
        "keys": [
            key.public_jwk(),
            rsa_key.public_jwk(),
            {**p384, "kid": "p384"},
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
            {**key.public_jwk(), "kid": "enc", "use": "enc"},
            {**key.public_jwk(), "kid": "hs", "alg": "HS256"},
            {**key.public_jwk(), "kid": None},
            "not a key",
        ]
    }

    assert set(parse_jwks(document)) == {key.kid, rsa_key.kid}


# --- signing keys ------------------------------------------------------------------------------------


def test_signing_key_survives_a_pem_round_trip_with_the_same_kid(key: SigningKey) -> None:
    reloaded = SigningKey.from_pem(key.to_pem())

    assert reloaded.kid == key.kid
    assert reloaded.public_jwk() == key.public_jwk()


def test_published_jwk_holds_no_private_part(key: SigningKey, rsa_key: SigningKey) -> None:
    for jwk in jwks_document([key, rsa_key])["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)


def test_keys_on_other_curves_cannot_sign() -> None:
    with pytest.raises(ValueError, match="P-256"):
        SigningKey(ec.generate_private_key(ec.SECP384R1()))


# --- the caller --------------------------------------------------------------------------------------


def make_caller(*roles: Role) -> Caller:
    return Caller(
        subject="user-17", roles=frozenset(roles), unit=None, person_number="191212121212", token="tok.en.x"
    )


def test_caller_with_one_of_the_roles_is_allowed() -> None:
    caller = make_caller(Role.AGENT)

    caller.require_role(Role.OFFICER, Role.AGENT)

    assert caller.has_role(Role.AGENT)
    assert not caller.has_role(Role.OFFICER)


def test_caller_without_the_role_is_denied_naming_the_roles_needed() -> None:
    with pytest.raises(PermissionDenied) as caught:
        make_caller(Role.CITIZEN).require_role(Role.OFFICER, Role.UNIT_MANAGER)

    assert caught.value.reason == "ROLE_NOT_ALLOWED"
    assert "officer" in caught.value.message
    assert "unit_manager" in caught.value.message
    assert "user-17" not in caught.value.message


def test_caller_repr_shows_neither_token_nor_person_number() -> None:
    text = repr(make_caller(Role.CITIZEN))

    assert "tok.en.x" not in text
    assert "191212121212" not in text


# --- metadata ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ([("authorization", "Bearer abc.def.ghi")], "abc.def.ghi"),
        ([("x-request-id", "1"), ("Authorization", "bearer abc.def.ghi")], "abc.def.ghi"),
        ([("authorization", b"BEARER  abc.def.ghi ")], "abc.def.ghi"),
        ([("authorization", "Basic dXNlcjpwdw==")], None),
        ([("authorization", "Bearer")], None),
        ([("x-request-id", "1")], None),
        ([], None),
        (None, None),
    ],
)
def test_bearer_token_is_read_from_the_authorization_metadata(
    metadata: list[tuple[str, str | bytes]] | None, expected: str | None
) -> None:
    assert bearer_from_metadata(metadata) == expected


async def test_request_without_authorization_metadata_is_refused_as_missing(verifier: TokenVerifier) -> None:
    error = await refused(verifier, bearer_from_metadata([("x-request-id", "1")]))

    assert error.reason == "TOKEN_MISSING"


async def test_claims_of_a_token_shown_again_are_reused_but_never_past_a_minute_or_its_expiry(
    verifier: TokenVerifier, jwks_path: Path, key: SigningKey, clock: FakeClock
) -> None:
    checked: list[str] = []
    check = verifier.verified_claims

    async def counted(presented: str | None) -> dict[str, Any]:
        checked.append(str(presented))
        return await check(presented)

    verifier.verified_claims = counted  # type: ignore[method-assign,assignment]
    token = key.sign(claims(sub="agent-1"))
    first = await verifier.claims(token)
    # Within the minute the claims already checked are reused, unchanged by what a caller did to them.
    first["sub"] = "someone else"
    clock.advance(59)
    assert (await verifier.claims(token))["sub"] == "agent-1"
    assert checked == [token]
    # Past the minute they are checked again: a withdrawn key is noticed.
    write_jwks(jwks_path, SigningKey.generate("ES256"))
    clock.advance(301 - 59)
    with pytest.raises(Unauthenticated) as withdrawn:
        await verifier.claims(token)
    assert withdrawn.value.reason == "TOKEN_INVALID"

    strict = TokenVerifier(ISSUER, AUDIENCE, JwksSource(jwks_path, clock=clock), leeway_seconds=0)
    write_jwks(jwks_path, key)
    ends = int(time.time()) + 2
    expiring = key.sign(claims(exp=ends))
    await strict.claims(expiring)
    await asyncio.sleep(ends - time.time() + 0.1)
    with pytest.raises(Unauthenticated) as expired:
        await strict.claims(expiring)
    assert expired.value.reason == "TOKEN_EXPIRED"
