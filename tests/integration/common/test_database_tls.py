"""TLS to PostgreSQL as production runs it: a server whose certificate a CA of its own signed (as a database
operator's is), a service that checks it with `verify-full` against that CA, and refuses a server its CA did
not sign."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from services.common.db import create_engine
from services.common.settings import DatabaseTls, Env, ServerSettings
from support.pgserver import PostgresServer

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def new(cls, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def server(self, host: str) -> tuple[bytes, bytes]:
        """A server certificate for `host` (an IP address), and its key, both PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(host))]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return (
            certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )


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
    ca.write_bytes(authority.pem())
    settings = settings_for(tls_server.url("postgres"), DIRECTORY_DATABASE_SSLROOTCERT=str(ca))

    assert settings.database_tls == DatabaseTls("verify-full", str(ca))
    assert await ssl_in_use(settings.database_url, settings.database_tls)


async def test_a_server_another_ca_signed_is_refused(tls_server: PostgresServer, tmp_path: Path) -> None:
    stranger = tmp_path / "other-ca.crt"
    stranger.write_bytes(Authority.new("someone else").pem())
    settings = settings_for(tls_server.url("postgres"), DIRECTORY_DATABASE_SSLROOTCERT=str(stranger))

    with pytest.raises(ssl.SSLCertVerificationError):
        await ssl_in_use(settings.database_url, settings.database_tls)


async def test_disable_connects_in_the_clear(tls_server: PostgresServer) -> None:
    settings = settings_for(tls_server.url("postgres"), DIRECTORY_DATABASE_SSLMODE="disable")

    assert not await ssl_in_use(settings.database_url, settings.database_tls)
