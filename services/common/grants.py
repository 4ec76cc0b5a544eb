"""Access grants: the consent of a person, turned into a short-lived token a service can check alone.

The case service records consent after the secrecy review and signs a grant binding the agent, the
person, the case and the scopes. Mirror and fees verify its signature against the case service's
published keys and refuse personal data without a matching grant; a citizen reading their own data
needs none. A revoked consent stops new grants at once; grants already issued run out at their
expiry, which is why they live minutes, not hours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.auth import Caller, JwksSource, Role, SigningKey, TokenVerifier
from services.common.errors import DomainError, InvalidArgument, PermissionDenied

GRANT_AUDIENCE = "aldredirekt-grants"
GRANT_METADATA_KEY = "x-access-grant"


@dataclass(frozen=True)
class AccessGrant:
    grant_id: str
    agent: str
    person_number: str
    case: str
    scopes: frozenset[str]
    expire_time: datetime


class GrantIssuer:
    def __init__(self, key: SigningKey, *, issuer: str, ttl: timedelta = timedelta(minutes=30)):
        self.key = key
        self.issuer = issuer
        self.ttl = ttl

    def issue(
        self,
        *,
        grant_id: str,
        agent: str,
        person_number: str,
        case: str,
        scopes: Iterable[str],
        now: datetime,
    ) -> tuple[str, datetime]:
        expire_time = now + self.ttl
        token = self.key.sign(
            {
                "iss": self.issuer,
                "aud": GRANT_AUDIENCE,
                "sub": agent,
                "jti": grant_id,
                "iat": int(now.timestamp()),
                "nbf": int(now.timestamp()),
                "exp": int(expire_time.timestamp()),
                "person_number": person_number,
                "case": case,
                "scopes": sorted(set(scopes)),
            }
        )
        return token, expire_time


def grant_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == GRANT_METADATA_KEY:
            return value.decode() if isinstance(value, bytes) else value
    return None


class GrantVerifier:
    """Checks that a caller holds a grant for reading one person's data in one scope."""

    def __init__(self, jwks: JwksSource, *, issuer: str, leeway_seconds: int = 30):
        self.tokens = TokenVerifier(issuer, GRANT_AUDIENCE, jwks, leeway_seconds=leeway_seconds)

    async def require(
        self, token: str | None, *, caller: Caller, person_number: str, scope: str
    ) -> AccessGrant | None:
        """The grant that allows `caller` to read `scope` of `person_number`; None for a citizen reading
        their own data. Refuses with PERMISSION_DENIED and a reason otherwise."""
        grant = await self.grant_for(token, caller=caller, person_number=person_number)
        if grant is not None and scope not in grant.scopes:
            raise PermissionDenied(f"the access grant does not cover {scope}", reason="GRANT_SCOPE_MISSING")
        return grant

    async def grant_for(self, token: str | None, *, caller: Caller, person_number: str) -> AccessGrant | None:
        """The caller's valid grant for `person_number`, whatever its scopes (a read shows only what they
        cover); None for a citizen reading their own data."""
        if caller.has_role(Role.CITIZEN) and caller.person_number == person_number:
            return None
        grant = await self.valid_grant(token, caller=caller)
        if grant.person_number != person_number:
            raise PermissionDenied("the access grant is for another person", reason="GRANT_OTHER_PERSON")
        return grant

    async def valid_grant(self, token: str | None, *, caller: Caller) -> AccessGrant:
        """The caller's grant, checked for its signature, expiry and holder, but not yet for a person."""
        if not token:
            raise PermissionDenied(
                "reading a person's data needs an access grant from their recorded consent",
                reason="GRANT_REQUIRED",
            )
        try:
            claims = await self.tokens.claims(token)
        except DomainError:
            raise PermissionDenied(
                "the access grant is not valid or has expired", reason="GRANT_INVALID"
            ) from None
        scopes = claims.get("scopes")
        grant = AccessGrant(
            grant_id=str(claims.get("jti", "")),
            agent=str(claims["sub"]),
            person_number=str(claims.get("person_number", "")),
            case=str(claims.get("case", "")),
            scopes=frozenset(str(s) for s in scopes) if isinstance(scopes, list) else frozenset(),
            expire_time=datetime.fromtimestamp(float(claims["exp"]), UTC),
        )
        if grant.agent != caller.subject:
            raise PermissionDenied("the access grant was issued to someone else", reason="GRANT_NOT_YOURS")
        return grant


# How long a read's stated purpose may be, in the access log.
MAX_PURPOSE = 255


def read_purpose(purpose: str, grant: AccessGrant | None, caller: Caller) -> str:
    """Why a person's data is read, for the access log: what the caller said, else the grant's case, else
    "Mina sidor" for a citizen reading their own."""
    if len(purpose) > MAX_PURPOSE:
        raise InvalidArgument.field("purpose", f"must be at most {MAX_PURPOSE} characters")
    if purpose.strip():
        return purpose.strip()
    if grant is not None:
        return grant.case
    return "Mina sidor" if caller.has_role(Role.CITIZEN) else ""
