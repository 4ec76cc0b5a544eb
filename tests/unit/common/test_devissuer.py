from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.auth import JwksSource, Role, TokenVerifier
from services.common.devissuer import DEV_AUDIENCE, DEV_ISSUER, DevIssuer, main

REPOSITORY = Path(__file__).resolve().parents[3]


@pytest.fixture
def issuer(tmp_path: Path) -> DevIssuer:
    return DevIssuer.load_or_create(tmp_path / "dev-issuer")


def verifier_for(issuer: DevIssuer) -> TokenVerifier:
    return TokenVerifier(DEV_ISSUER, DEV_AUDIENCE, JwksSource(issuer.jwks_path))


def test_first_use_creates_a_private_key_and_publishes_its_jwks(tmp_path: Path) -> None:
    directory = tmp_path / "dev-issuer"

    issuer = DevIssuer.load_or_create(directory)

    assert stat.S_IMODE((directory / "key.pem").stat().st_mode) == 0o600
    published = json.loads(issuer.jwks_path.read_text())
    assert [k["kid"] for k in published["keys"]] == [issuer.key.kid]
    assert "d" not in published["keys"][0]


def test_later_uses_sign_with_the_same_key(tmp_path: Path) -> None:
    first = DevIssuer.load_or_create(tmp_path)

    second = DevIssuer.load_or_create(tmp_path)

    assert second.key.kid == first.key.kid


async def test_minted_token_verifies_with_a_default_subject(issuer: DevIssuer) -> None:
    caller = await verifier_for(issuer).verify(issuer.mint(role="agent"))

    assert caller.subject == "dev-agent"
    assert caller.roles == {Role.AGENT}


async def test_minted_token_carries_roles_unit_and_person_number(issuer: DevIssuer) -> None:
    token = issuer.mint(
        role=["citizen", "officer"], subject="s-1", unit="units/vasterort", person_number="121212-1212"
    )

    caller = await verifier_for(issuer).verify(token)

    assert (caller.subject, caller.roles, caller.unit) == (
        "s-1",
        frozenset({Role.CITIZEN, Role.OFFICER}),
        "units/vasterort",
    )
    assert caller.person_number == "201212121212"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"role": "janitor"}, "unknown role"),
        ({"role": []}, "at least one role"),
        ({"role": "citizen"}, "person number"),
        ({"role": "citizen", "person_number": "191212121213"}, "person number is not valid"),
        ({"role": "officer", "unit": "vasterort"}, "units/"),
        ({"role": "agent", "ttl_seconds": 0}, "lifetime"),
    ],
)
def test_minting_a_token_a_verifier_would_refuse_fails(
    issuer: DevIssuer, kwargs: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        issuer.mint(**kwargs)  # type: ignore[arg-type]


async def test_mint_command_prints_only_a_token_that_verifies(tmp_path: Path) -> None:
    directory = tmp_path / "dev-issuer"
    command = [sys.executable, "-m", "services.common.devissuer", "mint", "--role", "officer"]
    command += ["--unit", "units/vasterort", "--subject", "handlaggare-1", "--dir", str(directory)]

    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=60, check=True)  # noqa: ASYNC221

    lines = result.stdout.splitlines()
    assert len(lines) == 1
    caller = await verifier_for(DevIssuer.load_or_create(directory)).verify(lines[0])
    assert (caller.subject, caller.roles, caller.unit) == (
        "handlaggare-1",
        frozenset({Role.OFFICER}),
        "units/vasterort",
    )


def test_mint_command_with_an_unknown_role_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["mint", "--role", "janitor", "--dir", str(tmp_path)])

    output = capsys.readouterr()
    assert exited.value.code != 0
    assert "janitor" in output.err
    assert output.out == ""


def test_jwks_command_prints_where_the_keys_are_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dir", str(tmp_path), "jwks"]) == 0

    printed = Path(capsys.readouterr().out.strip())
    assert printed == (tmp_path / "jwks.json").resolve()
    assert json.loads(printed.read_text())["keys"]


@pytest.mark.parametrize("roles", [["officer"], ["unit_manager"], ["agent", "officer"]])
def test_mint_command_for_an_officer_or_unit_manager_without_a_unit_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], roles: list[str]
) -> None:
    arguments = ["mint", "--dir", str(tmp_path / "dev-issuer")]
    for role in roles:
        arguments += ["--role", role]

    with pytest.raises(SystemExit) as exited:
        main(arguments)

    output = capsys.readouterr()
    assert exited.value.code == 2
    assert output.out == ""
    assert len(output.err.splitlines()) == 1
    assert "needs a unit" in output.err
    assert "--unit" in output.err
    assert not (tmp_path / "dev-issuer").exists()


def test_mint_command_for_a_citizen_without_a_person_number_refuses_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["mint", "--role", "citizen", "--dir", str(tmp_path / "dev-issuer")])

    output = capsys.readouterr()
    assert exited.value.code == 2
    assert output.out == ""
    assert len(output.err.splitlines()) == 1
    assert "needs a person number" in output.err
    assert "--person-number" in output.err


def test_minting_by_library_call_still_allows_an_officer_outside_every_unit(issuer: DevIssuer) -> None:
    # Tests use such a token for a caller whom every unit's data is closed to; a verifier accepts it.
    assert issuer.mint(role="officer")
