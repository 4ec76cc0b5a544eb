"""The gateway's settings fail closed outside AUTH_DEV, and front every deployable by one variable each."""

from __future__ import annotations

import pytest

from gateway.settings import GatewaySettings
from services.common.settings import SettingsError

KEY = "k" * 32


def test_without_auth_dev_every_backend_address_the_jwks_and_the_key_are_required() -> None:
    with pytest.raises(SettingsError) as refused:
        GatewaySettings.from_env({}, backends=("case", "directory"))
    message = str(refused.value)
    for variable in (
        "GATEWAY_CASE_ADDRESS",
        "GATEWAY_DIRECTORY_ADDRESS",
        "AUTH_JWKS",
        "GATEWAY_PAGE_TOKEN_KEY",
    ):
        assert variable in message


def test_auth_dev_puts_the_known_services_on_loopback() -> None:
    settings = GatewaySettings.from_env({"AUTH_DEV": "true"}, backends=("case", "mirror"))
    assert settings.backends == {"case": "127.0.0.1:50051", "mirror": "127.0.0.1:50053"}
    assert settings.port == 8080


def test_a_new_service_is_fronted_by_its_address_alone() -> None:
    environ = {
        "AUTH_JWKS": "https://idp.example/jwks.json",
        "AUTH_ISSUER": "https://idp.example",
        "GATEWAY_PAGE_TOKEN_KEY": KEY,
        "GATEWAY_FEES_ADDRESS": "fees:50054",
    }
    settings = GatewaySettings.from_env(environ, backends=("fees",))
    assert settings.backends == {"fees": "fees:50054"}


def test_a_service_without_a_local_port_needs_its_address_even_in_dev() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_BILLING_ADDRESS"):
        GatewaySettings.from_env({"AUTH_DEV": "true"}, backends=("billing",))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_CORS_ORIGINS", "agent.example"),
        ("GATEWAY_MAX_BODY_BYTES", "10"),
        ("GATEWAY_CASE_ADDRESS", "no port"),
        ("GATEWAY_MAX_TIMEOUT_SECONDS", "1"),
    ],
)
def test_a_wrong_value_stops_it_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        GatewaySettings.from_env({"AUTH_DEV": "true", variable: value}, backends=("case",))


def test_cors_origins_are_normalised() -> None:
    settings = GatewaySettings.from_env(
        {"AUTH_DEV": "true", "GATEWAY_CORS_ORIGINS": "https://Agent.example, http://localhost:5173"},
        backends=(),
    )
    assert settings.cors_origins == ("https://agent.example", "http://localhost:5173")
