"""The fees service's settings: local defaults only with AUTH_DEV=true, every production setting named when
missing, and parameter files that cannot be vouched for stopping the service at start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.common.settings import SettingsError
from services.fees.main import FeesSettings
from services.fees.model import default_parameters_folder


def test_a_local_run_needs_nothing_but_auth_dev():
    settings = FeesSettings.from_env({"AUTH_DEV": "true"})
    assert settings.server.port == 50054
    assert settings.server.database_url == "sqlite+aiosqlite:///var/fees.db"
    assert settings.mirror_address == "127.0.0.1:50053"
    assert settings.case_address == "127.0.0.1:50051"
    assert settings.tokens.token_url is None
    assert "prisbasbelopp" in settings.parameters


def test_production_names_every_setting_it_lacks():
    with pytest.raises(SettingsError) as caught:
        FeesSettings.from_env({})
    message = str(caught.value)
    for variable in (
        "FEES_FINANCE_API_KEY_FILE",
        "FEES_FINANCE_URL",
        "FEES_MIRROR_ADDRESS",
        "FEES_CASE_ADDRESS",
        "FEES_GRANT_JWKS",
        "FEES_TOKEN_URL",
        "FEES_PAGE_TOKEN_KEY",
        "AUTH_JWKS",
    ):
        assert variable in message, variable


def test_a_token_url_needs_the_client_and_its_secret():
    with pytest.raises(SettingsError) as caught:
        FeesSettings.from_env({"AUTH_DEV": "true", "FEES_TOKEN_URL": "https://idp.example/token"})
    assert "FEES_CLIENT_ID" in str(caught.value)
    assert "FEES_CLIENT_SECRET_FILE" in str(caught.value)
    settings = FeesSettings.from_env(
        {
            "AUTH_DEV": "true",
            "FEES_TOKEN_URL": "https://idp.example/token",
            "FEES_CLIENT_ID": "aldredirekt-fees",
            "FEES_CLIENT_SECRET_ENV": "FEES_CLIENT_SECRET",
            "FEES_CLIENT_SECRET": "s3cret-value-of-the-client",
            "FEES_TOKEN_SCOPE": "case.billing",
        }
    )
    assert settings.tokens.client_id == "aldredirekt-fees"
    assert settings.tokens.secret.env == "FEES_CLIENT_SECRET"
    assert settings.tokens.scope == "case.billing"
    # The settings name where the secret is, never what it is.
    assert "s3cret-value-of-the-client" not in repr(settings)


def test_a_gap_in_the_parameter_files_stops_the_service_naming_file_and_parameter(tmp_path: Path):
    folder = tmp_path / "parameters"
    shutil.copytree(default_parameters_folder(), folder)
    national = folder / "national.toml"
    text = national.read_text()
    # Take 2025's prisbasbelopp out: 2024 and 2026 no longer meet.
    start = text.index("[[prisbasbelopp.periods]]\nvalid_from = 2025-01-01")
    end = text.index("[[prisbasbelopp.periods]]\nvalid_from = 2026-01-01")
    national.write_text(text[:start] + text[end:])
    with pytest.raises(SettingsError) as caught:
        FeesSettings.from_env({"AUTH_DEV": "true", "FEES_PARAMETERS_DIR": str(folder)})
    assert caught.value.variable == "FEES_PARAMETERS_DIR"
    assert "national.toml: prisbasbelopp: 2025-01-01: has no value from here" in str(caught.value)


def test_a_figure_without_a_source_stops_the_service(tmp_path: Path):
    folder = tmp_path / "parameters"
    shutil.copytree(default_parameters_folder(), folder)
    billing = folder / "billing.toml"
    billing.write_text(billing.read_text().replace('source = "PM Äldre direkt', 'note = "PM Äldre direkt', 1))
    with pytest.raises(
        SettingsError, match=r"billing\.toml: kontaktcenter_grundavgift: 2021-01-01: has no source"
    ):
        FeesSettings.from_env({"AUTH_DEV": "true", "FEES_PARAMETERS_DIR": str(folder)})


def test_a_missing_parameter_folder_is_named(tmp_path: Path):
    with pytest.raises(SettingsError, match="FEES_PARAMETERS_DIR"):
        FeesSettings.from_env({"AUTH_DEV": "true", "FEES_PARAMETERS_DIR": str(tmp_path / "none")})
