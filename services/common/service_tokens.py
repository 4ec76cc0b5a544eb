"""A service's own token, for the work it does for nobody in particular (a billing run asking the case
service for its counts): the identity provider's OAuth 2.0 client-credentials grant (RFC 6749 §4.4), or in
local runs the development issuer.

- The grant: a POST to the token URL with `grant_type=client_credentials` (and `audience`, `scope` when
  configured), the client id and secret by HTTP Basic, each form-urlencoded first as RFC 6749 §2.3.1 says.
- A token is kept and handed to every caller until shortly before its `expires_in`; when it runs out, the
  callers that need one meanwhile share a single request for the next.
- A callee that refuses a token (it was revoked, or the clocks disagree) is answered by `forget`, so that the
  next call fetches a new one rather than repeating the refused one.
- Neither the secret nor any token is ever logged or put in an error message.

Settings, for a service with prefix `<SVC>_`: `<SVC>_TOKEN_URL`, `<SVC>_CLIENT_ID`, the secret from
`<SVC>_CLIENT_SECRET_FILE` (a mounted Secret, read again when it rotates) or the variable that
`<SVC>_CLIENT_SECRET_ENV` names, and optionally `<SVC>_TOKEN_AUDIENCE`, `<SVC>_TOKEN_SCOPE`. Without a token
URL, only AUTH_DEV=true lets the service mint its own tokens from the development issuer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote_plus

import httpx

from services.common.devissuer import DEV_ISSUER, DevIssuer
from services.common.errors import Unavailable
from services.common.secrets import Secret
from services.common.settings import AuthSettings, Env, SettingsError

log = logging.getLogger("aldredirekt.service_tokens")

# A token is renewed this long before it runs out, at most half its life.
REFRESH_MARGIN_SECONDS = 30.0
# When the provider does not say (expires_in is optional in RFC 6749 §5.1), a token is kept this long.
DEFAULT_LIFETIME_SECONDS = 300.0
_MAX_ANSWER_BYTES = 64 * 1024


class ServiceTokens(Protocol):
    async def token(self) -> str:
        """A token of the service's own, with role `service`; Unavailable when none can be had."""
        ...

    def forget(self, token: str) -> None:
        """Drops a token a callee refused, so that the next `token()` fetches another."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ServiceTokenSettings:
    token_url: str | None
    client_id: str
    secret: Secret = field(default_factory=Secret)
    audience: str | None = None
    scope: str | None = None
    timeout_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Env, *, prefix: str) -> ServiceTokenSettings:
        """The settings under `prefix` ("FEES_"); a missing token URL is an error unless AUTH_DEV=true."""
        url = env.optional_text(prefix + "TOKEN_URL")
        client_id = env.optional_text(prefix + "CLIENT_ID") or ""
        secret = Secret(
            file=env.optional_text(prefix + "CLIENT_SECRET_FILE") or "",
            env=env.optional_text(prefix + "CLIENT_SECRET_ENV") or "",
        )
        timeout = env.number(prefix + "TOKEN_TIMEOUT_SECONDS", 5.0, minimum=0.1)
        if url is None:
            if not env.dev:
                env.errors.append(
                    SettingsError(
                        prefix + "TOKEN_URL",
                        "is required: the identity provider's token endpoint, where this service gets "
                        "its own token by the client-credentials grant (AUTH_DEV=true mints them locally "
                        "instead)",
                    )
                )
        else:
            if not url.startswith(("https://", "http://")):
                env.errors.append(SettingsError(prefix + "TOKEN_URL", "must be an http(s) URL"))
            if not client_id:
                env.errors.append(SettingsError(prefix + "CLIENT_ID", f"is required with {prefix}TOKEN_URL"))
            if not secret.configured:
                env.errors.append(
                    SettingsError(
                        prefix + "CLIENT_SECRET_FILE",
                        f"or {prefix}CLIENT_SECRET_ENV is required with {prefix}TOKEN_URL: where the client "
                        "secret is kept",
                    )
                )
        return cls(
            token_url=url,
            client_id=client_id,
            secret=secret,
            audience=env.optional_text(prefix + "TOKEN_AUDIENCE"),
            scope=env.optional_text(prefix + "TOKEN_SCOPE"),
            timeout_seconds=timeout,
        )


def _unavailable(message: str, reason: str = "SERVICE_TOKEN_UNAVAILABLE") -> Unavailable:
    return Unavailable(message, reason=reason)


@dataclass
class _Cached:
    token: str | None = None
    good_until: float = 0.0


class ClientCredentials:
    """Tokens from the identity provider by the client-credentials grant, kept until shortly before they
    run out."""

    def __init__(
        self,
        settings: ServiceTokenSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not settings.token_url:
            raise ValueError("the client-credentials grant needs a token URL")
        self.settings = settings
        self._url = settings.token_url
        self._clock = clock
        self._cached = _Cached()
        self._fetching: asyncio.Task[str] | None = None
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_seconds, connect=min(settings.timeout_seconds, 3.0)),
            transport=transport,
        )

    async def token(self) -> str:
        cached = self._cached
        if cached.token is not None and self._clock() < cached.good_until:
            return cached.token
        task = self._fetching
        if task is None or task.done():
            task = self._fetching = asyncio.create_task(self._fetch(), name="service-token")
            # Retrieved here too, so that a failure every waiter gave up on is not reported as unhandled.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        # Shielded: a caller that gives up does not cancel the request the others wait for.
        return await asyncio.shield(task)

    def forget(self, token: str) -> None:
        if self._cached.token == token:
            self._cached = _Cached()

    async def close(self) -> None:
        await self._client.aclose()

    def _form(self) -> dict[str, str]:
        form = {"grant_type": "client_credentials"}
        if self.settings.audience:
            form["audience"] = self.settings.audience
        if self.settings.scope:
            form["scope"] = self.settings.scope
        return form

    def _basic(self) -> httpx.BasicAuth:
        try:
            secret = self.settings.secret.read()
        except OSError:
            raise _unavailable(
                "this service's client secret cannot be read from its file", "SERVICE_TOKEN_REFUSED"
            ) from None
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined for Basic.
        return httpx.BasicAuth(quote_plus(self.settings.client_id), quote_plus(secret))

    async def _fetch(self) -> str:
        started = self._clock()
        try:
            response = await self._client.post(self._url, data=self._form(), auth=self._basic())
        except httpx.TimeoutException:
            log.warning("the token endpoint did not answer in time")
            raise _unavailable("the identity provider's token endpoint did not answer in time") from None
        except httpx.TransportError as error:
            log.warning("the token endpoint cannot be reached: %s", type(error).__name__)
            raise _unavailable("the identity provider's token endpoint cannot be reached") from None
        token, lifetime = self._read(response)
        margin = min(REFRESH_MARGIN_SECONDS, lifetime / 2)
        self._cached = _Cached(token, started + lifetime - margin)
        return token

    def _read(self, response: httpx.Response) -> tuple[str, float]:
        status = response.status_code
        if status in (400, 401, 403):
            code = _error_code(response)
            log.error(
                "the identity provider refused this service's client credentials (HTTP %d, %s)", status, code
            )
            raise _unavailable(
                f"the identity provider refused this service's client credentials ({code}): check the client "
                "id and secret it is configured with",
                "SERVICE_TOKEN_REFUSED",
            )
        if status != 200:
            log.warning("the token endpoint answered HTTP %d", status)
            raise _unavailable(f"the identity provider's token endpoint failed (HTTP {status})")
        if len(response.content) > _MAX_ANSWER_BYTES:
            raise _unavailable("the token endpoint's answer is too large")
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise _unavailable("the token endpoint's answer holds no access_token")
        token_type = body.get("token_type", "bearer") if isinstance(body, dict) else "bearer"
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise _unavailable("the token endpoint answered a token that is not a bearer token")
        lifetime = DEFAULT_LIFETIME_SECONDS
        expires = body.get("expires_in") if isinstance(body, dict) else None
        if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0:
            lifetime = float(expires)
        return token, lifetime


def _error_code(response: httpx.Response) -> str:
    """The OAuth error code of a refusal (RFC 6749 §5.2), when it is one; never its description, which a
    provider might fill with anything."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    code = body.get("error") if isinstance(body, dict) else None
    if isinstance(code, str) and code.isascii() and code.replace("_", "").isalnum() and len(code) <= 40:
        return code
    return f"HTTP {response.status_code}"


class DevServiceTokens:
    """Tokens with role `service` minted from the development issuer (AUTH_DEV=true only)."""

    def __init__(self, issuer: DevIssuer, *, subject: str, auth: AuthSettings, lifetime_seconds: int = 3600):
        self.issuer = issuer
        self.subject = subject
        self.auth = auth
        self.lifetime_seconds = lifetime_seconds
        self._cached = _Cached()

    async def token(self) -> str:
        now = time.monotonic()
        if self._cached.token is not None and now < self._cached.good_until:
            return self._cached.token
        token = self.issuer.mint(
            role="service",
            subject=self.subject,
            ttl_seconds=self.lifetime_seconds,
            audience=self.auth.audience,
            issuer=self.auth.issuer or DEV_ISSUER,
        )
        self._cached = _Cached(token, now + self.lifetime_seconds - REFRESH_MARGIN_SECONDS)
        return token

    def forget(self, token: str) -> None:
        if self._cached.token == token:
            self._cached = _Cached()

    async def close(self) -> None:
        return None


def service_tokens(settings: ServiceTokenSettings, auth: AuthSettings, *, service: str) -> ServiceTokens:
    """The provider the settings name: the client-credentials grant, or the development issuer when no
    token URL is set (reachable only with AUTH_DEV=true: the settings refuse it otherwise)."""
    if settings.token_url:
        return ClientCredentials(settings)
    log.warning(
        "AUTH_DEV=true: %s mints its own service tokens from the local development issuer; never do this "
        "in production",
        service,
    )
    return DevServiceTokens(DevIssuer.load_or_create(Path(auth.dev_dir)), subject=service, auth=auth)
