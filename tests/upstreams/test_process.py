"""`python -m upstreams` as a process: one line per listener when ready, serving, and a clean stop."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.ports import port_is_taken
from upstreams import CONTROL, credentials, layout

REPOSITORY = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "upstreams"]
LISTENERS = 13


def _free_base_port() -> int:
    """A base port whose thirteen ports (base … base + 11 and base + 99) are all free now.

    Drawn below the system's ephemeral range, where no port-0 listener or outgoing connection is given a
    port, so that nothing takes one of them while the process starts.
    """
    rng = random.Random()
    lowest_ephemeral = 32_768
    with contextlib.suppress(OSError, ValueError):
        lowest_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        base = rng.randrange(10_000, lowest_ephemeral - 100)
        if not any(port_is_taken(port) for port in layout(base).values()):
            return base
    pytest.skip("no run of free ports for the stand-ins")


def _environment(base: int, **overrides: str) -> dict[str, str]:
    return {
        **os.environ,
        "UPSTREAMS_BASE_PORT": str(base),
        "UPSTREAMS_PEOPLE": "300",
        "UPSTREAMS_CHANGES_PER_SECOND": "5",
        **overrides,
    }


def test_the_process_announces_each_listener_serves_and_stops_on_sigterm():
    base = _free_base_port()
    process = subprocess.Popen(
        COMMAND,
        cwd=REPOSITORY,
        env=_environment(base),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(LISTENERS)]
        if not all(lines):
            process.wait(timeout=15)
            pytest.fail(f"the process ended before it listened: {process.communicate()[1]}")
        ports = layout(base)
        answer = httpx.get(
            f"http://127.0.0.1:{ports['paraply-bromma']}/paraply/v1/persons/changes",
            params={"limit": 2},
            headers=credentials(2026).headers("paraply-bromma"),
            timeout=5,
        )
        control = httpx.get(
            f"http://127.0.0.1:{ports[CONTROL]}/control/instances",
            headers=credentials(2026).headers(CONTROL),
            timeout=5,
        )
        started = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
        stopping = time.perf_counter() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _, errors = process.communicate()

    assert [line.split()[1] for line in lines] == list(ports)
    assert all(line.rstrip().endswith(f":{port}") for line, port in zip(lines, ports.values(), strict=True))
    assert answer.status_code == 200
    assert len(answer.json()["items"]) == 2
    assert len(control.json()["instances"]) == LISTENERS - 1
    assert code == 0, errors
    assert stopping < 5
    # Secrets are never printed.
    assert credentials(2026).control_token not in errors


def test_a_bad_setting_is_named_and_nothing_starts():
    finished = subprocess.run(
        COMMAND,
        cwd=REPOSITORY,
        env=_environment(7000, UPSTREAMS_CHANGES_PER_SECOND="fast"),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert finished.returncode == 2
    assert "UPSTREAMS_CHANGES_PER_SECOND" in finished.stderr
    assert finished.stdout == ""
