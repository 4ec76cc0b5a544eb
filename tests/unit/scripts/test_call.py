"""`scripts.call`'s command line: what a role is missing is said in one line, before any call."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.call import main


@pytest.mark.parametrize(
    ("role_arguments", "problem"),
    [
        (["--role", "citizen"], "--person-number"),
        (["--role", "officer"], "--unit"),
        (["--role", "unit_manager"], "--unit"),
        (["--role", "janitor"], "unknown role 'janitor'"),
        (["--role", "officer", "--unit", "vasterort"], "units/"),
        (["--role", "citizen", "--person-number", "19121212-1213"], "person number is not valid"),
    ],
)
def test_a_role_without_what_it_needs_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], role_arguments: list[str], problem: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["directory", "ListDistricts", "--dev-dir", str(tmp_path), *role_arguments])

    output = capsys.readouterr()
    assert exited.value.code == 2
    assert output.out == ""
    [line] = output.err.splitlines()
    assert line.startswith("python -m scripts.call: error: ")
    assert problem in line
