"""The mirror's adapters to the upstream systems: one HTTP client per source (each district's Paraply and
Agresso), with its own credentials, timeouts, and a circuit breaker that stops hammering a source that is
down. Secrets are read from files or the environment when needed and never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from services.common.secrets import Secret
from services.common.settings import SettingsError
from services.mirror.model.records import MalformedRecord, loads, parse_source_time

log = logging.getLogger("aldredirekt.mirror.upstream")

PARAPLY = "paraply"
AGRESSO = "agresso"
_MAX_BODY = 64 * 1024 * 1024


class FailureKind(StrEnum):
    DOWN = "down"
    TIMEOUT = "timeout"
    THROTTLED = "throttled"
    CREDENTIALS = "credentials_refused"
    SERVER = "server_error"
    BAD_RESPONSE = "bad_response"
    CIRCUIT_OPEN = "circuit_open"


class SourceFailure(Exception):
    """A source did not give a usable answer. The message names what failed, never any data."""

    def __init__(self, source: str, kind: FailureKind, detail: str = "", *, retry_after: float | None = None):
        super().__init__(f"{source}: {kind.value}{': ' + detail if detail else ''}")
        self.source = source
        self.kind = kind
        self.retry_after = retry_after


@dataclass(frozen=True)
class SourceConfig:
    name: str
    kind: str
    district_id: str
    url: str
    username: str = ""
    secret: Secret = field(default_factory=Secret)


def load_sources(path: str) -> list[SourceConfig]:
    """The sources of a JSON file: {"sources": [{"name", "kind", "district", "url", "username",
    "password_file" | "password_env" | "api_key_file" | "api_key_env"}, …]}."""
    variable = "MIRROR_SOURCES_FILE"
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise SettingsError(variable, f"cannot be read as JSON ({type(error).__name__})") from None
    entries = document.get("sources") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise SettingsError(variable, 'must hold {"sources": [...]} with at least one source')
    found: list[SourceConfig] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SettingsError(variable, f"sources[{index}] is not an object")
        kind = entry.get("kind")
        name = entry.get("name")
        url = entry.get("url")
        if kind not in (PARAPLY, AGRESSO) or not isinstance(name, str) or not isinstance(url, str):
            raise SettingsError(variable, f"sources[{index}] needs a name, a url and kind paraply or agresso")
        if not url.startswith(("http://", "https://")):
            raise SettingsError(variable, f"sources[{index}].url must be an http(s) URL")
        district = entry.get("district", "")
        if kind == PARAPLY and not district:
            raise SettingsError(variable, f"sources[{index}] is a Paraply instance: it needs its district")
        secret_key = "password" if kind == PARAPLY else "api_key"
        secret = Secret(
            file=str(entry.get(f"{secret_key}_file", "")), env=str(entry.get(f"{secret_key}_env", ""))
        )
        if not secret.file and not secret.env:
            raise SettingsError(variable, f"sources[{index}] needs {secret_key}_file or {secret_key}_env")
        found.append(
            SourceConfig(
                name=name,
                kind=kind,
                district_id=str(district),
                url=url.rstrip("/"),
                username=str(entry.get("username", "")),
                secret=secret,
            )
        )
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        raise SettingsError(variable, "names a source twice")
    return found


@dataclass
class CircuitBreaker:
    """Closed while a source answers; open after `threshold` failures in a row, for a cooldown that doubles
    each time up to `max_cooldown`; then half-open: one attempt decides."""

    threshold: int = 3
    base_cooldown: float = 2.0
    max_cooldown: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    cooldown: float = 0.0

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def allows(self) -> bool:
        return self.state != "open"

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.cooldown = 0.0

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.cooldown = min(
                self.max_cooldown, self.base_cooldown * 2 ** max(0, self.failures - self.threshold)
            )
            self.opened_at = self.clock()


@dataclass(frozen=True)
class ChangePage:
    items: list[Any]
    next_since: str | None
    next_after: str
    server_time: datetime


class UpstreamClient:
    """One source over HTTP."""

    def __init__(
        self,
        config: SourceConfig,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.config = config
        self.timeout = timeout
        self.breaker = CircuitBreaker()
        self._secret = ""
        self._client = httpx.AsyncClient(
            base_url=config.url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            transport=transport,
        )
        self._prefix = "/paraply/v1/persons" if config.kind == PARAPLY else "/agresso/v1/transactions"

    async def close(self) -> None:
        await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        if not self._secret:
            self._secret = self._read_secret()
        if self.config.kind == PARAPLY:
            return {}
        return {"X-API-Key": self._secret}

    def _auth(self) -> httpx.BasicAuth | None:
        if self.config.kind != PARAPLY:
            return None
        if not self._secret:
            self._secret = self._read_secret()
        return httpx.BasicAuth(self.config.username, self._secret)

    def _read_secret(self) -> str:
        try:
            return self.config.secret.read()
        except OSError:
            raise SourceFailure(
                self.config.name, FailureKind.CREDENTIALS, "the secret cannot be read"
            ) from None

    async def _get(
        self, path: str, params: Mapping[str, str | int], *, wait: float | None
    ) -> tuple[Any, datetime | None]:
        if not self.breaker.allows():
            raise SourceFailure(self.config.name, FailureKind.CIRCUIT_OPEN)
        for attempt in range(2):
            try:
                response = await self._client.get(
                    path,
                    params=dict(params),
                    headers=self._headers(),
                    auth=self._auth() or httpx.USE_CLIENT_DEFAULT,
                    timeout=wait if wait is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TimeoutException:
                self.breaker.failed()
                raise SourceFailure(self.config.name, FailureKind.TIMEOUT) from None
            except httpx.TransportError as error:
                if attempt == 0 and isinstance(error, (httpx.ReadError, httpx.RemoteProtocolError)):
                    # A kept-alive connection the source closed as the request went out: a GET may be
                    # sent again, once, on a new connection.
                    continue
                self.breaker.failed()
                raise SourceFailure(self.config.name, FailureKind.DOWN, type(error).__name__) from None
            if response.status_code in (401, 403) and attempt == 0:
                # Credentials may have been rotated in the secret's file: read it again, once.
                fresh = self._read_secret()
                if fresh != self._secret:
                    self._secret = fresh
                    continue
            break
        return self._answer(response), _server_time(response)

    def _answer(self, response: httpx.Response) -> Any:
        name = self.config.name
        status = response.status_code
        if status in (401, 403):
            self.breaker.failed()
            raise SourceFailure(name, FailureKind.CREDENTIALS, f"HTTP {status}")
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise SourceFailure(name, FailureKind.THROTTLED, "HTTP 429", retry_after=retry_after)
        if status == 404:
            self.breaker.succeeded()
            return None
        if status >= 500:
            self.breaker.failed()
            raise SourceFailure(name, FailureKind.SERVER, f"HTTP {status}")
        if status != 200:
            self.breaker.failed()
            raise SourceFailure(name, FailureKind.BAD_RESPONSE, f"HTTP {status}")
        if len(response.content) > _MAX_BODY:
            raise SourceFailure(name, FailureKind.BAD_RESPONSE, "the answer is too large")
        try:
            body = loads(response.content)
        except ValueError:
            self.breaker.failed()
            raise SourceFailure(name, FailureKind.BAD_RESPONSE, "the answer is not JSON") from None
        self.breaker.succeeded()
        return body

    async def changes(self, *, since: str | None, after: str, limit: int) -> ChangePage:
        params: dict[str, str | int] = {"limit": limit}
        if since is not None:
            params["since"] = since
            params["after"] = after
        body, server_time = await self._get(f"{self._prefix}/changes", params, wait=None)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list) or server_time is None:
            raise SourceFailure(
                self.config.name, FailureKind.BAD_RESPONSE, "the change feed's answer has no items"
            )
        following = body.get("next")
        next_since: str | None = None
        next_after = ""
        if isinstance(following, dict) and isinstance(following.get("since"), str):
            next_since = following["since"]
            next_after = str(following.get("after", ""))
        return ChangePage(
            items=body["items"], next_since=next_since, next_after=next_after, server_time=server_time
        )

    async def ids(self, *, cursor: str | None, limit: int) -> tuple[list[str], str | None, datetime | None]:
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        body, server_time = await self._get(f"{self._prefix}/ids", params, wait=None)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise SourceFailure(self.config.name, FailureKind.BAD_RESPONSE, "the id listing has no ids")
        following = body.get("next_cursor")
        return ids, following if isinstance(following, str) and following else None, server_time

    async def record(self, record_id: str) -> Any | None:
        body, _ = await self._get(f"{self._prefix}/{record_id}", {}, wait=None)
        return body

    async def of_person(self, person_number: str, *, wait: float | None = None) -> list[Any]:
        """Every record the source holds of a person (a Paraply instance's one, Agresso's invoices)."""
        body, _ = await self._get(self._prefix, {"person_number": person_number}, wait=wait)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise SourceFailure(self.config.name, FailureKind.BAD_RESPONSE, "the answer has no items")
        return items


def _server_time(response: httpx.Response) -> datetime | None:
    raw = response.headers.get("X-Server-Time")
    if raw is None:
        return None
    try:
        return parse_source_time(raw, "X-Server-Time")
    except MalformedRecord:
        return None


def _retry_after(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return max(0.0, min(float(raw), 300.0))
    except ValueError:
        return None


async def sleep_for(failure: SourceFailure, default: float) -> None:
    """Waits as a source asked (Retry-After) or the default backoff."""
    await asyncio.sleep(failure.retry_after if failure.retry_after is not None else default)
