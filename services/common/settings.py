"""Typed settings read from environment variables and validated at start-up.

A wrong value stops the process with a message that names the variable. Nothing here reads the
environment at import time: `Settings.from_env()` is called by each service's bootstrap.
"""

from __future__ import annotations

import math
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import URL

from services.common.pagination import MIN_KEY_BYTES, development_key

T = TypeVar("T")


class SettingsError(Exception):
    """A variable is missing or has a value that cannot be used."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


DEV_VARIABLE = "AUTH_DEV"


class Env:
    """Reads typed values from a mapping of environment variables and collects every error.

    `dev` is AUTH_DEV: only when it is switched on explicitly do development defaults apply (the local
    token issuer, development keys, other services on loopback). Without it a service fails closed: a
    variable production must set stops it at start, named.
    """

    def __init__(self, environ: Mapping[str, str] | None = None):
        self.environ = os.environ if environ is None else environ
        self.errors: list[SettingsError] = []
        # Every variable a service reads, so that a deployment's manifests can be checked against it.
        self.read: set[str] = set()
        self.dev = self.flag(DEV_VARIABLE, False)

    def required(self, name: str, dev_default: str, meaning: str) -> str:
        """A value production must give; `dev_default` serves only local runs (AUTH_DEV=true)."""
        value = self.optional_text(name)
        if value is not None:
            return value
        if not self.dev:
            self.errors.append(
                SettingsError(name, f"is required: {meaning} (only AUTH_DEV=true has a local default)")
            )
        return dev_default

    def _get(self, name: str, default: T, parse: Callable[[str], T], problem: str) -> T:
        self.read.add(name)
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw.strip())
        except (ValueError, TypeError):
            self.errors.append(SettingsError(name, f"{problem}, got {raw!r}"))
            return default

    def text(self, name: str, default: str) -> str:
        return self._get(name, default, lambda v: v, "expected text")

    def optional_text(self, name: str) -> str | None:
        self.read.add(name)
        value = self.environ.get(name, "").strip()
        return value or None

    def optional_secret(self, name: str) -> str | None:
        """A secret from `name`, or from the file `name`_FILE names (a mounted Kubernetes Secret, which
        keeps it out of the process environment); never both. Its value is never put in a message."""
        value = self.optional_text(name)
        path = self.optional_text(name + "_FILE")
        if path is None:
            return value
        if value is not None:
            self.errors.append(SettingsError(name + "_FILE", f"cannot be set together with {name}"))
            return value
        try:
            text = Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError) as error:
            self.errors.append(SettingsError(name + "_FILE", f"cannot be read ({type(error).__name__})"))
            return None
        if not text:
            self.errors.append(SettingsError(name + "_FILE", "names an empty file"))
            return None
        return text

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self._get(name, default, int, "expected a whole number")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            self.errors.append(SettingsError(name, f"must be {bounds}, got {value}"))
        return value

    def number(self, name: str, default: float, *, minimum: float | None = None) -> float:
        def parse(raw: str) -> float:
            value = float(raw)
            # float() takes "nan" and "inf", which no bound check would catch.
            if not math.isfinite(value):
                raise ValueError(raw)
            return value

        value = self._get(name, default, parse, "expected a number")
        if minimum is not None and value < minimum:
            self.errors.append(SettingsError(name, f"must be at least {minimum}, got {value}"))
        return value

    def flag(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            lowered = raw.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)

        return self._get(name, default, parse, "expected true or false")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            self.errors.append(SettingsError(name, f"must be one of {', '.join(choices)}, got {value!r}"))
        return value

    def check(self) -> None:
        """Raises the first error, with all of them in the message, when any variable was wrong."""
        if self.errors:
            message = "; ".join(str(e) for e in self.errors)
            first = self.errors[0]
            raise SettingsError(first.variable, message.removeprefix(f"{first.variable}: "))


def database_url_problem(url: str) -> str | None:
    """Why a database URL cannot be used, or None when it can."""
    if url.startswith("sqlite+aiosqlite:///") or url.startswith("postgresql+asyncpg://"):
        return None
    return "must start with sqlite+aiosqlite:/// or postgresql+asyncpg://"


def database_url_setting(env: Env, service: str) -> str:
    """`<SVC>_DATABASE_URL`, or the URL made of `<SVC>_DATABASE_HOST`, `_PORT`, `_NAME`, `_USER` and
    `_PASSWORD` (as a database operator's role secret gives them); an SQLite file under var/ when neither.

    `postgresql://` and `postgres://` URLs (what operators such as CloudNativePG write) are taken as
    asyncpg URLs; `sslmode` becomes asyncpg's `ssl`.
    """
    prefix = service.upper() + "_DATABASE_"
    name = prefix + "URL"
    host = env.optional_text(prefix + "HOST")
    parts = {part: env.optional_text(prefix + part) for part in ("PORT", "NAME", "USER")}
    parts["PASSWORD"] = env.optional_secret(prefix + "PASSWORD")
    url = env.optional_secret(name)
    if url is None and host is not None:
        missing = [prefix + part for part in ("NAME", "USER", "PASSWORD") if not parts[part]]
        if missing:
            env.errors.append(SettingsError(missing[0], f"is required with {prefix}HOST"))
            return ""
        url = str(
            URL.create(
                "postgresql+asyncpg",
                username=parts["USER"],
                password=parts["PASSWORD"],
                host=host,
                port=int(parts["PORT"]) if parts["PORT"] and parts["PORT"].isdigit() else 5432,
                database=parts["NAME"],
            ).render_as_string(hide_password=False)
        )
    if url is None:
        url = f"sqlite+aiosqlite:///var/{service}.db"
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            url = "postgresql+asyncpg://" + url[len(plain) :]
            url = url.replace("sslmode=", "ssl=")
    problem = database_url_problem(url)
    if problem:
        env.errors.append(SettingsError(name, problem))
    return url


DATABASE_SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class DatabaseTls:
    """How a service's PostgreSQL connections use TLS, as libpq's sslmode names it: `verify-full` checks the
    server's certificate against `root_cert` (a database operator's CA) and its name against the host."""

    mode: str
    root_cert: str | None = None

    def connect_argument(self) -> ssl.SSLContext | bool | None:
        """asyncpg's `ssl` argument; None leaves asyncpg's default (prefer)."""
        if self.mode == "disable":
            return False
        if self.mode == "prefer":
            return None
        context = (
            ssl.create_default_context(cafile=self.root_cert)
            if self.root_cert
            else ssl.create_default_context()
        )
        if self.mode == "require":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.mode == "verify-ca":
            context.check_hostname = False
        return context


def database_tls_setting(env: Env, service: str) -> DatabaseTls | None:
    """`<SVC>_DATABASE_SSLMODE` and `<SVC>_DATABASE_SSLROOTCERT`; None when neither is set."""
    prefix = service.upper() + "_DATABASE_"
    mode = env.optional_text(prefix + "SSLMODE")
    root = env.optional_text(prefix + "SSLROOTCERT")
    if mode is None and root is None:
        return None
    mode = mode or "verify-full"
    if mode not in DATABASE_SSL_MODES:
        env.errors.append(
            SettingsError(prefix + "SSLMODE", f"must be one of {', '.join(DATABASE_SSL_MODES)}")
        )
        return None
    if root is not None and not os.path.isfile(root):
        env.errors.append(SettingsError(prefix + "SSLROOTCERT", f"is not a file: {root!r}"))
        return None
    return DatabaseTls(mode, root)


@dataclass(frozen=True)
class ServerSettings:
    """What every gRPC service is configured with; the prefix is the service's, e.g. DIRECTORY_."""

    service: str
    host: str
    port: int
    database_url: str
    migrate_on_start: bool
    db_pool_size: int
    grace_seconds: float
    log_level: str
    workers: int
    max_active_calls: int
    # The keys page tokens are signed with; the first signs, all verify (see PageTokens).
    page_token_keys: tuple[bytes, ...]
    database_tls: DatabaseTls | None = None
    event_loop: str = "uvloop"

    @classmethod
    def from_env(cls, env: Env, *, service: str, default_port: int) -> ServerSettings:
        prefix = service.upper() + "_"
        url = database_url_setting(env, service)
        return cls(
            service=service,
            host=env.text(prefix + "HOST", "127.0.0.1"),
            port=env.integer(prefix + "PORT", default_port, minimum=0, maximum=65535),
            database_url=url,
            migrate_on_start=env.flag(prefix + "MIGRATE_ON_START", True),
            db_pool_size=env.integer(prefix + "DB_POOL_SIZE", 20, minimum=2, maximum=200),
            grace_seconds=env.number(prefix + "GRACE_SECONDS", 10.0, minimum=0.0),
            log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            workers=env.integer(prefix + "WORKERS", 1, minimum=1, maximum=64),
            max_active_calls=env.integer(prefix + "MAX_ACTIVE_CALLS", 16, minimum=1, maximum=10_000),
            page_token_keys=page_token_keys(env, prefix + "PAGE_TOKEN_KEY", service),
            database_tls=database_tls_setting(env, service),
            event_loop=event_loop_setting(env),
        )


EVENT_LOOPS = ("uvloop", "asyncio")


def event_loop_setting(env: Env) -> str:
    """EVENT_LOOP: the asyncio event loop a process runs on, uvloop (libuv's) or the standard library's."""
    return env.choice("EVENT_LOOP", "uvloop", EVENT_LOOPS)


def page_token_keys(env: Env, name: str, service: str) -> tuple[bytes, ...]:
    raw = env.optional_secret(name)
    if raw is None:
        if not env.dev:
            env.errors.append(
                SettingsError(
                    name,
                    f"is required: the secret page tokens are signed with, at least {MIN_KEY_BYTES} "
                    "characters (several, comma-separated, while rotating: the first signs)",
                )
            )
        return (development_key(service),)
    keys = tuple(part.strip().encode() for part in raw.split(",") if part.strip())
    if not keys or any(len(key) < MIN_KEY_BYTES for key in keys):
        # The value is a secret: its length is all the message tells.
        env.errors.append(SettingsError(name, f"each key must be at least {MIN_KEY_BYTES} characters"))
        return (development_key(service),)
    return keys


@dataclass(frozen=True)
class AuthSettings:
    """Where tokens come from: the identity provider's JWKS, or (AUTH_DEV=true, never in production) the
    local development issuer under ./var."""

    issuer: str | None
    audience: str
    jwks: str | None
    dev_dir: str

    @property
    def uses_dev_issuer(self) -> bool:
        return self.jwks is None

    @classmethod
    def from_env(cls, env: Env) -> AuthSettings:
        jwks = env.optional_text("AUTH_JWKS")
        issuer = env.optional_text("AUTH_ISSUER")
        if jwks is None and not env.dev:
            env.errors.append(
                SettingsError(
                    "AUTH_JWKS",
                    "is required: the URL or file of the identity provider's JWKS "
                    "(AUTH_DEV=true trusts the local development issuer instead, for local runs only)",
                )
            )
        if jwks is not None and issuer is None:
            env.errors.append(SettingsError("AUTH_ISSUER", "is required when AUTH_JWKS is set"))
        if jwks is not None and not (
            jwks.startswith(("https://", "http://")) or jwks.endswith(".json") or os.path.isfile(jwks)
        ):
            env.errors.append(
                SettingsError("AUTH_JWKS", f"must be an http(s) URL or a JSON file, got {jwks!r}")
            )
        return cls(
            issuer=issuer,
            audience=env.text("AUTH_AUDIENCE", "aldredirekt"),
            jwks=jwks,
            dev_dir=env.text("AUTH_DEV_DIR", "var/dev-issuer"),
        )
