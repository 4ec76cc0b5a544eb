"""`make token` as a newcomer types it: a missing claim is refused in one line, and no token is printed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make_token(*variables: str) -> subprocess.CompletedProcess[str]:
    # Variables a shell may have exported would reach make as defaults and change what is asked for.
    env = {k: v for k, v in os.environ.items() if k not in {"ROLE", "UNIT", "PERSON", "SUB", "MAKEFLAGS"}}
    return subprocess.run(
        ["make", "--no-print-directory", "token", *variables],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def our_lines(stderr: str) -> list[str]:
    """What the issuer printed: not the line make adds about the failed target, nor what make printed if it
    brought the virtualenv or the generated code up to date first."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("python -m services.common.devissuer")]


@pytest.mark.parametrize("role", ["officer", "unit_manager"])
def test_make_token_for_a_role_that_acts_for_a_unit_without_unit_says_a_unit_is_needed(role: str):
    finished = make_token(f"ROLE={role}")

    assert finished.returncode != 0
    assert finished.stdout == ""
    lines = our_lines(finished.stderr)
    assert len(lines) == 1, finished.stderr
    [line] = lines
    assert "needs a unit" in line
    assert "UNIT=" in line


def test_make_token_for_a_citizen_without_person_says_a_person_number_is_needed():
    finished = make_token("ROLE=citizen")

    assert finished.returncode != 0
    assert finished.stdout == ""
    lines = our_lines(finished.stderr)
    assert len(lines) == 1, finished.stderr
    [line] = lines
    assert "needs a person number" in line
    assert "PERSON=" in line
