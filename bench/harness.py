"""What every service benchmark stands on.

- `postgres_database()`: a throwaway PostgreSQL server with one empty database.
- `ServiceProcess`: a service (or the echo server) in a process of its own, so that the load generator and
  the server never share an event loop; started, waited on until it serves, stopped with SIGTERM.
- `run_load()`: a closed loop that keeps N calls in flight for a fixed time after a warm-up, in this
  process or spread over several client processes, and `LoadResult.summary()` with latency percentiles.
- `CpuMeter`: how many cores the client, the server and PostgreSQL used while the load ran, so a run
  says whether the client or the machine was the limit rather than the service.
- `EchoScenario` and `echo_server_process()`: the same load against a bare grpc.aio server on this machine,
  the ceiling a Python gRPC service could reach here.
- `measure_latency_target()`: a latency target measured at the rate it names, and again at that rate scaled
  by this run's echo figure, so that a slow or fast machine is not read as a slow or fast service.
- `emit()`: the one JSON line a benchmark prints on stdout; everything else goes to stderr.
- `exit_on_sigterm()`: a benchmark stopped with SIGTERM still stops its servers and deletes its folders.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import math
import multiprocessing
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.echo_server import ECHO_METHOD
from support.pgserver import PostgresServer

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
# Long enough for any call of a loaded service; a call that takes longer counts as an error.
CALL_TIMEOUT_S = 30.0
# The echo figure (calls/s, 32 in flight from one client process) of the machine the targets were set on.
# A run offers each latency target's rate once as written and once times its own echo figure over this.
REFERENCE_ECHO_CALLS_PER_S = 6000.0
# An offered load counts as served when at least this share of the calls due were answered in the window.
SERVED_SHARE = 0.98

_started = time.monotonic()

Call = Callable[[int], Awaitable[object]]
# CpuMeter's figures for the machine as a whole rather than for one group of processes.
MACHINE_FIGURES = frozenset({"machine", "others", "machine_cores"})


# ---- output -----------------------------------------------------------------------------------------------


def note(message: str) -> None:
    """A progress line on stderr; stdout is kept for the one line of results."""
    print(f"[{time.monotonic() - _started:6.1f} s] {message}", file=sys.stderr, flush=True)


def emit(result: Mapping[str, Any]) -> None:
    """Prints the benchmark's results as one line of JSON on stdout."""
    print(json.dumps(result, ensure_ascii=False, separators=(",", ":")), flush=True)


def exit_on_sigterm() -> None:
    """Turns SIGTERM into SystemExit, so that `finally` blocks still stop the servers and delete folders."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


# ---- PostgreSQL -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[tuple[PostgresServer, str]]:
    """A fresh PostgreSQL server with one empty database, and the database's SQLAlchemy URL.

    The server and its folder are gone when the block ends, however it ends.
    """
    server = PostgresServer()
    try:
        server.start()
        yield server, server.create_database(name)
    finally:
        server.stop()


def postgres_pids(server: PostgresServer) -> list[int]:
    """The postmaster and every process it started: the backends serving the pool's connections too."""
    if server.folder is None:
        return []
    try:
        postmaster = int((server.folder / "data" / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return []
    return with_children(postmaster)


# ---- processes --------------------------------------------------------------------------------------------


class ServiceProcess:
    """`python -m <module>` in a process of its own, serving gRPC on loopback.

    With a port, the caller has already told the service that port (through `env` or `args`). Without
    one the process must pick a free port itself (port 0) and print it as the first line on stdout, as
    the echo server does.
    Anything else the process writes goes to stderr, so that stdout stays the benchmark's.
    """

    def __init__(
        self,
        name: str,
        module: str,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        args: Sequence[str] = (),
    ):
        self.name = name
        self.module = module
        self.env = dict(env or {})
        self.port = port
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.name} has not said which port it listens on yet")
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.process.pid

    def start(self, *, timeout_s: float = 60.0) -> None:
        reads_port = self.port is None
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env={**os.environ, **self.env},
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if reads_port else sys.stderr.fileno(),
        )
        if reads_port:
            self.port = int(self._first_line(timeout_s))
        note(f"{self.name} started, pid {self.process.pid}, on {self.address}")

    def _first_line(self, timeout_s: float) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout_s):
                raise TimeoutError(f"{self.name} did not say its port within {timeout_s:.0f} s")
        line = self.process.stdout.readline().decode().strip()
        if not line.isdigit():
            raise RuntimeError(f"{self.name} exited with {self.process.wait()} before saying its port")
        return line

    async def wait_until_serving(self, *, timeout_s: float = 60.0, health: bool = True) -> None:
        """Waits for the health service to say SERVING, or only for a connection when `health` is False."""
        deadline = time.monotonic() + timeout_s
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.process is None or self.process.poll() is not None:
                    code = None if self.process is None else self.process.returncode
                    raise RuntimeError(f"{self.name} exited with {code} before serving")
                try:
                    if not health:
                        await asyncio.wait_for(channel.channel_ready(), timeout=1.0)
                        return
                    answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except (grpc.aio.AioRpcError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} was not serving within {timeout_s:.0f} s")
                await asyncio.sleep(0.1)

    def stop(self, *, timeout_s: float = 30.0) -> int | None:
        """Sends SIGTERM and waits; kills the process when it does not exit. Returns its exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                note(f"{self.name} did not exit within {timeout_s:.0f} s of SIGTERM; killing it")
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        note(f"{self.name} exited with {process.returncode}")
        return process.returncode


def with_children(pid: int) -> list[int]:
    """A process and those it started: a postmaster's backends, a service's workers."""
    return [pid, *children_of(pid)]


def wait_for_children(pid: int, count: int, running: str, *, timeout_s: float = 30.0) -> bool:
    """Until `count` processes started by `pid` run `running` (a module's name in their command line),
    such as a service's workers once it has migrated; False when they did not within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    wanted = running.encode()
    while time.monotonic() < deadline:
        found = 0
        for child in children_of(pid):
            with contextlib.suppress(OSError):
                found += wanted in Path(f"/proc/{child}/cmdline").read_bytes()
        if found >= count:
            return True
        time.sleep(0.05)
    return False


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and int(stat[1]) == pid:
            found.append(int(entry.name))
    return found


# ---- CPU --------------------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, starting with the state; None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _cpu_seconds(pid: int) -> float | None:
    stat = _proc_stat(pid)
    if stat is None:
        return None
    # utime and stime, the 14th and 15th fields, cover every thread of the process.
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float | None:
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    ticks = [int(value) for value in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores used by groups of processes between `opened()` and `closed()`, and by the whole machine.

    A group's processes are listed when the window opens, so the pool's connections must exist by then
    (they do after a warm-up). Where /proc cannot be read the figures are left out.
    """

    def __init__(self, groups: Mapping[str, Callable[[], Iterable[int]]]):
        self.groups = dict(groups)
        self.cores: dict[str, float] = {}
        self._pids: dict[str, list[int]] = {}
        self._before: dict[int, float] = {}
        self._machine: float | None = None
        self._opened_at = 0.0

    def opened(self) -> None:
        self._pids = {name: list(pids()) for name, pids in self.groups.items()}
        self._before = {}
        for pids in self._pids.values():
            for pid in pids:
                seconds = _cpu_seconds(pid)
                if seconds is not None:
                    self._before[pid] = seconds
        self._machine = _machine_busy_seconds()
        self._opened_at = time.monotonic()

    def closed(self) -> None:
        elapsed = time.monotonic() - self._opened_at
        if elapsed <= 0:
            return
        cores: dict[str, float] = {}
        for name, pids in self._pids.items():
            used = 0.0
            for pid in pids:
                after = _cpu_seconds(pid)
                if after is not None and pid in self._before:
                    used += after - self._before[pid]
            cores[name] = round(used / elapsed, 2)
        machine = _machine_busy_seconds()
        if machine is not None and self._machine is not None:
            busy = (machine - self._machine) / elapsed
            cores["machine"] = round(busy, 2)
            # Whatever else ran meanwhile: a large figure means the run competed for the cores.
            cores["others"] = round(max(0.0, busy - sum(cores[name] for name in self._pids)), 2)
        cores["machine_cores"] = float(os.cpu_count() or 0)
        self.cores = cores


# ---- the load generator -----------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """The calls that ended inside the measured window: their latencies, and errors by code."""

    duration_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_cores: dict[str, float] = field(default_factory=dict)

    @property
    def calls_per_s(self) -> float:
        return len(self.latencies_s) / self.duration_s if self.duration_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_s)
        result: dict[str, Any] = {
            "calls": len(ordered),
            "calls_per_s": round(self.calls_per_s, 1),
            "p50_ms": _ms(percentile(ordered, 50)),
            "p90_ms": _ms(percentile(ordered, 90)),
            "p99_ms": _ms(percentile(ordered, 99)),
            "max_ms": _ms(ordered[-1] if ordered else None),
            "mean_ms": _ms(sum(ordered) / len(ordered) if ordered else None),
            "errors": sum(self.errors.values()),
        }
        if self.errors:
            result["error_codes"] = dict(self.errors.most_common())
        if self.cpu_cores:
            result["cpu_cores"] = self.cpu_cores
            # CPU per call stays comparable when something else on the machine slows the run down.
            result["cpu_ms_per_call"] = {
                name: round(cores * 1000 / self.calls_per_s, 3)
                for name, cores in self.cpu_cores.items()
                if name not in MACHINE_FIGURES and self.calls_per_s > 0
            }
        return result


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile of values sorted in ascending order; None when there are none."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def error_name(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code().name
    return type(error).__name__


class Window(Protocol):
    def opened(self) -> None: ...

    def closed(self) -> None: ...


async def load_loop(
    call: Call,
    *,
    in_flight: int,
    duration_s: float,
    warmup_s: float,
    rate: float | None = None,
    window: Window | None = None,
) -> LoadResult:
    """Makes calls with at most `in_flight` under way, for warm-up plus duration, and times them.

    `call(n)` makes the n-th call; it raises to count an error. No call starts after the window; those
    under way are awaited, not counted.

    - Without `rate`, a closed loop at full speed: each call starts when the one before it ends, and the
      calls that end inside the window are counted. This gives throughput, and nothing more about
      latency: there, mean latency = in flight / throughput.
    - With `rate`, calls are due at `rate` per second, offered whether or not the server keeps up, and
      the calls due inside the window are counted. Each call is timed from when it was due, not from when
      a free slot let it start, so a server that falls behind shows it in the percentiles instead of
      slowing the clock that measures it (what wrk2 calls avoiding coordinated omission). This gives the
      latency at that load.
    """
    if rate is not None and rate <= 0:
        raise ValueError("the rate must be positive")
    numbers = itertools.count()
    result = LoadResult(duration_s=duration_s)
    begin = time.perf_counter()
    window_start = begin + warmup_s
    window_end = window_start + duration_s

    async def worker() -> None:
        while True:
            number = next(numbers)
            started = time.perf_counter() if rate is None else begin + number / rate
            if started >= window_end:
                return
            if started > time.perf_counter():
                await asyncio.sleep(started - time.perf_counter())
            failure: str | None = None
            try:
                await call(number)
            except Exception as error:
                failure = error_name(error)
            ended = time.perf_counter()
            if window_start <= (ended if rate is None else started) < window_end:
                if failure is None:
                    result.latencies_s.append(ended - started)
                else:
                    result.errors[failure] += 1

    async def watch_window() -> None:
        if window is None:
            return
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        window.opened()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        window.closed()

    await asyncio.gather(watch_window(), *(worker() for _ in range(in_flight)))
    return result


class Scenario(Protocol):
    """The calls one benchmark makes. It must pickle, since client processes each open it for themselves."""

    @property
    def name(self) -> str: ...

    def connect(self) -> contextlib.AbstractAsyncContextManager[Call]:
        """Opens a channel and yields the function that makes the n-th call."""
        ...


def run_load(
    scenario: Scenario,
    *,
    in_flight: int,
    duration_s: float,
    warmup_s: float,
    processes: int = 1,
    cpu_groups: Mapping[str, Callable[[], Iterable[int]]] | None = None,
    rate: float | None = None,
) -> LoadResult:
    """Runs the load with `in_flight` calls in all, in this process or split over client processes.

    Without `rate`, a closed loop at full speed (throughput); with it, calls due at `rate` per second in
    all (latency at that load, see `load_loop`). The CPU of the client processes is measured as the
    group "client", beside `cpu_groups`.
    """
    if processes < 1 or in_flight < processes:
        raise ValueError("need at least one client process and one call in flight per process")
    pace = f"{rate:g} calls/s offered" if rate else "full speed"
    note(
        f"{scenario.name}: {in_flight} in flight from {processes} client process(es), {pace}, "
        f"{warmup_s:g} s warm-up, {duration_s:g} s measured"
    )
    if processes == 1:
        meter = CpuMeter({"client": lambda: [os.getpid()], **(cpu_groups or {})})
        result = asyncio.run(_load_here(scenario, in_flight, duration_s, warmup_s, meter, rate))
    else:
        result = _load_in_processes(
            scenario, in_flight, duration_s, warmup_s, processes, cpu_groups or {}, rate
        )
    note(
        f"{scenario.name}: {result.calls_per_s:.0f} calls/s, p99 "
        f"{_ms(percentile(sorted(result.latencies_s), 99))} ms, {sum(result.errors.values())} errors"
    )
    return result


async def _load_here(
    scenario: Scenario,
    in_flight: int,
    duration_s: float,
    warmup_s: float,
    meter: CpuMeter | None,
    rate: float | None = None,
) -> LoadResult:
    async with scenario.connect() as call:
        # One call before the clock starts: it opens the connection and fails loudly on a wrong setup.
        await call(0)
        with _client_heap_frozen():
            result = await load_loop(
                call, rate=rate, in_flight=in_flight, duration_s=duration_s, warmup_s=warmup_s, window=meter
            )
    if meter is not None:
        result.cpu_cores = meter.cores
    return result


@contextlib.contextmanager
def _client_heap_frozen() -> Iterator[None]:
    """Keeps what the benchmark built before the load (a city, a million rows) out of the client's
    garbage collection, whose full passes over it paused every call in flight by up to 100 ms, which
    the percentiles then showed as the server's latency."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _client_process(
    scenario: Scenario,
    in_flight: int,
    duration_s: float,
    warmup_s: float,
    ready: Any,
    go: Any,
    results: Any,
    rate: float | None,
) -> None:
    async def run() -> LoadResult:
        async with scenario.connect() as call:
            await call(0)
            ready.set()
            await asyncio.to_thread(go.wait)
            with _client_heap_frozen():
                return await load_loop(
                    call, rate=rate, in_flight=in_flight, duration_s=duration_s, warmup_s=warmup_s
                )

    try:
        result = asyncio.run(run())
    except BaseException as error:
        results.put(("failed", f"{type(error).__name__}: {error}"))
        raise
    results.put(("done", (result.duration_s, result.latencies_s, dict(result.errors))))


def _load_in_processes(
    scenario: Scenario,
    in_flight: int,
    duration_s: float,
    warmup_s: float,
    processes: int,
    cpu_groups: Mapping[str, Callable[[], Iterable[int]]],
    rate: float | None,
) -> LoadResult:
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    results = context.Queue()
    shares = [in_flight // processes + (1 if i < in_flight % processes else 0) for i in range(processes)]
    clients = []
    readies = []
    try:
        for share in shares:
            ready = context.Event()
            client = context.Process(
                target=_client_process,
                # Each process offers its share of the rate.
                args=(
                    scenario,
                    share,
                    duration_s,
                    warmup_s,
                    ready,
                    go,
                    results,
                    rate * share / in_flight if rate else None,
                ),
                daemon=True,
            )
            client.start()
            clients.append(client)
            readies.append(ready)
        for ready, client in zip(readies, clients, strict=True):
            while not ready.wait(0.2):
                if not client.is_alive():
                    raise RuntimeError(f"a client process exited with {client.exitcode} before it was ready")
        meter = CpuMeter({"client": lambda: [c.pid for c in clients if c.pid], **cpu_groups})
        go.set()
        # The clients measure the same window by their own clocks; this one only samples the CPU.
        time.sleep(warmup_s)
        meter.opened()
        time.sleep(duration_s)
        meter.closed()
        merged = LoadResult(duration_s=duration_s, cpu_cores=meter.cores)
        for _ in clients:
            status, payload = results.get(timeout=duration_s + CALL_TIMEOUT_S + 30)
            if status != "done":
                raise RuntimeError(f"a client process failed: {payload}")
            _, latencies, errors = payload
            merged.latencies_s.extend(latencies)
            merged.errors.update(errors)
        return merged
    finally:
        for client in clients:
            client.join(timeout=10)
            if client.is_alive():
                client.terminate()
                client.join()
        results.close()


# ---- the echo baseline ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EchoScenario:
    """Unary calls to the bare echo server, with a payload about the size of a typical request."""

    address: str
    payload_bytes: int = 64
    name: str = "echo"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        payload = b"x" * self.payload_bytes
        async with grpc.aio.insecure_channel(self.address) as channel:
            # No serializers: the payload goes out and comes back as bytes.
            echo = channel.unary_unary(ECHO_METHOD, request_serializer=None, response_deserializer=None)

            async def call(n: int) -> None:
                await echo(payload, timeout=CALL_TIMEOUT_S)

            yield call


def echo_server_process() -> ServiceProcess:
    """The bare echo server (bench.echo_server), not started yet; it picks its own port when it starts."""
    return ServiceProcess("echo server", "bench.echo_server")


# ---- latency targets --------------------------------------------------------------------------------------


def scaled_rate(target_rate: float, echo_calls_per_s: float) -> float:
    """The target's rate as it would be offered on the reference machine, on a machine whose echo server
    answered `echo_calls_per_s` in this run."""
    if echo_calls_per_s <= 0:
        raise ValueError("the echo server answered no calls, so there is nothing to scale the rate by")
    return round(target_rate * echo_calls_per_s / REFERENCE_ECHO_CALLS_PER_S, 1)


def latency_met(summary: Mapping[str, Any], *, offered_per_s: float, p99_limit_ms: float) -> bool:
    """No errors, the offered calls answered (a server that falls behind has not met a latency target,
    whatever its percentiles say of the calls it did answer), and the p99 within the limit."""
    return (
        summary["errors"] == 0
        and summary["calls_per_s"] >= SERVED_SHARE * offered_per_s
        and summary["p99_ms"] is not None
        and summary["p99_ms"] <= p99_limit_ms
    )


def measure_latency_target(
    scenario: Scenario,
    *,
    rate: float,
    p99_limit_ms: float,
    echo: LoadResult,
    in_flight: int,
    duration_s: float,
    warmup_s: float,
    processes: int = 1,
    cpu_groups: Mapping[str, Callable[[], Iterable[int]]] | None = None,
) -> dict[str, Any]:
    """The latency at `rate` offered, and at `rate` scaled by `echo` (this run's echo baseline, measured
    with the same load at full speed), each judged against the same p99 limit.

    The absolute figure is the one the target names. The scaled one is what to compare between runs:
    the machine's speed varies by up to 40 % from one run to the next, and a latency measured at a fixed
    rate swings far more than that near the point where the server stops keeping up.
    """
    load: dict[str, Any] = {
        "in_flight": in_flight,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "processes": processes,
        "cpu_groups": cpu_groups,
    }
    scaled_per_s = scaled_rate(rate, echo.calls_per_s)
    absolute = run_load(scenario, rate=rate, **load).summary()
    scaled = run_load(scenario, rate=scaled_per_s, **load).summary()
    return {
        "offered_per_s": rate,
        "p99_limit_ms": p99_limit_ms,
        **absolute,
        "met": latency_met(absolute, offered_per_s=rate, p99_limit_ms=p99_limit_ms),
        "scaled": {
            "echo_calls_per_s": round(echo.calls_per_s, 1),
            "reference_echo_calls_per_s": REFERENCE_ECHO_CALLS_PER_S,
            "offered_per_s": scaled_per_s,
            **scaled,
            "met": latency_met(scaled, offered_per_s=scaled_per_s, p99_limit_ms=p99_limit_ms),
        },
    }


def name_value(text: str) -> tuple[str, str]:
    """An argparse type for NAME=VALUE (e.g. an extra environment variable for the service)."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def add_load_arguments(
    parser: argparse.ArgumentParser, *, duration: float, warmup: float = 2.0, client_processes: int = 1
) -> None:
    """The load's shape, the same options in every benchmark."""
    parser.add_argument("--in-flight", type=int, default=32, help="calls in flight at any time")
    parser.add_argument("--duration", type=float, default=duration, help="seconds measured per scenario")
    parser.add_argument("--warmup", type=float, default=warmup, help="seconds of load before measuring")
    parser.add_argument(
        "--client-processes", type=int, default=client_processes, help="processes sharing the load"
    )
