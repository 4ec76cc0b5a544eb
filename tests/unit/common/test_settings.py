from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from services.common.pagination import MIN_KEY_BYTES, development_key
from services.common.settings import (
    AuthSettings,
    Env,
    ServerSettings,
    SettingsError,
    database_url_problem,
)

# Local runs and tests switch the development defaults on explicitly; production gives every secret.
DEV = {"AUTH_DEV": "true"}
PAGE_KEY = "k" * MIN_KEY_BYTES


def server_settings(environ: dict[str, str], *, dev: bool = True) -> ServerSettings:
    env = Env({**DEV, **environ} if dev else environ)
    settings = ServerSettings.from_env(env, service="directory", default_port=50061)
    env.check()
    return settings


def settings_error(environ: dict[str, str], *, dev: bool = True) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        server_settings(environ, dev=dev)
    return caught.value


def test_a_service_started_without_variables_gets_working_defaults():
    settings = server_settings({})

    assert settings.service == "directory"
    assert settings.host == "127.0.0.1"
    assert settings.port == 50061
    assert settings.database_url == "sqlite+aiosqlite:///var/directory.db"
    assert settings.migrate_on_start is True
    assert settings.db_pool_size == 20
    assert settings.max_active_calls == 16
    assert settings.grace_seconds == 10.0
    assert settings.log_level == "INFO"
    assert settings.event_loop == "uvloop"
    assert settings.page_token_keys == (development_key("directory"),)


def test_variables_are_read_under_the_services_own_prefix():
    settings = server_settings(
        {
            "DIRECTORY_HOST": " 10.0.4.17 ",
            "DIRECTORY_PORT": "7001",
            "DIRECTORY_DATABASE_URL": "postgresql+asyncpg://directory@db/directory",
            "DIRECTORY_MIGRATE_ON_START": "off",
            "DIRECTORY_DB_POOL_SIZE": "25",
            "DIRECTORY_GRACE_SECONDS": "2.5",
            "LOG_LEVEL": "DEBUG",
            "EVENT_LOOP": "asyncio",
            # Another service's variables are none of this one's business.
            "CASE_PORT": "not a port",
        }
    )

    assert settings.host == "10.0.4.17"
    assert settings.port == 7001
    assert settings.database_url == "postgresql+asyncpg://directory@db/directory"
    assert settings.migrate_on_start is False
    assert settings.db_pool_size == 25
    assert settings.grace_seconds == 2.5
    assert settings.log_level == "DEBUG"
    assert settings.event_loop == "asyncio"


def test_an_empty_variable_counts_as_unset():
    assert server_settings({"DIRECTORY_PORT": "", "DIRECTORY_MIGRATE_ON_START": ""}).port == 50061


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), ("yes", True), ("On", True), ("0", False), ("false", False), ("no", False)],
)
def test_flags_accept_the_usual_spellings(raw: str, expected: bool):
    assert server_settings({"DIRECTORY_MIGRATE_ON_START": raw}).migrate_on_start is expected


@pytest.mark.parametrize(
    ("variable", "raw", "problem"),
    [
        ("DIRECTORY_PORT", "fifty", "expected a whole number, got 'fifty'"),
        ("DIRECTORY_PORT", "70000", "must be between 0 and 65535, got 70000"),
        ("DIRECTORY_DB_POOL_SIZE", "0", "must be between 2 and 200, got 0"),
        ("DIRECTORY_MAX_ACTIVE_CALLS", "0", "must be between 1 and 10000, got 0"),
        ("DIRECTORY_GRACE_SECONDS", "-1", "must be at least 0.0, got -1.0"),
        ("DIRECTORY_GRACE_SECONDS", "soon", "expected a number, got 'soon'"),
        ("DIRECTORY_MIGRATE_ON_START", "maybe", "expected true or false, got 'maybe'"),
        ("LOG_LEVEL", "CHATTY", "must be one of DEBUG, INFO, WARNING, ERROR, got 'CHATTY'"),
        ("EVENT_LOOP", "trio", "must be one of uvloop, asyncio, got 'trio'"),
        ("DIRECTORY_DATABASE_URL", "mysql://db/directory", "must start with sqlite+aiosqlite:///"),
    ],
)
def test_a_wrong_value_stops_start_up_naming_the_variable(variable: str, raw: str, problem: str):
    error = settings_error({variable: raw})

    assert error.variable == variable
    assert str(error).startswith(f"{variable}: ")
    assert problem in str(error)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_a_grace_period_that_is_not_a_finite_number_is_refused(raw: str):
    error = settings_error({"DIRECTORY_GRACE_SECONDS": raw})

    assert error.variable == "DIRECTORY_GRACE_SECONDS"


def test_every_wrong_variable_is_reported_at_once_and_the_first_is_named():
    error = settings_error({"DIRECTORY_PORT": "x", "DIRECTORY_DB_POOL_SIZE": "999", "LOG_LEVEL": "LOUD"})

    assert error.variable == "DIRECTORY_PORT"
    message = str(error)
    assert message.count("DIRECTORY_PORT") == 1
    assert "DIRECTORY_DB_POOL_SIZE: must be between 2 and 200" in message
    assert "LOG_LEVEL: must be one of" in message


def test_check_passes_when_nothing_was_wrong():
    env = Env({"DIRECTORY_PORT": "1"})
    assert env.integer("DIRECTORY_PORT", 2, minimum=0) == 1

    env.check()

    assert env.errors == []


def test_a_lower_bound_alone_is_described_as_at_least():
    env = Env({"RETRIES": "-3"})

    assert env.integer("RETRIES", 1, minimum=0) == -3
    assert [str(e) for e in env.errors] == ["RETRIES: must be at least 0, got -3"]


def test_optional_text_is_none_when_unset_or_blank():
    env = Env({"BLANK": "   ", "SET": " value "})

    assert env.optional_text("MISSING") is None
    assert env.optional_text("BLANK") is None
    assert env.optional_text("SET") == "value"


@pytest.mark.parametrize(
    ("url", "usable"),
    [
        ("sqlite+aiosqlite:///var/case.db", True),
        ("postgresql+asyncpg://case@db:5432/case", True),
        ("sqlite:///var/case.db", False),
        ("postgresql://case@db/case", False),
        ("", False),
    ],
)
def test_only_the_async_drivers_are_accepted_for_the_database(url: str, usable: bool):
    assert (database_url_problem(url) is None) is usable


def test_outside_development_the_page_token_key_is_required_and_named():
    error = settings_error({}, dev=False)

    assert error.variable == "DIRECTORY_PAGE_TOKEN_KEY"
    assert "is required" in str(error)


def test_outside_development_a_given_page_token_key_is_used():
    settings = server_settings({"DIRECTORY_PAGE_TOKEN_KEY": PAGE_KEY}, dev=False)

    assert settings.page_token_keys == (PAGE_KEY.encode(),)


def test_several_page_token_keys_are_read_in_order_the_first_signing():
    second = "s" * MIN_KEY_BYTES
    settings = server_settings({"DIRECTORY_PAGE_TOKEN_KEY": f"{PAGE_KEY}, {second}"}, dev=False)

    assert settings.page_token_keys == (PAGE_KEY.encode(), second.encode())


@pytest.mark.parametrize("dev", [True, False])
def test_a_page_token_key_shorter_than_32_characters_is_refused_without_showing_it(dev: bool):
    short = "x" * (MIN_KEY_BYTES - 1)
    error = settings_error({"DIRECTORY_PAGE_TOKEN_KEY": f"{PAGE_KEY},{short}"}, dev=dev)

    assert error.variable == "DIRECTORY_PAGE_TOKEN_KEY"
    assert f"at least {MIN_KEY_BYTES} characters" in str(error)
    assert short not in str(error)


def test_without_a_jwks_and_outside_development_start_up_is_refused_naming_auth_jwks():
    env = Env({})
    AuthSettings.from_env(env)

    with pytest.raises(SettingsError) as caught:
        env.check()

    assert caught.value.variable == "AUTH_JWKS"
    assert "is required" in str(caught.value)


def test_without_a_jwks_the_local_development_issuer_is_trusted():
    env = Env(DEV)
    auth = AuthSettings.from_env(env)
    env.check()

    assert auth.uses_dev_issuer
    assert auth.audience == "aldredirekt"
    assert auth.dev_dir == "var/dev-issuer"
    assert auth.issuer is None


def test_a_real_issuer_is_configured_by_its_jwks_url_and_name():
    env = Env(
        {
            "AUTH_JWKS": "https://login.stockholm.se/.well-known/jwks.json",
            "AUTH_ISSUER": "https://login.stockholm.se",
            "AUTH_AUDIENCE": "aldredirekt-prod",
        }
    )
    auth = AuthSettings.from_env(env)
    env.check()

    assert not auth.uses_dev_issuer
    assert auth.issuer == "https://login.stockholm.se"
    assert auth.audience == "aldredirekt-prod"


def test_a_jwks_file_on_disk_is_accepted_whatever_its_name(tmp_path: Path):
    keys = tmp_path / "signing-keys"
    keys.write_text('{"keys": []}')
    env = Env({"AUTH_JWKS": str(keys), "AUTH_ISSUER": "https://login.stockholm.se"})

    assert AuthSettings.from_env(env).jwks == str(keys)
    env.check()


def test_a_jwks_without_the_issuer_it_belongs_to_is_refused():
    env = Env({"AUTH_JWKS": "https://login.stockholm.se/jwks.json"})
    AuthSettings.from_env(env)

    with pytest.raises(SettingsError) as caught:
        env.check()

    assert caught.value.variable == "AUTH_ISSUER"


def test_a_jwks_that_is_neither_a_url_nor_a_json_file_is_refused(tmp_path: Path):
    env = Env({"AUTH_JWKS": str(tmp_path / "no-such-keys"), "AUTH_ISSUER": "https://login.stockholm.se"})
    AuthSettings.from_env(env)

    with pytest.raises(SettingsError) as caught:
        env.check()

    assert caught.value.variable == "AUTH_JWKS"


def test_the_process_environment_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DIRECTORY_PORT", "6001")

    assert ServerSettings.from_env(Env(), service="directory", default_port=1).port == 6001


# ---- secrets from files ------------------------------------------------------------------------------


def test_a_secret_may_come_from_the_file_its_file_variable_names(tmp_path: Path):
    keys = tmp_path / "page-token-keys"
    keys.write_text(f"{PAGE_KEY}\n")
    password = tmp_path / "password"
    password.write_text("s3cret p@ss/word\n")
    settings = server_settings(
        {
            "DIRECTORY_PAGE_TOKEN_KEY_FILE": str(keys),
            "DIRECTORY_DATABASE_HOST": "db",
            "DIRECTORY_DATABASE_NAME": "directory",
            "DIRECTORY_DATABASE_USER": "directory",
            "DIRECTORY_DATABASE_PASSWORD_FILE": str(password),
        },
        dev=False,
    )

    assert settings.page_token_keys == (PAGE_KEY.encode(),)
    url = make_url(settings.database_url)
    assert (url.host, url.database, url.username) == ("db", "directory", "directory")
    assert url.password == "s3cret p@ss/word"


def test_a_secret_and_its_file_together_are_refused(tmp_path: Path):
    keys = tmp_path / "keys"
    keys.write_text(PAGE_KEY)
    error = settings_error({"DIRECTORY_PAGE_TOKEN_KEY": PAGE_KEY, "DIRECTORY_PAGE_TOKEN_KEY_FILE": str(keys)})

    assert error.variable == "DIRECTORY_PAGE_TOKEN_KEY_FILE"
    assert "together" in str(error)


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_a_secret_file_that_is_missing_or_empty_is_named_without_its_content(
    tmp_path: Path, content: str | None
):
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    error = settings_error({"DIRECTORY_PAGE_TOKEN_KEY_FILE": str(path)}, dev=False)

    assert error.variable == "DIRECTORY_PAGE_TOKEN_KEY_FILE"


# ---- TLS to the database -----------------------------------------------------------------------------


def test_without_tls_settings_the_driver_default_stays():
    assert server_settings({}).database_tls is None


def test_verify_full_checks_the_certificate_and_the_host_name_against_the_given_ca(tmp_path: Path):
    ca = tmp_path / "ca.crt"
    ca.write_text(_self_signed_ca())
    settings = server_settings({"DIRECTORY_DATABASE_SSLROOTCERT": str(ca)})

    assert settings.database_tls is not None
    assert settings.database_tls.mode == "verify-full"
    context = settings.database_tls.connect_argument()
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1


@pytest.mark.parametrize(
    ("mode", "check_hostname", "verify"),
    [("verify-ca", False, ssl.CERT_REQUIRED), ("require", False, ssl.CERT_NONE)],
)
def test_weaker_modes_check_less(mode: str, check_hostname: bool, verify: ssl.VerifyMode):
    settings = server_settings({"DIRECTORY_DATABASE_SSLMODE": mode})
    assert settings.database_tls is not None
    context = settings.database_tls.connect_argument()
    assert isinstance(context, ssl.SSLContext)
    assert (context.check_hostname, context.verify_mode) == (check_hostname, verify)


def test_disable_turns_tls_off_and_an_unknown_mode_or_missing_ca_is_named(tmp_path: Path):
    disabled = server_settings({"DIRECTORY_DATABASE_SSLMODE": "disable"}).database_tls
    assert disabled is not None
    assert disabled.connect_argument() is False
    assert settings_error({"DIRECTORY_DATABASE_SSLMODE": "verify"}).variable == "DIRECTORY_DATABASE_SSLMODE"
    missing = settings_error({"DIRECTORY_DATABASE_SSLROOTCERT": str(tmp_path / "none.crt")})
    assert missing.variable == "DIRECTORY_DATABASE_SSLROOTCERT"


def _self_signed_ca() -> str:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aldredirekt-db CA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
