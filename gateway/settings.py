"""The gateway's settings, only from environment variables, read and checked at start-up (services'
`Env`): a wrong value stops it naming the variable, and outside AUTH_DEV it fails closed.

The backends are not listed here: every deployable the generated code has a service of (see
gateway.catalog) needs `GATEWAY_<NAME>_ADDRESS`, so a new service is fronted by setting one variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.common.settings import AuthSettings, Env, SettingsError, event_loop_setting, page_token_keys

PREFIX = "GATEWAY_"
DEFAULT_PORT = 8080
# The local defaults of AUTH_DEV=true, as in DESIGN.md's list of ports.
DEV_PORTS = {"case": 50051, "directory": 50052, "mirror": 50053, "fees": 50054}
_ADDRESS = re.compile(r"[A-Za-z0-9.\-\[\]:]+:\d{1,5}|unix:.+|dns:.+")


def address_variable(backend: str) -> str:
    return f"{PREFIX}{backend.upper().replace('-', '_')}_ADDRESS"


@dataclass(frozen=True)
class GatewaySettings:
    host: str
    port: int
    # Deployable name → its gRPC address.
    backends: Mapping[str, str]
    auth: AuthSettings
    descriptors: str
    page_token_keys: tuple[bytes, ...]
    max_body_bytes: int
    cors_origins: tuple[str, ...]
    default_timeout_seconds: float
    max_timeout_seconds: float
    grace_seconds: float
    log_level: str
    jwks_refresh_seconds: float
    jwks_unknown_kid_seconds: float
    hsts_seconds: int
    event_loop: str = "uvloop"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, backends: Sequence[str] | None = None
    ) -> GatewaySettings:
        """`backends` are the deployables to front, all found in the generated code when not given."""
        env = Env(environ)
        if backends is None:
            from gateway.catalog import load_catalog

            backends = load_catalog().backends
        addresses = {name: _address(env, name) for name in backends}
        default_timeout = env.number(f"{PREFIX}DEFAULT_TIMEOUT_SECONDS", 10.0, minimum=0.001)
        max_timeout = env.number(f"{PREFIX}MAX_TIMEOUT_SECONDS", 30.0, minimum=0.001)
        if max_timeout < default_timeout:
            env.errors.append(
                SettingsError(
                    f"{PREFIX}MAX_TIMEOUT_SECONDS", f"must be at least {PREFIX}DEFAULT_TIMEOUT_SECONDS"
                )
            )
        settings = cls(
            host=env.text(f"{PREFIX}HOST", "127.0.0.1"),
            port=env.integer(f"{PREFIX}PORT", DEFAULT_PORT, minimum=0, maximum=65535),
            backends=addresses,
            auth=AuthSettings.from_env(env),
            descriptors=env.text(f"{PREFIX}DESCRIPTORS", "gen/descriptors.binpb"),
            page_token_keys=page_token_keys(env, f"{PREFIX}PAGE_TOKEN_KEY", "gateway"),
            max_body_bytes=env.integer(f"{PREFIX}MAX_BODY_BYTES", 1_048_576, minimum=1024, maximum=64 << 20),
            cors_origins=_origins(env, f"{PREFIX}CORS_ORIGINS"),
            default_timeout_seconds=default_timeout,
            max_timeout_seconds=max_timeout,
            grace_seconds=env.number(f"{PREFIX}GRACE_SECONDS", 10.0, minimum=0.0),
            log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            jwks_refresh_seconds=env.number(f"{PREFIX}JWKS_REFRESH_SECONDS", 300.0, minimum=1.0),
            jwks_unknown_kid_seconds=env.number(f"{PREFIX}JWKS_UNKNOWN_KID_SECONDS", 30.0, minimum=0.0),
            hsts_seconds=env.integer(f"{PREFIX}HSTS_SECONDS", 31_536_000, minimum=0),
            event_loop=event_loop_setting(env),
        )
        env.check()
        return settings


def _address(env: Env, backend: str) -> str:
    name = address_variable(backend)
    port = DEV_PORTS.get(backend)
    if port is None:
        # A deployable without a known local port has no development default: it must be named.
        value = env.optional_text(name)
        if value is None:
            env.errors.append(SettingsError(name, f"is required: the {backend} service's gRPC address"))
            return ""
    else:
        value = env.required(name, f"127.0.0.1:{port}", f"the {backend} service's gRPC address")
    if not _ADDRESS.fullmatch(value):
        env.errors.append(SettingsError(name, f"must be host:port, got {value!r}"))
    return value


def _origins(env: Env, name: str) -> tuple[str, ...]:
    raw = env.optional_text(name)
    if raw is None:
        return ()
    origins: list[str] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        parsed = urlsplit(part)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/"):
            env.errors.append(SettingsError(name, f"each origin must be scheme://host[:port], got {part!r}"))
            continue
        origins.append(f"{parsed.scheme}://{parsed.netloc}".lower())
    return tuple(origins)
