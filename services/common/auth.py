"""Who is calling: bearer tokens verified against the issuer's published keys, and the caller they name.

Every service verifies the token itself rather than trusting the gateway or the network. Only
asymmetric signatures are accepted, so holding the public keys never lets anyone mint a token.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import functools
import hashlib
import http.client
import json
import logging
import re
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from services.common.errors import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from services.common.personnummer import parse_person_number

log = logging.getLogger(__name__)

# Symmetric algorithms would turn every holder of the verification key into a possible issuer,
# and "none" is no signature at all.
ALLOWED_ALGORITHMS: frozenset[str] = frozenset({"RS256", "ES256"})
MIN_RSA_BITS = 2048
UNIT_NAME = re.compile(r"units/[a-z0-9][a-z0-9-]{0,62}")

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class Role(enum.StrEnum):
    AGENT = "agent"
    OFFICER = "officer"
    UNIT_MANAGER = "unit_manager"
    FINANCE = "finance"
    DIRECTORY_ADMIN = "directory_admin"
    AUDITOR = "auditor"
    CITIZEN = "citizen"
    SERVICE = "service"
    # Platform engineers: source status, quarantine, dead messages; never a person's data.
    OPERATOR = "operator"


_ROLE_VALUES = frozenset(role.value for role in Role)
_ROLE_PRECEDENCE = (
    Role.AGENT,
    Role.OFFICER,
    Role.UNIT_MANAGER,
    Role.AUDITOR,
    Role.CITIZEN,
    Role.FINANCE,
    Role.DIRECTORY_ADMIN,
    Role.OPERATOR,
    Role.SERVICE,
)


@dataclass(frozen=True)
class Caller:
    """The verified identity behind a request.

    The token and person number stay out of the repr so that logging a caller leaks neither.
    """

    subject: str
    roles: frozenset[Role]
    unit: str | None
    person_number: str | None = field(repr=False)
    token: str = field(repr=False)

    def has_role(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)

    # A verified token's caller is kept for the token's life and asked on every call: worked out once.
    @functools.cached_property
    def unit_id(self) -> str | None:
        """The id of the caller's unit, from "units/{id}"."""
        return self.unit.removeprefix("units/") if self.unit else None

    @functools.cached_property
    def primary_role(self) -> str:
        """The role a read is logged under, when a token carries several."""
        return next(
            (role.value for role in _ROLE_PRECEDENCE if role in self.roles), sorted(self.roles)[0].value
        )

    @functools.cached_property
    def idempotency_scope(self) -> str:
        """Whose request_ids these are: the subject, and the unit or person it acts for; hashed, so that the
        key is of a fixed length and holds no person number."""
        scope = json.dumps([self.subject, self.unit or "", self.person_number or ""])
        return hashlib.sha256(scope.encode()).hexdigest()

    def require_role(self, *roles: Role) -> None:
        if self.has_role(*roles):
            return
        needed = ", ".join(str(role) for role in roles)
        raise PermissionDenied(
            f"this needs one of the roles: {needed}",
            reason="ROLE_NOT_ALLOWED",
            metadata={"roles": needed},
        )


def bearer_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The bearer token of the first "authorization" entry, or None when there is none."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        return token
    return None


# --- keys --------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _public_jwk_members(public_key: PublicKey) -> dict[str, Any]:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(public_key, as_dict=True)
    return RSAAlgorithm.to_jwk(public_key, as_dict=True)


def _thumbprint(members: Mapping[str, Any]) -> str:
    """The RFC 7638 thumbprint, so a key's kid stays the same wherever and whenever it is loaded."""
    required = ("crv", "kty", "x", "y") if members["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({name: members[name] for name in required}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def _algorithm_for(private_key: PrivateKey) -> str:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError(f"EC keys must be on P-256, not {private_key.curve.name}")
        return "ES256"
    if private_key.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    return "RS256"


class SigningKey:
    """A private key that signs JWTs, named by its kid in the header of every token it signs."""

    def __init__(self, private_key: PrivateKey, *, kid: str | None = None, alg: str | None = None):
        expected = _algorithm_for(private_key)
        if alg is not None and alg != expected:
            raise ValueError(f"a {expected} key cannot sign with {alg}")
        self._private_key = private_key
        self.alg = expected
        self.kid = kid or _thumbprint(_public_jwk_members(private_key.public_key()))

    @classmethod
    def from_pem(cls, pem: bytes | str, *, kid: str | None = None, alg: str | None = None) -> SigningKey:
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        private_key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("only EC (P-256) and RSA private keys can sign tokens")
        return cls(private_key, kid=kid, alg=alg)

    @classmethod
    def generate(cls, alg: str = "ES256", *, kid: str | None = None) -> SigningKey:
        private_key: PrivateKey
        if alg == "ES256":
            private_key = ec.generate_private_key(ec.SECP256R1())
        elif alg == "RS256":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
        else:
            raise ValueError(
                f"cannot generate a key for {alg}; use one of {', '.join(sorted(ALLOWED_ALGORITHMS))}"
            )
        return cls(private_key, kid=kid)

    def to_pem(self) -> bytes:
        return self._private_key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, Any]:
        members = _public_jwk_members(self._private_key.public_key())
        return {**members, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self._private_key, algorithm=self.alg, headers={"kid": self.kid})

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r})"


def jwks_document(keys: Iterable[SigningKey]) -> dict[str, Any]:
    """The public JWKS (RFC 7517) for the given signing keys."""
    return {"keys": [key.public_jwk() for key in keys]}


# --- key source ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    alg: str
    key: PublicKey


def _verification_key(entry: object) -> VerificationKey | None:
    """The usable key an entry of a JWKS describes, or None for one we will not verify with."""
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        return None
    if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("EC", "RSA"):
        return None
    alg = entry.get("alg")
    if alg is not None and alg not in ALLOWED_ALGORITHMS:
        return None
    try:
        jwk = jwt.PyJWK(entry)
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        return None
    public_key = jwk.key
    if jwk.algorithm_name not in ALLOWED_ALGORITHMS:
        return None
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            return None
    elif not isinstance(public_key, ec.EllipticCurvePublicKey):
        return None
    return VerificationKey(kid=kid, alg=jwk.algorithm_name, key=public_key)


def parse_jwks(document: object) -> dict[str, VerificationKey]:
    """The usable keys of a JWKS by kid; keys of other types or algorithms are left out."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWKS is a JSON object with a "keys" array')
    keys: dict[str, VerificationKey] = {}
    for entry in document["keys"]:
        key = _verification_key(entry)
        if key is not None:
            keys[key.kid] = key
    return keys


class JwksSource:
    """The issuer's public keys, from a file or an http(s) URL, cached by kid.

    Keys are reloaded at most every `refresh_seconds`, and once more when a token names a kid we do
    not know (the issuer may have rotated), but never more often than every
    `unknown_kid_refresh_seconds`, so a flood of made-up kids cannot hammer the issuer. When a reload
    fails the keys already known keep serving.
    """

    MAX_DOCUMENT_BYTES = 1 << 20

    def __init__(
        self,
        location: str | Path,
        *,
        refresh_seconds: float = 300.0,
        unknown_kid_refresh_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._location = str(location)
        self._is_url = self._location.startswith(("http://", "https://"))
        self._refresh_seconds = refresh_seconds
        self._unknown_kid_refresh_seconds = unknown_kid_refresh_seconds
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._loaded_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    def clock(self) -> float:
        """The source's monotonic clock, which the verifier's cache shares."""
        return self._clock()

    @property
    def location(self) -> str:
        return self._location

    async def key(self, kid: str) -> VerificationKey | None:
        """The key with this kid, or None when the issuer does not publish one.

        Raises Unavailable while the keys have never been read.
        """
        if self._loaded_at is None or self._is_stale():
            # Calls that come while the first load is under way wait for it rather than being refused:
            # only a load that was tried and failed within the retry period answers "unavailable".
            await self._refresh_if(
                lambda: (self._loaded_at is None or self._is_stale()) and self._may_retry()
            )
        if self._loaded_at is None:
            raise _keys_unavailable()
        key = self._keys.get(kid)
        if key is None and self._may_retry():
            await self._refresh_if(lambda: kid not in self._keys and self._may_retry())
            key = self._keys.get(kid)
        return key

    async def refresh(self) -> None:
        """Reloads the keys now; raises Unavailable when they cannot be read."""
        async with self._lock:
            await self._load(keep_old_on_failure=False)

    def _is_stale(self) -> bool:
        return self._since(self._loaded_at) >= self._refresh_seconds and self._may_retry()

    def _may_retry(self) -> bool:
        retry_seconds = min(self._refresh_seconds, self._unknown_kid_refresh_seconds)
        return self._since(self._attempted_at) >= retry_seconds

    def _since(self, moment: float | None) -> float:
        return float("inf") if moment is None else self._clock() - moment

    async def _refresh_if(self, still_needed: Callable[[], bool]) -> None:
        async with self._lock:
            # Another request may have reloaded while this one waited for the lock.
            if still_needed():
                await self._load(keep_old_on_failure=True)

    async def _load(self, *, keep_old_on_failure: bool) -> None:
        self._attempted_at = self._clock()
        try:
            raw = await asyncio.to_thread(self._read)
            keys = parse_jwks(json.loads(raw))
        except (OSError, ValueError, http.client.HTTPException) as exc:
            if keep_old_on_failure and self._loaded_at is not None:
                log.warning("could not reload the token signing keys, keeping %d known", len(self._keys))
                return
            log.warning("could not read the token signing keys: %s", type(exc).__name__)
            raise _keys_unavailable() from exc
        if not keys:
            log.warning("the JWKS has no usable signing keys")
        self._keys = keys
        self._loaded_at = self._attempted_at

    def _read(self) -> bytes:
        if self._is_url:
            # Only http and https locations get here; anything else was taken for a file path.
            request = urllib.request.Request(  # noqa: S310
                self._location, headers={"Accept": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=self._timeout_seconds) as response:  # noqa: S310
                body: bytes = response.read(self.MAX_DOCUMENT_BYTES + 1)
        else:
            with Path(self._location).open("rb") as file:
                body = file.read(self.MAX_DOCUMENT_BYTES + 1)
        if len(body) > self.MAX_DOCUMENT_BYTES:
            raise ValueError("the JWKS document is too large")
        return body


def _keys_unavailable() -> Unavailable:
    return Unavailable("the token signing keys cannot be read", reason="JWKS_UNAVAILABLE")


# --- verification --------------------------------------------------------------------------------------


def _invalid(message: str) -> Unauthenticated:
    return Unauthenticated(message, reason="TOKEN_INVALID")


def _present(token: str | None) -> str:
    if token is None or not token.strip():
        raise Unauthenticated("a bearer token is required", reason="TOKEN_MISSING")
    return token.strip()


_VERIFIED_CACHE_SIZE = 10_000
_VERIFIED_CACHE_SECONDS = 60.0


class TokenVerifier:
    """Verifies bearer tokens from one issuer for one audience and names the caller."""

    def __init__(self, issuer: str, audience: str, jwks: JwksSource, leeway_seconds: int = 30):
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self.leeway_seconds = leeway_seconds
        self._verified: dict[str, tuple[Caller, float, float]] = {}
        self._claims: dict[str, tuple[dict[str, Any], float, float]] = {}

    async def verify(self, token: str | None) -> Caller:
        present = _present(token)
        now, tick = time.time(), self.jwks.clock()
        cached = self._verified.get(present)
        if cached is not None and now < cached[1] and tick - cached[2] < _VERIFIED_CACHE_SECONDS:
            return cached[0]
        claims = await self.verified_claims(present)
        caller = _caller_from(claims, present)
        # A verified token is reused for a minute at most (and never past its expiry), so a withdrawn
        # key stops working soon; checking an ES256 signature costs more than most calls.
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[present] = (caller, float(claims["exp"]) + self.leeway_seconds, tick)
        return caller

    async def claims(self, token: str | None) -> dict[str, Any]:
        """`verified_claims`, reused as `verify` reuses a caller: for a minute at most, never past the
        token's expiry. For tokens presented on many calls in a row, such as access grants."""
        present = _present(token)
        now, tick = time.time(), self.jwks.clock()
        cached = self._claims.get(present)
        if cached is not None and now < cached[1] and tick - cached[2] < _VERIFIED_CACHE_SECONDS:
            return dict(cached[0])
        claims = await self.verified_claims(present)
        if len(self._claims) >= _VERIFIED_CACHE_SIZE:
            self._claims.clear()
        self._claims[present] = (claims, float(claims["exp"]) + self.leeway_seconds, tick)
        return dict(claims)

    async def verified_claims(self, token: str | None) -> dict[str, Any]:
        """The claims of a token whose signature, issuer, audience and times all check out.

        Messages never repeat the token: it is a credential, and error messages end up in logs.
        """
        token = _present(token)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("the token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise _invalid(f"tokens must be signed with one of {', '.join(sorted(ALLOWED_ALGORITHMS))}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("the token does not name its signing key (kid)")
        key = await self.jwks.key(kid)
        if key is None:
            raise _invalid("the token was signed with a key the issuer does not publish")
        if key.alg != alg:
            raise _invalid("the token's algorithm does not match its signing key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise _invalid("the token is meant for another audience") from None
        except jwt.InvalidIssuerError:
            raise _invalid("the token comes from another issuer") from None
        except jwt.InvalidSignatureError:
            raise _invalid("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"the token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise _invalid("the token cannot be verified") from None
        return claims


def _caller_from(claims: Mapping[str, Any], token: str) -> Caller:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _invalid("the token's sub claim is empty")
    raw_roles = claims.get("roles", [])
    if not isinstance(raw_roles, list):
        raise _invalid("the token's roles claim must be a list")
    # Roles this system does not know are someone else's business, not an error.
    roles = frozenset(Role(r) for r in raw_roles if isinstance(r, str) and r in _ROLE_VALUES)
    if not roles:
        raise Unauthenticated("the token carries no role this service knows", reason="NO_KNOWN_ROLE")
    unit = claims.get("unit")
    if unit is not None and (not isinstance(unit, str) or not UNIT_NAME.fullmatch(unit)):
        raise _invalid('the token\'s unit claim must look like "units/{unit}"')
    person_number = _person_number_claim(claims.get("person_number"))
    if Role.CITIZEN in roles and person_number is None:
        raise _invalid("a citizen's token must carry the person_number claim")
    return Caller(subject=subject, roles=roles, unit=unit, person_number=person_number, token=token)


def _person_number_claim(raw: object) -> str | None:
    if raw is None:
        return None
    # The message never repeats the value: it is a person number.
    if not isinstance(raw, str):
        raise _invalid("the token's person_number claim is not a valid person number")
    try:
        return str(parse_person_number(raw, field="person_number"))
    except InvalidArgument:
        raise _invalid("the token's person_number claim is not a valid person number") from None
