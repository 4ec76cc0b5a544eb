"""`bootstrap(settings)`: the one place the gateway is wired — the catalog of RPCs read from the generated
code, the router, the OpenAPI document, the token verifier and one gRPC channel per backend — and what
it offers the HTTP app: who is calling, with what deadline, and what every call to a backend carries.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.backends import Backends
from gateway.catalog import Catalog, load_catalog
from gateway.composite import COMPOSITE_READS, Composer, Outbound, composite_paths
from gateway.openapi import Schemas, build_document, for_swagger_ui
from gateway.problems import FieldOrigins, invalid
from gateway.routing import Router
from gateway.settings import GatewaySettings
from gateway.transcoding import Transcoder
from services.common.auth import Caller, JwksSource, TokenVerifier, bearer_from_metadata
from services.common.devissuer import DEV_ISSUER, DevIssuer
from services.common.errors import Unauthenticated
from services.common.pagination import PageTokens

log = logging.getLogger("aldredirekt.gateway")

TIMEOUT_HEADERS = ("request-timeout", "x-request-timeout")
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# gRPC metadata takes printable ASCII only; anything else is refused here rather than by the channel.
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
MAX_TRACESTATE = 512


@dataclass(frozen=True)
class Trace:
    """The W3C trace context of one request: continued from the client's traceparent, or a new trace."""

    trace_id: str
    span_id: str
    flags: str
    state: str

    @classmethod
    def of(cls, traceparent: str | None, tracestate: str | None) -> Trace:
        found = _TRACEPARENT.fullmatch(traceparent.strip()) if traceparent else None
        if found is not None and set(found.group(1)) != {"0"} and set(found.group(2)) != {"0"}:
            state = (tracestate or "").strip()
            usable = len(state) <= MAX_TRACESTATE and _PRINTABLE.fullmatch(state) is not None
            return cls(found.group(1), secrets.token_hex(8), found.group(3), state if usable else "")
        return cls(secrets.token_hex(16), secrets.token_hex(8), "01", "")

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def _read_methods(catalog: Catalog) -> dict[str, list[str]]:
    reads: dict[str, list[str]] = {name: [] for name in catalog.backends}
    for rpc in catalog.rpcs:
        if rpc.reads:
            reads[rpc.backend].append(rpc.path)
    for backend, paths in COMPOSITE_READS.items():
        reads.setdefault(backend, []).extend(paths)
    for backend in reads:
        reads[backend].append("/aldredirekt.common.v1.AccessLogService/ListAccessLog")
    return reads


def build_verifier(settings: GatewaySettings) -> TokenVerifier:
    """The verifier of the services (services.common.auth), with the gateway's own refresh periods."""
    auth = settings.auth
    refresh, unknown_kid = settings.jwks_refresh_seconds, settings.jwks_unknown_kid_seconds
    if auth.uses_dev_issuer:
        # Only reachable with AUTH_DEV=true: the settings refuse a missing AUTH_JWKS otherwise.
        issuer = DevIssuer.load_or_create(Path(auth.dev_dir))
        log.warning("AUTH_DEV=true: trusting the local development issuer; never do this in production")
        return TokenVerifier(
            auth.issuer or DEV_ISSUER,
            auth.audience,
            JwksSource(issuer.jwks_path, refresh_seconds=refresh, unknown_kid_refresh_seconds=unknown_kid),
        )
    assert auth.jwks is not None
    assert auth.issuer is not None
    return TokenVerifier(
        auth.issuer,
        auth.audience,
        JwksSource(auth.jwks, refresh_seconds=refresh, unknown_kid_refresh_seconds=unknown_kid),
    )


@dataclass
class Gateway:
    settings: GatewaySettings
    catalog: Catalog
    router: Router
    backends: Backends
    verifier: TokenVerifier
    composer: Composer
    openapi: bytes
    docs_openapi: bytes
    draining: bool = field(default=False)

    async def caller(self, authorization: str | None) -> Caller:
        """The verified caller of the Authorization header; Unauthenticated (401) otherwise."""
        if authorization is None or not authorization.strip():
            raise Unauthenticated(
                "a bearer token is required in the Authorization header", reason="TOKEN_MISSING"
            )
        token = bearer_from_metadata([("authorization", authorization)])
        if token is None:
            raise Unauthenticated("the Authorization header must be a Bearer token", reason="TOKEN_INVALID")
        return await self.verifier.verify(token)

    def timeout(self, headers: Mapping[str, str]) -> float:
        """The deadline the client asked for, within the maximum; the default when it asked none."""
        for name in TIMEOUT_HEADERS:
            raw = headers.get(name)
            if raw is None:
                continue
            try:
                seconds = float(raw.strip())
            except ValueError:
                seconds = math.nan
            if not math.isfinite(seconds) or seconds <= 0:
                raise invalid([(name.title(), "must be a positive number of seconds")], _header(name.title()))
            return min(seconds, self.settings.max_timeout_seconds)
        return self.settings.default_timeout_seconds

    def outbound(self, caller: Caller, headers: Mapping[str, str], trace: Trace) -> Outbound:
        """What the calls for this request carry: the caller's token, the grant, the trace, the deadline."""
        metadata = [("authorization", f"Bearer {caller.token}"), ("traceparent", trace.traceparent)]
        if trace.state:
            metadata.append(("tracestate", trace.state))
        grant = headers.get("x-access-grant")
        if grant is not None:
            grant = grant.strip()
            if not _PRINTABLE.fullmatch(grant) or len(grant) > 8192:
                raise invalid(
                    [("X-Access-Grant", "must be a grant as the case service issued it")],
                    _header("X-Access-Grant"),
                )
            metadata.append(("x-access-grant", grant))
        return Outbound(metadata=tuple(metadata), timeout=self.timeout(headers), trace_id=trace.trace_id)

    async def close(self) -> None:
        await self.backends.close(grace=self.settings.grace_seconds)


def _header(name: str) -> FieldOrigins:
    return FieldOrigins(body="", headers={name: name})


def read_catalog(descriptors: Path) -> Catalog:
    """The RPCs of the generated code, with the comments of the descriptor set when it is there."""
    if descriptors.is_file():
        return load_catalog(descriptors=descriptors)
    log.warning("no descriptor set at GATEWAY_DESCRIPTORS: the OpenAPI document has no descriptions")
    return load_catalog()


async def bootstrap(settings: GatewaySettings, *, catalog: Catalog | None = None) -> Gateway:
    """Wires the gateway; must run in the event loop that will serve it (the channels belong to it)."""
    if catalog is None:
        catalog = read_catalog(Path(settings.descriptors))
    transcoders = [Transcoder.of(rpc, binding) for rpc in catalog.rpcs for binding in rpc.bindings]
    backends = Backends.open(settings.backends, _read_methods(catalog))
    schemas = Schemas(catalog.comments)
    document = build_document(catalog, extra_paths=composite_paths(schemas), schemas=schemas)
    return Gateway(
        settings=settings,
        catalog=catalog,
        router=Router(transcoders),
        backends=backends,
        verifier=build_verifier(settings),
        composer=Composer(
            backends=backends, page_tokens=PageTokens(settings.page_token_keys, service="gateway")
        ),
        openapi=json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(),
        docs_openapi=json.dumps(for_swagger_ui(document), ensure_ascii=False, separators=(",", ":")).encode(),
    )
