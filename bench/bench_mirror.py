"""The mirror under load: its first full sync, GetPersonOverview, RefreshPerson past a hang, freshness.

    python bench/bench_mirror.py [--in-flight 32] [--duration 8] [--client-processes 1] [--people 30000]

Starts a throwaway PostgreSQL, the upstream stand-ins (`python -m upstreams`: each district's Paraply and
Agresso, holding the synthetic city's `--people` care recipients) and the mirror in processes of their own.
The mirror runs with its production settings (a sync run every second, a settle period of 2 s, an overlap
of 60 s), in `--workers` processes on one port (2: one a core, as two replicas behind the Service, each
syncing the sources whose leases it holds; the figures' CPU is theirs together); the grant keys are a key
of the benchmark's own, published to the mirror as a JWKS file as the case service publishes its keys. The
overview's load goes over sixteen connections, each call on the one with the fewest calls under way (as a
least-request balancer sends them), so that both workers are kept busy whichever way the kernel spread the
connections between them. Then:

- Full sync: the mirror starts on an empty database, and the time from its start until every source has
  been read in full once (`full_sync_done` in its `sources` table, polled) gives the records stored per
  second. The stand-ins answer without delay and nothing changes upstream meanwhile; the mirror starts
  once the stand-ins are idle, after the few seconds in which they encode their records' JSON once.
- GetPersonOverview, each with its access-log entry: an agent's token and an access grant for the person,
  over `--grants` people drawn at random from the city. Throughput at full speed with `--in-flight` calls
  under way; latency with calls offered at the target's 300 per second (`--overview-rate`), at most
  `--in-flight` under way, each timed from when it was due (bench.harness.load_loop), and again at that
  rate scaled by this run's echo figure (bench.harness.measure_latency_target).
- The same facts from the stand-ins themselves, each set to answer in 40 ms plus up to 10 ms: one person
  read from the eleven Paraply instances and Agresso one after another, and all at once, for
  `--direct-persons` people, beside the overview's p50 with one call in flight (measured meanwhile, the
  stand-ins just as slow). Target: the overview at least ten times faster than reading one after another.
- RefreshPerson with one Paraply instance hanging (`--hang-source`) and a deadline of 800 ms, offered at
  `--refresh-rate` calls a second: p99 ≤ 850 ms, no DEADLINE_EXCEEDED, and the share of answers in which
  every other source was refreshed. Measured before freshness, while nothing changes upstream: each sync
  run reads its source's last minute again (the overlap), so for a minute after changes stop the mirror
  is still busy with them.
- Freshness: once every source has been read again since the hang, the stand-ins change
  `--change-rate` records a second in all (50), and the benchmark makes changes of its own through the
  control API at known moments, some committed late as the stand-ins' own are, polling the mirror's
  database until each is there. Each is timed from when it became visible upstream to when the mirror
  holds it (target: p99 ≤ 10 s).

Just before GetPersonOverview, the same load at full speed against a bare grpc.aio echo server gives this
run's echo figure. The client's HTTP reads go through a minimal keep-alive HTTP/1.1 client: httpx spends
milliseconds of CPU a request, which on this machine would be the client's time rather than the sources'.

Prints one line of JSON on stdout; progress goes to stderr. Exits 0 whether or not the targets are met,
and non-zero only when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
from aldredirekt.mirror.v1 import mirror_pb2 as pb

from bench.harness import (
    CALL_TIMEOUT_S,
    Call,
    CpuMeter,
    EchoScenario,
    LoadResult,
    ServiceProcess,
    add_load_arguments,
    echo_server_process,
    emit,
    exit_on_sigterm,
    latency_met,
    load_loop,
    measure_latency_target,
    name_value,
    note,
    percentile,
    postgres_database,
    postgres_pids,
    run_load,
    wait_for_children,
    with_children,
)
from services.common.auth import SigningKey, jwks_document
from services.common.devissuer import DevIssuer
from services.common.grants import GRANT_METADATA_KEY, GrantIssuer
from support.ports import HOST, free_port, port_is_taken
from synthcity.city import generate_city
from synthcity.people import generate_people
from upstreams import AGRESSO, CONTROL, credentials, instance_names, layout, sources_document

TARGETS = {
    "overview_calls_per_s": 1000,
    "overview_p99_ms": 30,
    "overview_rate_per_s": 300,
    "overview_speedup_vs_sequential": 10,
    "full_sync_records_per_s": 5000,
    "freshness_p99_s": 10,
    "refresh_p99_ms": 850,
    "refresh_others_refreshed_share": 1.0,
}

AGENT = "bench-agent"
# The case service's name as the issuer of grants (MIRROR_GRANT_ISSUER's default).
GRANT_ISSUER = "aldredirekt-case"
ALL_SCOPES = ("decisions", "fees", "providers", "officer", "invoices")
# Long enough for the whole run, whatever its arguments; the case service's grants live 30 minutes.
GRANT_LIFETIME = timedelta(hours=2)
# The seed the stand-ins derive their credentials from (UPSTREAMS_SECRET_SEED).
SECRET_SEED = 2026
SOURCES = len(instance_names())
OVERVIEW_METHOD = "/aldredirekt.mirror.v1.MirrorService/GetPersonOverview"
REFRESH_METHOD = "/aldredirekt.mirror.v1.MirrorService/RefreshPerson"
# The changes the benchmark times: the everyday ones, none that deletes what it changes.
TIMED_CHANGES = {
    "paraply": ("change_officer", "add_decision", "end_decision", "change_provider"),
    "agresso": ("pay_invoice", "add_invoice"),
}
# As the stand-ins' own mutator, a tenth of the timed changes commit late (upstreams.mutator.LATE_SHARE).
LATE_SHARE = 0.1
# How often the mirror's database is asked whether the timed changes are there.
POLL_S = 0.05
RECORD_COUNTS = (
    "SELECT source, count(*) AS n FROM person_records GROUP BY source"
    " UNION ALL SELECT source, count(*) AS n FROM invoices GROUP BY source"
)
HELD_PEOPLE = "SELECT source, record_id, updated_at FROM person_records WHERE record_id = ANY($1::text[])"
HELD_INVOICES = "SELECT source, record_id, updated_at FROM invoices WHERE record_id = ANY($1::text[])"


class UnexpectedAnswer(Exception):
    """The service answered, but not what the synthetic city says it should; counted as an error."""


# ---- GetPersonOverview and RefreshPerson ------------------------------------------------------------------


# Connections the overview's load is spread over, and how often an answer is decoded in full.
CONNECTIONS = 16
CHECK_EVERY = 7


def _reader_metadata(token: str, grant: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"), (GRANT_METADATA_KEY, grant))


@dataclass(frozen=True)
class OverviewScenario:
    """GetPersonOverview for one person after another, each with the agent's grant for that person."""

    address: str
    token: str
    # Each person's number and the access grant the agent holds for them.
    readers: tuple[tuple[str, str], ...]
    name: str = "GetPersonOverview"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        requests = [pb.GetPersonOverviewRequest(person_number=p).SerializeToString() for p, _ in self.readers]
        metadata = [_reader_metadata(self.token, grant) for _, grant in self.readers]
        # Several connections, as the callers of a service with several workers (or replicas) are: one
        # connection is served by one worker. Each channel its own connection (no shared subchannel).
        async with contextlib.AsyncExitStack() as stack:
            overviews = []
            for _ in range(CONNECTIONS):
                channel = await stack.enter_async_context(
                    grpc.aio.insecure_channel(self.address, options=[("grpc.use_local_subchannel_pool", 1)])
                )
                overviews.append(channel.unary_unary(OVERVIEW_METHOD, None, None))
            # The kernel hands each new connection to one of the workers at random: sent round the
            # connections in turn, calls went 5 to 3 or 6 to 2 between the workers in most runs, one worker
            # saturated and the other half idle. Each call goes where fewest are under way instead, so a
            # busier worker gets fewer, as behind a least-request balancer.
            under_way = [0] * CONNECTIONS

            async def call(n: int) -> None:
                index = n % len(requests)
                least = min(range(CONNECTIONS), key=under_way.__getitem__)
                under_way[least] += 1
                try:
                    raw = await overviews[least](
                        requests[index], metadata=metadata[index], timeout=CALL_TIMEOUT_S
                    )
                finally:
                    under_way[least] -= 1
                # Every answer is checked, one in CHECK_EVERY read in full: decoding a whole overview
                # costs the client more than the server's answer costs the network, and the client
                # shares the machine with the service.
                if n % CHECK_EVERY == 0 and not pb.GetPersonOverviewResponse.FromString(raw).overview.found:
                    raise UnexpectedAnswer("a person of the city was not found")
                if not raw:
                    raise UnexpectedAnswer("an empty answer")

            yield call


@dataclass
class RefreshTally:
    """What the answers of RefreshPerson said of the sources."""

    answers: int = 0
    # Answers in which every source but the hanging one was refreshed.
    others_refreshed: int = 0
    # Answers in which the hanging source was (it should never be).
    hanging_refreshed: int = 0
    # Sources other than the hanging one that were not refreshed, by name.
    missed: dict[str, int] = field(default_factory=dict)


async def refresh_load(
    address: str,
    token: str,
    readers: Sequence[tuple[str, str]],
    *,
    hanging: str,
    deadline_s: float,
    rate: float,
    in_flight: int,
    duration_s: float,
    meter: CpuMeter,
    hang: Callable[[bool], Awaitable[None]],
) -> tuple[LoadResult, RefreshTally]:
    """RefreshPerson offered at `rate` while `hang(True)` holds one source's requests, each call with the
    caller's deadline. No warm-up: the calls made are the calls counted, so the tally of their answers
    covers the same calls as the percentiles. `hang(False)` lets the source go again afterwards."""
    requests = [pb.RefreshPersonRequest(person_number=p).SerializeToString() for p, _ in readers]
    metadata = [_reader_metadata(token, grant) for _, grant in readers]
    tally = RefreshTally()
    async with grpc.aio.insecure_channel(address) as channel:
        refresh = channel.unary_unary(
            REFRESH_METHOD, request_serializer=None, response_deserializer=pb.RefreshPersonResponse.FromString
        )

        async def call(n: int, deadline: float = deadline_s) -> pb.RefreshPersonResponse:
            index = n % len(requests)
            answer: pb.RefreshPersonResponse = await refresh(
                requests[index], metadata=metadata[index], timeout=deadline
            )
            return answer

        async def counted(n: int) -> None:
            answer = await call(n)
            tally.answers += 1
            missed = [s.source for s in answer.overview.sources if s.source != hanging and not s.refreshed]
            for source in missed:
                tally.missed[source] = tally.missed.get(source, 0) + 1
            if not missed and len(answer.overview.sources) == SOURCES:
                tally.others_refreshed += 1
            if any(s.source == hanging and s.refreshed for s in answer.overview.sources):
                tally.hanging_refreshed += 1

        # One call before the source hangs and the clock starts: it opens the connections (the
        # mirror's to every source too) and fails loudly on a wrong setup, rather than being a call
        # the deadline cut off before any was measured.
        await call(len(requests) - 1, deadline=CALL_TIMEOUT_S)
        await hang(True)
        try:
            result = await load_loop(
                counted, rate=rate, in_flight=in_flight, duration_s=duration_s, warmup_s=0.0, window=meter
            )
        finally:
            await hang(False)
    result.cpu_cores = meter.cores
    return result, tally


# ---- the stand-ins ----------------------------------------------------------------------------------------


def _free_base_port() -> int:
    """A base port whose thirteen ports (base … base + 11 and base + 99) are all free now, drawn below the
    system's ephemeral range so that no port-0 listener or outgoing connection takes one meanwhile."""
    rng = random.Random()
    lowest_ephemeral = 32_768
    with contextlib.suppress(OSError, ValueError):
        lowest_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        base = rng.randrange(10_000, lowest_ephemeral - 100)
        if not any(port_is_taken(port) for port in layout(base).values()):
            return base
    raise RuntimeError("no run of thirteen free ports for the stand-ins")


def _control(url: str, token: str) -> httpx.AsyncClient:
    """The stand-ins' control listener; a few calls a second at most, so httpx's cost does not matter."""
    return httpx.AsyncClient(base_url=url, headers={"X-Control-Token": token}, timeout=CALL_TIMEOUT_S)


async def wait_for_stand_ins(url: str, token: str, process: ServiceProcess, timeout_s: float = 180.0) -> None:
    """Waits until the control listener answers and says every instance serves."""
    deadline = time.monotonic() + timeout_s
    async with _control(url, token) as control:
        while True:
            if process.process is None or process.process.poll() is not None:
                raise RuntimeError(f"{process.name} exited before serving")
            with contextlib.suppress(httpx.HTTPError):
                answer = await control.get("/control/instances", timeout=1.0)
                if answer.status_code == 200 and all(i["serving"] for i in answer.json()["instances"]):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{process.name} did not serve within {timeout_s:.0f} s")
            await asyncio.sleep(0.2)


def wait_until_idle(process: ServiceProcess, *, below_cores: float = 0.1, timeout_s: float = 30.0) -> float:
    """Waits until `process` uses less than `below_cores` over half a second; returns how long it took.

    The stand-ins encode every record's JSON once after they listen; a sync started meanwhile would be
    measured against sources busy with that rather than answering as they do afterwards.
    """
    began = time.monotonic()
    meter = CpuMeter({"process": lambda: [process.pid]})
    while time.monotonic() - began < timeout_s:
        meter.opened()
        time.sleep(0.5)
        meter.closed()
        if meter.cores.get("process", 0.0) < below_cores:
            break
    return time.monotonic() - began


async def set_knobs(url: str, token: str, instances: Sequence[str], **knobs: Any) -> None:
    async with _control(url, token) as control:
        for instance in instances:
            answer = await control.put(f"/control/instances/{instance}/knobs", json=knobs)
            answer.raise_for_status()


async def upstream_counts(url: str, token: str) -> dict[str, dict[str, Any]]:
    """Each instance's stats: its records and the changes applied so far."""
    async with _control(url, token) as control:
        found = {}
        for instance in instance_names():
            answer = await control.get(f"/control/instances/{instance}/stats")
            answer.raise_for_status()
            found[instance] = answer.json()
        return found


class KeptAlive:
    """One keep-alive HTTP/1.1 connection for GETs, the way bench_gateway's client reads: tens of
    microseconds of CPU a request, where httpx spent milliseconds."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, base_url: str) -> KeptAlive:
        host, _, port = base_url.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def get(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        at = lowered.find(b"\r\ncontent-length:")
        if at < 0:
            raise UnexpectedAnswer("no content-length")
        end = lowered.index(b"\r\n", at + 2)
        return status, await self.reader.readexactly(int(lowered[at + 17 : end]))

    def close(self) -> None:
        self.writer.close()


def _get(path: str, headers: Mapping[str, str]) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {HOST}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _person_path(instance: str, person_number: str) -> str:
    if instance == AGRESSO:
        return f"/agresso/v1/transactions?person_number={person_number}"
    return f"/paraply/v1/persons?person_number={person_number}"


@dataclass
class DirectReads:
    sequential_s: list[float] = field(default_factory=list)
    parallel_s: list[float] = field(default_factory=list)
    # Reads in which no Paraply instance held the person: the benchmark would be reading the wrong people.
    not_found: int = 0


async def read_directly(urls: Mapping[str, str], people: Sequence[str]) -> DirectReads:
    """Each person from every instance, one after another and then all at once, on connections kept
    alive as an agent's browser would keep them; each answer decoded as a client would have to."""
    secrets = credentials(SECRET_SEED)
    names = instance_names()
    connections = {name: await KeptAlive.open(urls[name]) for name in names}
    reads = DirectReads()

    async def read(name: str, person: str) -> int:
        status, body = await connections[name].get(_get(_person_path(name, person), secrets.headers(name)))
        if status != 200:
            raise UnexpectedAnswer(f"{name} answered {status}")
        return len(json.loads(body)["items"]) if name != AGRESSO else 0

    try:
        # Once untimed: the connections open and the stand-ins' paths are warm.
        await asyncio.gather(*(read(name, people[0]) for name in names))
        for person in people:
            began = time.perf_counter()
            found = 0
            for name in names:
                found += await read(name, person)
            reads.sequential_s.append(time.perf_counter() - began)
            began = time.perf_counter()
            await asyncio.gather(*(read(name, person) for name in names))
            reads.parallel_s.append(time.perf_counter() - began)
            reads.not_found += found == 0
    finally:
        for connection in connections.values():
            connection.close()
    return reads


def _timings(seconds: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(seconds)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "reads": len(ordered),
        "mean_ms": ms(statistics.fmean(ordered)) if ordered else None,
        "p50_ms": ms(percentile(ordered, 50)),
        "p90_ms": ms(percentile(ordered, 90)),
        "max_ms": ms(ordered[-1] if ordered else None),
    }


# ---- the mirror's database --------------------------------------------------------------------------------


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass
class FullSync:
    seconds: float = 0.0
    serving_s: float = 0.0
    # When each source had been read in full, in seconds from the mirror's start.
    done_s: dict[str, float] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    cpu_cores: dict[str, float] = field(default_factory=dict)


async def watch_full_sync(
    mirror: ServiceProcess, database_url: str, began: float, *, timeout_s: float
) -> FullSync:
    """Polls the mirror's `sources` table until every source says its full sync is done."""
    found = FullSync()
    await mirror.wait_until_serving(timeout_s=timeout_s)
    found.serving_s = time.perf_counter() - began
    connection = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        while len(found.done_s) < SOURCES:
            if mirror.process is None or mirror.process.poll() is not None:
                raise RuntimeError("the mirror exited during its first sync")
            for row in await connection.fetch("SELECT name, full_sync_done FROM sources"):
                if row["full_sync_done"] and row["name"] not in found.done_s:
                    found.done_s[row["name"]] = round(time.perf_counter() - began, 2)
            if time.perf_counter() - began > timeout_s:
                raise TimeoutError(f"the first sync did not end within {timeout_s:.0f} s")
            await asyncio.sleep(0.1)
        found.seconds = time.perf_counter() - began
        for row in await connection.fetch(RECORD_COUNTS):
            found.records[row["source"]] = int(row["n"])
        found.quarantined = int(await connection.fetchval("SELECT count(*) FROM quarantine"))
    finally:
        await connection.close()
    return found


async def wait_for_sources_in_step(database_url: str, since: datetime, *, timeout_s: float) -> float | None:
    """Waits until every source has had a successful sync run since `since`; returns how long that took,
    or None when some had not within `timeout_s` (the figures measured next then show it)."""
    began = time.perf_counter()
    connection = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        while time.perf_counter() - began < timeout_s:
            rows = await connection.fetch("SELECT last_success_time FROM sources")
            if len(rows) == SOURCES and all(
                r["last_success_time"] is not None and r["last_success_time"] >= since for r in rows
            ):
                return round(time.perf_counter() - began, 2)
            await asyncio.sleep(0.2)
    finally:
        await connection.close()
    return None


async def count_access_entries(database_url: str, action: str) -> int:
    connection = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        return int(
            await connection.fetchval("SELECT count(*) FROM access_log WHERE action LIKE $1", f"{action}%")
        )
    finally:
        await connection.close()


# ---- freshness --------------------------------------------------------------------------------------------


@dataclass
class Change:
    """A change the benchmark made upstream, and when the mirror was found holding it."""

    source: str
    record_id: str
    updated_at: datetime
    # When the change became visible upstream, by this process's clock: no earlier than the request that
    # made it was sent (and for a late commit, its delay after that), so the figure is never flattering.
    visible: float
    late: bool
    seen: float | None = None
    deleted_since: bool = False


@dataclass
class Freshness:
    changes: list[Change] = field(default_factory=list)
    refused: int = 0
    window_s: float = 0.0
    # Changes applied upstream during the window, by the stand-ins' own counts (the mutator's and ours).
    upstream_changes: int = 0
    cpu_cores: dict[str, float] = field(default_factory=dict)


async def make_change(
    control: httpx.AsyncClient, instance: str, rng: random.Random, late_seconds: float
) -> list[Change] | None:
    kind = "agresso" if instance == AGRESSO else "paraply"
    op = rng.choice(TIMED_CHANGES[kind])
    body: dict[str, Any] = {"op": op}
    if rng.random() < LATE_SHARE:
        body = {"op": "late_commit", "change": op, "seconds": late_seconds}
    sent = time.perf_counter()
    answer = await control.post(f"/control/instances/{instance}/mutations", json=body)
    if answer.status_code != 200:
        # Nothing fitted this draw, or the record drawn has a late commit pending: draw again next time.
        return None
    made = answer.json()
    changes = []
    for change in made["changes"]:
        if change["deleted"]:
            continue
        updated = datetime.fromisoformat(change["updated_at"])
        delay = 0.0
        if change["visible_at"] is not None:
            delay = (datetime.fromisoformat(change["visible_at"]) - updated).total_seconds()
        changes.append(
            Change(change["instance"], change["id"], updated, sent + delay, late=bool(made["late"]))
        )
    return changes


async def poll_mirror(connection: asyncpg.Connection, pending: list[Change]) -> None:
    """Marks the changes the mirror now holds: the record with this version or a later one."""
    asked = time.perf_counter()
    for query, of_agresso in ((HELD_PEOPLE, False), (HELD_INVOICES, True)):
        wanted = [c for c in pending if (c.source == AGRESSO) == of_agresso and c.seen is None]
        if not wanted:
            continue
        rows = await connection.fetch(query, [c.record_id for c in wanted])
        held = {(row["source"], row["record_id"]): row["updated_at"] for row in rows}
        for change in wanted:
            stored = held.get((change.source, change.record_id))
            # The rows were committed before the query began: seen no later than when it was sent.
            if stored is not None and stored >= change.updated_at:
                change.seen = asked


async def measure_freshness(
    *,
    control_url: str,
    token: str,
    urls: Mapping[str, str],
    database_url: str,
    cpu: CpuMeter,
    warmup_s: float,
    duration_s: float,
    changes_per_s: float,
    late_seconds: float,
    give_up_s: float,
    seed: int,
) -> Freshness:
    """While the stand-ins' mutator runs, makes `changes_per_s` changes of its own at random instances and
    polls the mirror's database until each is there (or `give_up_s` after the last)."""
    rng = random.Random(seed)
    names = instance_names()
    found = Freshness()
    before = await upstream_counts(control_url, token)
    connection = await asyncpg.connect(_asyncpg_dsn(database_url))
    async with _control(control_url, token) as control:
        await asyncio.sleep(warmup_s)
        began = time.perf_counter()
        cpu.opened()
        stop_making = began + duration_s

        async def keep_changing() -> None:
            number = 0
            while (due := began + number / changes_per_s) < stop_making:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                made = await make_change(control, rng.choice(names), rng, late_seconds)
                if made is None:
                    found.refused += 1
                else:
                    found.changes.extend(made)
                number += 1

        async def keep_polling() -> None:
            while time.perf_counter() < stop_making or any(c.seen is None for c in found.changes):
                if time.perf_counter() > stop_making + give_up_s:
                    return
                await poll_mirror(connection, found.changes)
                await asyncio.sleep(POLL_S)

        try:
            await asyncio.gather(keep_changing(), keep_polling())
        finally:
            await connection.close()
        cpu.closed()
        found.window_s = time.perf_counter() - began
        found.cpu_cores = cpu.cores
        after = await upstream_counts(control_url, token)
        found.upstream_changes = sum(
            after[name]["changes_applied"] - before[name]["changes_applied"] for name in names
        )
        # A change the mirror never showed may have been deleted upstream by the mutator since: that one
        # says nothing of the mirror's freshness.
        secrets = credentials(SECRET_SEED)
        async with httpx.AsyncClient(timeout=CALL_TIMEOUT_S) as sources:
            for change in found.changes:
                if change.seen is None:
                    path = "/agresso/v1/transactions" if change.source == AGRESSO else "/paraply/v1/persons"
                    answer = await sources.get(
                        f"{urls[change.source]}{path}/{change.record_id}",
                        headers=secrets.headers(change.source),
                    )
                    change.deleted_since = answer.status_code == 404
    return found


def _freshness_summary(found: Freshness, target_s: float) -> dict[str, Any]:
    timed = [c for c in found.changes if not c.deleted_since]
    lags = sorted(c.seen - c.visible for c in timed if c.seen is not None)
    late = sorted(c.seen - c.visible for c in timed if c.seen is not None and c.late)
    unseen = sum(1 for c in timed if c.seen is None)

    def s(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    p99 = percentile(lags, 99)
    return {
        "changes_timed": len(timed),
        "changes_unseen": unseen,
        "deleted_upstream_since": len(found.changes) - len(timed),
        "changes_refused_upstream": found.refused,
        "p50_s": s(percentile(lags, 50)),
        "p90_s": s(percentile(lags, 90)),
        "p99_s": s(p99),
        "max_s": s(lags[-1] if lags else None),
        "min_s": s(lags[0] if lags else None),
        "late_commits": {
            "changes": len(late),
            "p50_s": s(percentile(late, 50)),
            "max_s": s(late[-1] if late else None),
        },
        "upstream_changes_per_s": round(found.upstream_changes / found.window_s, 1)
        if found.window_s
        else None,
        "window_s": round(found.window_s, 1),
        "cpu_cores": found.cpu_cores,
        "met": unseen == 0 and p99 is not None and p99 <= target_s,
    }


# ---- the run ----------------------------------------------------------------------------------------------


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_load_arguments(parser, duration=8.0)
    parser.add_argument("--city-seed", type=int, default=2026)
    parser.add_argument("--officers", type=int, default=400)
    parser.add_argument("--people", type=int, default=30_000, help="care recipients the stand-ins hold")
    parser.add_argument("--grants", type=int, default=2000, help="people read, each with a grant")
    parser.add_argument(
        "--overview-rate",
        type=float,
        default=float(TARGETS["overview_rate_per_s"]),
        help="GetPersonOverview calls offered per second for the latency measurement",
    )
    parser.add_argument("--direct-persons", type=int, default=10, help="people read from every stand-in")
    parser.add_argument("--source-latency-ms", type=float, default=40.0, help="the stand-ins' delay then")
    parser.add_argument("--source-jitter-ms", type=float, default=10.0, help="and their extra delay")
    parser.add_argument("--change-rate", type=float, default=50.0, help="changes a second upstream, in all")
    parser.add_argument("--timed-changes", type=float, default=3.0, help="timed changes a second of ours")
    parser.add_argument("--freshness-warmup", type=float, default=5.0, help="seconds of changes first")
    parser.add_argument("--freshness-duration", type=float, default=20.0, help="seconds of timed changes")
    parser.add_argument("--hang-source", default="paraply-farsta", help="the instance that hangs")
    parser.add_argument("--refresh-deadline", type=float, default=0.8, help="RefreshPerson's deadline, s")
    parser.add_argument("--refresh-rate", type=float, default=10.0, help="RefreshPerson calls a second")
    parser.add_argument("--refresh-duration", type=float, default=20.0, help="seconds of RefreshPerson")
    parser.add_argument("--refresh-in-flight", type=int, default=16, help="RefreshPerson calls at most")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="mirror processes serving one port (MIRROR_WORKERS), as replicas behind a Service",
    )
    parser.add_argument("--sync-timeout", type=float, default=600.0, help="seconds the first sync may take")
    parser.add_argument(
        "--server-env",
        type=name_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for the mirror, e.g. OTEL_SDK_DISABLED=true",
    )
    return parser.parse_args()


def mint_grants(key: SigningKey, people: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """A grant for each person, as the case service signs one once consent is recorded."""
    issuer = GrantIssuer(key, issuer=GRANT_ISSUER, ttl=GRANT_LIFETIME)
    now = datetime.now(UTC)
    readers = []
    for index, person in enumerate(people):
        grant, _ = issuer.issue(
            grant_id=f"bench-grant-{index}",
            agent=AGENT,
            person_number=person,
            case=f"cases/bench-{index}",
            scopes=ALL_SCOPES,
            now=now,
        )
        readers.append((person, grant))
    return tuple(readers)


@contextlib.contextmanager
def _stopped_last(processes: list[ServiceProcess], exits: dict[str, int | None]) -> Iterator[None]:
    """Stops the processes started in the block, the last started first, and keeps their exit statuses."""
    try:
        yield
    finally:
        for process in reversed(processes):
            exits[process.name] = process.stop()


def _full_sync_summary(sync: FullSync, upstream: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    records = sum(sync.records.values())
    expected = {name: int(stats["records"]) for name, stats in upstream.items()}
    per_s = records / sync.seconds if sync.seconds else 0.0
    paraply = [seconds for name, seconds in sync.done_s.items() if name != AGRESSO]
    return {
        "records": records,
        "person_records": sum(n for name, n in sync.records.items() if name != AGRESSO),
        "invoices": sync.records.get(AGRESSO, 0),
        "upstream_records": sum(expected.values()),
        "complete": all(sync.records.get(name, 0) == n for name, n in expected.items()),
        "quarantined": sync.quarantined,
        "seconds": round(sync.seconds, 2),
        "serving_after_s": round(sync.serving_s, 2),
        "records_per_s": round(per_s, 1),
        "agresso_done_s": sync.done_s.get(AGRESSO),
        "last_paraply_done_s": max(paraply) if paraply else None,
        "cpu_cores": sync.cpu_cores,
        "met": per_s >= TARGETS["full_sync_records_per_s"],
    }


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("calls", "calls_per_s", "p50_ms", "p90_ms", "p99_ms", "errors", "error_codes", "cpu_ms_per_call")
    return {key: summary[key] for key in keys if key in summary}


def main() -> int:
    arguments = _arguments()
    exit_on_sigterm()
    extra_env = dict(arguments.server_env)
    load = {
        "in_flight": arguments.in_flight,
        "duration_s": arguments.duration,
        "warmup_s": arguments.warmup,
        "processes": arguments.client_processes,
    }
    # One call at a time shows the service time itself, without queueing behind the other calls.
    one_at_a_time = {**load, "in_flight": 1, "processes": 1, "duration_s": min(arguments.duration, 5.0)}
    # The same people the stand-ins hold (generate_care_city draws them so), a sample of them read.
    city = generate_city(seed=arguments.city_seed, officers=arguments.officers)
    everyone = [p.person_number for p in generate_people(city, arguments.people, seed=arguments.city_seed)]
    chosen = random.Random(arguments.city_seed).sample(everyone, min(arguments.grants, len(everyone)))
    secrets = credentials(SECRET_SEED)
    ports = layout(_free_base_port())
    urls = {name: f"http://{HOST}:{port}" for name, port in ports.items()}
    control_url, control_token = urls[CONTROL], secrets.control_token
    names = instance_names()
    with (
        tempfile.TemporaryDirectory(prefix="bench-mirror-") as folder,
        postgres_database("mirror") as (postgres, database_url),
    ):
        root = Path(folder)
        dev_dir = root / "dev-issuer"
        grant_key = SigningKey.generate()
        (root / "sources.json").write_text(json.dumps(sources_document(urls)))
        (root / "grant-keys.jwks.json").write_text(json.dumps(jwks_document([grant_key])))
        token = DevIssuer.load_or_create(dev_dir).mint(role="agent", subject=AGENT, ttl_seconds=7200)
        readers = mint_grants(grant_key, chosen)
        mirror_port = free_port()
        stand_ins = ServiceProcess(
            "stand-ins",
            "upstreams",
            port=ports[CONTROL],
            env={
                "UPSTREAMS_BASE_PORT": str(ports[AGRESSO]),
                "UPSTREAMS_SEED": str(arguments.city_seed),
                "UPSTREAMS_PEOPLE": str(arguments.people),
                "UPSTREAMS_OFFICERS": str(arguments.officers),
                "UPSTREAMS_SECRET_SEED": str(SECRET_SEED),
                # Still data for the first sync; the freshness measurement sets each instance's rate.
                "UPSTREAMS_CHANGES_PER_SECOND": "0",
            },
        )
        mirror = ServiceProcess(
            "mirror",
            "services.mirror.main",
            port=mirror_port,
            env={
                "MIRROR_PORT": str(mirror_port),
                "MIRROR_DATABASE_URL": database_url,
                "MIRROR_SOURCES_FILE": str(root / "sources.json"),
                "MIRROR_GRANT_JWKS": str(root / "grant-keys.jwks.json"),
                "AUTH_DEV": "true",
                "AUTH_DEV_DIR": str(dev_dir),
                "LOG_LEVEL": "WARNING",
                "MIRROR_GRACE_SECONDS": "2",
                "MIRROR_WORKERS": str(arguments.workers),
                **secrets.environment(),
                **extra_env,
            },
        )
        echo = echo_server_process()

        def mirror_pids() -> list[int]:
            # With several workers the started process only waits on them: they do the work.
            return with_children(mirror.pid)

        started: list[ServiceProcess] = []
        exits: dict[str, int | None] = {}
        with _stopped_last(started, exits):
            stand_ins.start()
            started.append(stand_ins)
            asyncio.run(wait_for_stand_ins(control_url, control_token, stand_ins))
            note(f"stand-ins idle after {wait_until_idle(stand_ins):.1f} s more")
            upstream = asyncio.run(upstream_counts(control_url, control_token))

            note(f"the mirror's first sync of {sum(s['records'] for s in upstream.values()):,} records")
            sync_cpu = CpuMeter({"mirror": mirror_pids, "stand_ins": lambda: [stand_ins.pid]})
            began = time.perf_counter()
            mirror.start()
            started.append(mirror)
            # The workers start after the migration; their CPU is the sync's.
            if arguments.workers > 1 and not wait_for_children(
                mirror.pid, arguments.workers, "services.mirror.main"
            ):
                note(f"the mirror's {arguments.workers} workers were not all running after 30 s")
            sync_cpu.opened()
            sync = asyncio.run(watch_full_sync(mirror, database_url, began, timeout_s=arguments.sync_timeout))
            sync_cpu.closed()
            sync.cpu_cores = sync_cpu.cores
            note(f"first sync: {sum(sync.records.values()):,} records in {sync.seconds:.1f} s")

            # Measured here rather than first, to be as close in time as it can to the latency it scales.
            echo.start()
            asyncio.run(echo.wait_until_serving(health=False))
            echo_result = run_load(
                EchoScenario(echo.address), cpu_groups={"server": lambda: [echo.pid]}, **load
            )
            echo.stop()

            cpu = {
                "server": mirror_pids,
                "postgres": lambda: postgres_pids(postgres),
                "stand_ins": lambda: [stand_ins.pid],
            }
            overview = OverviewScenario(mirror.address, token, readers)
            overview_full = run_load(overview, cpu_groups=cpu, **load)
            overview_paced = measure_latency_target(
                overview,
                rate=arguments.overview_rate,
                p99_limit_ms=TARGETS["overview_p99_ms"],
                echo=echo_result,
                cpu_groups=cpu,
                **load,
            )

            note(
                f"the stand-ins answer in {arguments.source_latency_ms:g} ms plus up to "
                f"{arguments.source_jitter_ms:g} ms: reading {arguments.direct_persons} people from each"
            )
            asyncio.run(
                set_knobs(
                    control_url,
                    control_token,
                    names,
                    latency_ms=arguments.source_latency_ms,
                    jitter_ms=arguments.source_jitter_ms,
                )
            )
            direct = asyncio.run(read_directly(urls, chosen[: arguments.direct_persons]))
            overview_alone = run_load(overview, cpu_groups=cpu, **one_at_a_time)
            asyncio.run(set_knobs(control_url, control_token, names, latency_ms=0, jitter_ms=0))

            # Before the freshness measurement, not after: each sync run reads its source's last minute
            # again (the overlap), so for a minute after the changes stop the mirror would still be
            # busy with the freshness measurement's changes, and RefreshPerson measured against that.
            note(
                f"RefreshPerson with {arguments.hang_source} hanging: {arguments.refresh_rate:g} calls/s "
                f"offered for {arguments.refresh_duration:g} s, deadline {arguments.refresh_deadline:g} s"
            )

            async def hang(on: bool) -> None:
                await set_knobs(control_url, control_token, [arguments.hang_source], hang=on)

            refresh_result, tally = asyncio.run(
                refresh_load(
                    mirror.address,
                    token,
                    readers,
                    hanging=arguments.hang_source,
                    deadline_s=arguments.refresh_deadline,
                    rate=arguments.refresh_rate,
                    in_flight=arguments.refresh_in_flight,
                    duration_s=arguments.refresh_duration,
                    meter=CpuMeter(cpu),
                    hang=hang,
                )
            )
            # The hanging source's sync failed meanwhile and backs off: freshness is measured once every
            # source has been read again since it was let go.
            in_step_s = asyncio.run(wait_for_sources_in_step(database_url, datetime.now(UTC), timeout_s=90))
            note(
                "every source in step again"
                if in_step_s is not None
                else "some source was not read again within 90 s; measuring freshness anyway"
            )

            note(
                f"freshness: {arguments.change_rate:g} changes a second upstream, "
                f"{arguments.timed_changes:g} a second of them timed"
            )
            asyncio.run(
                set_knobs(
                    control_url, control_token, names, changes_per_second=arguments.change_rate / len(names)
                )
            )
            fresh = asyncio.run(
                measure_freshness(
                    control_url=control_url,
                    token=control_token,
                    urls=urls,
                    database_url=database_url,
                    cpu=CpuMeter(cpu),
                    warmup_s=arguments.freshness_warmup,
                    duration_s=arguments.freshness_duration,
                    changes_per_s=arguments.timed_changes,
                    late_seconds=2.0,
                    give_up_s=3 * TARGETS["freshness_p99_s"],
                    seed=arguments.city_seed,
                )
            )
            asyncio.run(set_knobs(control_url, control_token, names, changes_per_second=0))
            access_entries = asyncio.run(count_access_entries(database_url, "mirror.GetPersonOverview"))

    full_sync = _full_sync_summary(sync, upstream)
    full = overview_full.summary()
    alone = overview_alone.summary()
    sequential, parallel = _timings(direct.sequential_s), _timings(direct.parallel_s)
    overview_p50 = alone["p50_ms"]
    speedup = round(sequential["p50_ms"] / overview_p50, 1) if overview_p50 and sequential["p50_ms"] else None
    freshness = _freshness_summary(fresh, TARGETS["freshness_p99_s"])
    refresh = refresh_result.summary()
    others_share = round(tally.others_refreshed / tally.answers, 4) if tally.answers else None
    met = {
        "overview_calls_per_s": full["errors"] == 0
        and full["calls_per_s"] >= TARGETS["overview_calls_per_s"],
        "overview_p99_ms": overview_paced["met"],
        "overview_speedup_vs_sequential": speedup is not None
        and speedup >= TARGETS["overview_speedup_vs_sequential"]
        and alone["errors"] == 0,
        "full_sync_records_per_s": full_sync["met"] and full_sync["complete"],
        "freshness_p99_s": freshness["met"],
        "refresh_p99_ms": latency_met(
            refresh, offered_per_s=arguments.refresh_rate, p99_limit_ms=TARGETS["refresh_p99_ms"]
        ),
        "refresh_others_refreshed_share": others_share is not None
        and others_share >= TARGETS["refresh_others_refreshed_share"],
    }
    # Each target's figure, beside it in `targets` and `targets_detail` (the sections say more of each).
    figures = {
        "overview_calls_per_s": full["calls_per_s"],
        "overview_p99_ms": overview_paced["p99_ms"],
        "overview_speedup_vs_sequential": speedup,
        "full_sync_records_per_s": full_sync["records_per_s"],
        "freshness_p99_s": freshness["p99_s"],
        "refresh_p99_ms": refresh["p99_ms"],
        "refresh_others_refreshed_share": others_share,
    }
    # Every answered GetPersonOverview was logged before it left, so there are at least as many entries
    # as calls counted (the warm-ups' and the calls outside the windows add more).
    counted = full["calls"] + overview_paced["calls"] + overview_paced["scaled"]["calls"] + alone["calls"]
    emit(
        {
            "benchmark": "mirror",
            "database": "postgresql",
            "people": arguments.people,
            "mirror_workers": arguments.workers,
            "in_flight": arguments.in_flight,
            "client_processes": arguments.client_processes,
            "warmup_s": arguments.warmup,
            "duration_s": arguments.duration,
            "full_sync": full_sync,
            "person_overview": {
                "people_with_grants": len(readers),
                "full_speed": full,
                "at_offered_rate": overview_paced,
                "one_in_flight": _brief(alone),
                "access_log_entries": access_entries,
                "calls_counted": counted,
                "every_counted_call_logged": access_entries >= counted,
            },
            "read_from_sources": {
                "people": len(direct.sequential_s),
                "sources": len(names),
                "source_latency_ms": arguments.source_latency_ms,
                "source_jitter_ms": arguments.source_jitter_ms,
                "sequential": sequential,
                "parallel": parallel,
                "not_found": direct.not_found,
                "overview_p50_ms": overview_p50,
                "speedup_vs_sequential": speedup,
                "speedup_vs_parallel": round(parallel["p50_ms"] / overview_p50, 1) if overview_p50 else None,
            },
            "freshness": {
                "changes_per_s": arguments.change_rate,
                "timed_changes_per_s": arguments.timed_changes,
                "warmup_s": arguments.freshness_warmup,
                "sources_in_step_after_s": in_step_s,
                **freshness,
            },
            "refresh_with_hanging_source": {
                "hanging": arguments.hang_source,
                "deadline_ms": round(arguments.refresh_deadline * 1000),
                "offered_per_s": arguments.refresh_rate,
                **refresh,
                "deadline_exceeded": refresh_result.errors.get("DEADLINE_EXCEEDED", 0),
                "answers": tally.answers,
                "others_refreshed_share": others_share,
                "others_not_refreshed": tally.missed,
                "hanging_refreshed": tally.hanging_refreshed,
            },
            "echo_baseline": echo_result.summary(),
            "figures": figures,
            "targets": TARGETS,
            "targets_detail": met,
            "targets_met": all(met.values()),
            "exit_codes": exits,
            **({"server_env": extra_env} if extra_env else {}),
        }
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        note("interrupted; servers stopped and folders deleted")
        sys.exit(130)
