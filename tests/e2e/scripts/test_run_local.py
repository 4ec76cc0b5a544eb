"""`make run`'s start-up and watch: a taken port stops it before anything starts; a component that fails to
start, or dies later, is named with the end of its log, and everything else is stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import run_local
from scripts.run_local import LOG_TAIL_LINES, Component
from support.ports import HOST, free_port
from tests.e2e.scripts.conftest import REPOSITORY


@pytest.fixture
def held_ports() -> Iterator[list[int]]:
    """Three ports something else listens on, as another `make run` would."""
    sockets = [socket.create_server((HOST, 0)) for _ in range(3)]
    yield [s.getsockname()[1] for s in sockets]
    for held in sockets:
        held.close()


def stand_in(name: str, tmp_path: Path, *options: str) -> Component:
    pid_file = tmp_path / f"{name}.pid"
    return Component(
        name,
        "tests.e2e.scripts.stand_in",
        f"{name.upper()}_PORT",
        free_port(),
        grpc=False,
        arguments=("--port", "{port}", "--pid-file", str(pid_file), *options),
    )


def has_ended(tmp_path: Path, name: str) -> bool:
    pid = int((tmp_path / f"{name}.pid").read_text())
    return not Path(f"/proc/{pid}").exists()


def shown_log(stderr: str) -> list[str]:
    return [line.removeprefix("   ") for line in stderr.splitlines() if line.startswith("   ")]


def test_a_taken_port_stops_make_run_before_anything_starts(held_ports: list[int]):
    smtp, directory, case = held_ports
    env = {
        **os.environ,
        "SMTP_SINK_PORT": str(smtp),
        "DIRECTORY_PORT": str(directory),
        "CASE_PORT": str(case),
    }

    finished = subprocess.run(
        [sys.executable, "-m", "scripts.run_local"],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode != 0
    assert finished.stdout == ""
    problems = finished.stderr.splitlines()
    for port, name in zip(held_ports, ["smtp-sink", "directory", "case"], strict=True):
        [line] = [line for line in problems if f"port {port} " in line]
        assert name in line
        assert "another `make run` may be up" in line


def test_a_port_variable_that_is_not_a_port_is_named():
    problems = run_local.port_problems(run_local.COMPONENTS, {"DIRECTORY_PORT": "fifty"})

    assert [p for p in problems if "DIRECTORY_PORT" in p] == [
        "DIRECTORY_PORT must be a port number for directory, got 'fifty'"
    ]


def test_a_service_that_fails_to_start_is_shown_with_its_log_and_the_others_are_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "directory.log").write_text("a line from an earlier run\n")
    directory = Component("directory", "services.directory.main", "DIRECTORY_PORT", free_port())
    env = {
        **os.environ,
        "DIRECTORY_PORT": str(directory.default_port),
        "DIRECTORY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'directory.db'}",
        "AUTH_DEV_DIR": str(tmp_path / "dev"),
        "DIRECTORY_DB_POOL_SIZE": "abc",
    }

    status = run_local.run(
        [stand_in("first", tmp_path), directory], log_dir=logs, environ=env, banner="BANNER"
    )

    output = capsys.readouterr()
    assert status == 1
    assert "== first serving" in output.out
    assert "BANNER" not in output.out
    assert "!! directory exited with 1 while starting" in output.err
    [cause] = [line for line in shown_log(output.err) if "DIRECTORY_DB_POOL_SIZE" in line]
    assert "abc" in cause
    assert "a line from an earlier run" not in output.err
    assert has_ended(tmp_path, "first")


def test_a_component_that_never_comes_up_is_shown_with_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    silent = stand_in("silent", tmp_path, "--never-listen", "--log-lines", "3")

    status = run_local.run([silent], log_dir=tmp_path / "log", environ=os.environ, start_seconds=1)

    output = capsys.readouterr()
    assert status == 1
    assert f"!! silent did not come up on {HOST}:{silent.default_port} within 1 s" in output.err
    assert shown_log(output.err) == ["stand-in line 1", "stand-in line 2", "stand-in line 3"]
    assert has_ended(tmp_path, "silent")


def test_a_component_that_dies_while_running_is_named_with_its_exit_code_and_log_and_all_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    steady = stand_in("steady", tmp_path)
    flaky = stand_in("flaky", tmp_path, "--log-lines", str(LOG_TAIL_LINES + 5), "--die-after-probe", "3")

    status = run_local.run([steady, flaky], log_dir=tmp_path / "log", environ=os.environ, banner="BANNER")

    output = capsys.readouterr()
    assert status == 1
    assert "BANNER" in output.out
    assert "!! flaky exited with 3;" in output.err
    assert "while starting" not in output.err
    written = [f"stand-in line {n}" for n in range(1, LOG_TAIL_LINES + 6)] + ["stand-in lost its database"]
    assert shown_log(output.err) == written[-LOG_TAIL_LINES:]
    assert "== steady stopped" in output.out
    assert has_ended(tmp_path, "steady")
