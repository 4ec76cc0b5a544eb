"""TLS to PostgreSQL as production runs it: a server whose certificate a CA of its own signed (as a database
operator's is), a service that checks it with `verify-full` against that CA, and refuses a server its CA did
not sign."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from services.common.db import create_engine
from services.common.settings import DatabaseTls, Env, ServerSettings
from support.pgserver import PostgresServer
from support.tls import Authority

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority.new("aldredirekt-db CA")


@pytest.fixture(scope="module")
def tls_server(authority: Authority) -> Iterator[PostgresServer]:
    if not PostgresServer.available():
        pytest.skip("no PostgreSQL server binaries")
    certificate, key = authority.server("127.0.0.1")
    with PostgresServer(
        settings={"ssl": "on", "ssl_cert_file": "'server.crt'", "ssl_key_file": "'server.key'"},
        files={"server.crt": certificate, "server.key": key},
    ) as server:
        yield server


def settings_for(url: str, **tls: str) -> ServerSettings:
    env = Env({"AUTH_DEV": "true", "DIRECTORY_DATABASE_URL": url, **tls})
    settings = ServerSettings.from_env(env, service="directory", default_port=0)
    env.check()
    return settings


async def ssl_in_use(url: str, tls: DatabaseTls | None) -> bool:
    engine = create_engine(url, tls=tls)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))).one()
            return bool(row.ssl)
    finally:
        await engine.dispose()


async def test_verify_full_connects_to_a_server_its_ca_signed(
    tls_server: PostgresServer, authority: Authority, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text(authority.pem())
    settings = settings_for(tls_server.url("postgres"), DIRECTORY_DATABASE_SSLROOTCERT=str(ca))

    assert settings.database_tls == DatabaseTls("verify-full", str(ca))
    assert await ssl_in_use(settings.database_url, settings.database_tls)


async def test_a_server_another_ca_signed_is_refused(tls_server: PostgresServer, tmp_path: Path) -> None:
    stranger = tmp_path / "other-ca.crt"
    stranger.write_text(Authority.new("someone else").pem())
    settings = settings_for(tls_server.url("postgres"), DIRECTORY_DATABASE_SSLROOTCERT=str(stranger))

    with pytest.raises(ssl.SSLCertVerificationError):
        await ssl_in_use(settings.database_url, settings.database_tls)


async def test_disable_connects_in_the_clear(tls_server: PostgresServer) -> None:
    settings = settings_for(tls_server.url("postgres"), DIRECTORY_DATABASE_SSLMODE="disable")

    assert not await ssl_in_use(settings.database_url, settings.database_tls)
