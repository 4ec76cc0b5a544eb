"""The fees service under load: the what-if calculation, a person's care fee through the mirror, the bill.

    python bench/bench_fees.py [--in-flight 32] [--duration 8] [--client-processes 1] [--people 4000]

Starts a throwaway PostgreSQL with a database for each service, the upstream stand-ins (`python -m
upstreams`: each district's Paraply and Agresso, holding the synthetic city's `--people` care recipients,
nothing changing upstream meanwhile), the mirror with its production settings (a sync run every second),
the case service and the fees service, each in a process of its own, all on PostgreSQL and trusting one
development issuer; the fees service mints its own service token from it (AUTH_DEV=true). The grant keys are
a key of the benchmark's own, published to the mirror and to the fees service as one JWKS file, as the case
service publishes its keys. Nothing is measured before the mirror's first full sync has ended. Then:

- BillDistricts (role `finance`): the case service holds `--history-months` earlier months and the billed
  month (the last month that has ended in Stockholm) of synthetic cases, stored through its repository with
  their contacts as the model registers them (about 9,500 cases and 10,500 contacts a month). A share of the
  earlier months' cases is stored only after their bill was issued, as cases registered late are, so the
  timed bill carries correction lines. The earlier months are issued first, one after another; then the
  billed month is issued fresh and timed (target: ≤ 2 s; the fees service asks the case service's
  CountBillableContacts, as role `service`, for that month and again for each earlier issued month), and
  the re-read of the issued month (BillDistricts again, answered with the frozen bill, and GetBill) is timed
  separately, five times each. Each bill's calls, corrections and unattributed contacts are checked
  against the contacts stored.
- CalculateCareFee for a person: an agent's token and an access grant with scope `fees` (and `decisions`,
  which a fee needs too) for each of `--grants` people drawn from those whose district records a fee basis
  the mirror may show. The fees service reads each through the real mirror (GetPersonOverview, the grant
  passed on) and logs the read. Each person is read once before anything is timed; any the service refuses
  is reported and left out (and the target counted as missed). Latency with calls offered at the target's
  100 per second (`--care-fee-rate`), at most `--in-flight` under way, each timed from when it was due
  (bench.harness.load_loop), and again at that rate scaled by this run's echo figure
  (bench.harness.measure_latency_target); throughput at full speed and one call in flight beside it.
- CalculateCareFeeWhatIf: explicit inputs, no person, an agent's token. `--what-if-inputs` varied, realistic
  inputs drawn once (single, spouses or sambor with the partner's incomes; pension, housing supplement,
  occupational pension, capital and other incomes; housing cost; home help by the quarter hour, alarm, day
  activities, meals, short-term care; special housing under the tenancy act or not; an individual
  adjustment of the minimibelopp with its reason), each answer's month checked. Throughput at full speed
  with `--in-flight` calls under way (target: 2,000 calls/s), beside its share of the echo figure, and one
  call in flight.

Between the what-if's throughput and the care fee's latency, the same load at full speed against a bare
grpc.aio echo server gives this run's echo figure. Every summary gives the cores used by each process and by
the rest of the machine ("others": another benchmark running meanwhile shows there).

Prints one line of JSON on stdout; progress goes to stderr. Exits 0 whether or not the targets are met, and
non-zero only when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
from aldredirekt.common.v1.common_pb2 import Money
from aldredirekt.fees.v1 import fees_pb2 as pb

from bench.harness import (
    CALL_TIMEOUT_S,
    REFERENCE_ECHO_CALLS_PER_S,
    Call,
    EchoScenario,
    ServiceProcess,
    add_load_arguments,
    echo_server_process,
    emit,
    error_name,
    exit_on_sigterm,
    measure_latency_target,
    name_value,
    note,
    postgres_database,
    postgres_pids,
    run_load,
)
from services.case.main import MIGRATIONS as CASE_MIGRATIONS
from services.case.model import Case
from services.case.model.statistics import month_bounds
from services.common.auth import SigningKey, jwks_document
from services.common.business_calendar import to_local
from services.common.db import create_engine
from services.common.devissuer import DevIssuer
from services.common.grants import GRANT_METADATA_KEY, GrantIssuer
from services.common.migrate import upgrade_to_head
from support.ports import HOST, free_port, port_is_taken
from synthcity.care import CareRecord, generate_care_city
from synthcity.cases import generate_cases
from synthcity.city import generate_city
from synthcity.seed_cases import store_cases
from upstreams import AGRESSO, CONTROL, credentials, instance_names, layout, sources_document

TARGETS = {
    "what_if_calls_per_s": 2000,
    "care_fee_p99_ms": 50,
    "care_fee_rate_per_s": 100,
    "bill_month_s": 2.0,
}

AGENT = "bench-agent"
FINANCE = "bench-finance"
# The case service's name as the issuer of grants (the mirror's and the fees service's default).
GRANT_ISSUER = "aldredirekt-case"
# What a fee needs: the fee basis, and the decisions for the services received.
GRANT_SCOPES = ("fees", "decisions")
# Long enough for the whole run, whatever its arguments; the case service's grants live 30 minutes.
GRANT_LIFETIME = timedelta(hours=2)
# The seed the stand-ins derive their credentials from (UPSTREAMS_SECRET_SEED).
SECRET_SEED = 2026
SOURCES = len(instance_names())
# The month of the synthetic city's records (synthcity.city.REFERENCE_DATE), whose figures the parameter
# files hold: each fee is worked out for it.
FEE_MONTH = "2026-11"
# The district whose agreement with Äldre direkt leaves out the fee basis: none of its people has a fee here.
WITHOUT_FEE_BASIS = "skarholmen"
WHAT_IF_METHOD = "/aldredirekt.fees.v1.FeeService/CalculateCareFeeWhatIf"
CARE_FEE_METHOD = "/aldredirekt.fees.v1.FeeService/CalculateCareFee"
BILL_METHOD = "/aldredirekt.fees.v1.FeeService/BillDistricts"
GET_BILL_METHOD = "/aldredirekt.fees.v1.FeeService/GetBill"
# The share of an earlier month's cases stored only after that month was billed.
LATE_SHARE = 0.01
# How many times the re-read of an issued bill is timed.
REREADS = 5


class UnexpectedAnswer(Exception):
    """The service answered, but not what was asked for; counted as an error."""


def _kronor(amount: float) -> Money:
    return Money(ore=round(amount) * 100)


# ---- CalculateCareFeeWhatIf -------------------------------------------------------------------------------


def _incomes(rng: random.Random) -> list[pb.Income]:
    """A pensioner's monthly incomes after tax, at most one entry per kind."""
    pension = rng.uniform(9_000, 26_000)
    incomes = [pb.Income(kind=pb.INCOME_KIND_PENSION, monthly=_kronor(pension))]
    if pension < 14_000 and rng.random() < 0.6:
        incomes.append(
            pb.Income(kind=pb.INCOME_KIND_BOSTADSTILLAGG, monthly=_kronor(rng.uniform(1_500, 6_500)))
        )
    if rng.random() < 0.5:
        incomes.append(
            pb.Income(kind=pb.INCOME_KIND_TJANSTEPENSION, monthly=_kronor(rng.uniform(1_000, 12_000)))
        )
    if rng.random() < 0.15:
        incomes.append(pb.Income(kind=pb.INCOME_KIND_KAPITAL, monthly=_kronor(rng.uniform(100, 3_000))))
    if rng.random() < 0.03:
        incomes.append(
            pb.Income(kind=pb.INCOME_KIND_ARBETSINKOMST, monthly=_kronor(rng.uniform(2_000, 15_000)))
        )
    if rng.random() < 0.03:
        incomes.append(pb.Income(kind=pb.INCOME_KIND_OVRIGT, monthly=_kronor(rng.uniform(200, 2_000))))
    rng.shuffle(incomes)
    return incomes


def what_if_inputs(rng: random.Random) -> pb.FeeInputs:
    """The inputs an agent types in to explain a fee on the phone."""
    inputs = pb.FeeInputs(incomes=_incomes(rng))
    if rng.random() < 0.3:
        inputs.household.cohabiting = True
        inputs.household.relation = pb.RELATION_SPOUSES if rng.random() < 0.8 else pb.RELATION_SAMBOR
        inputs.household.partner_incomes.extend(_incomes(rng))
    if rng.random() < 0.15:
        # Special housing: the rent is the housing cost, and the care is the home's.
        inputs.special_housing.rent.CopyFrom(_kronor(rng.uniform(5_500, 8_500)))
        inputs.special_housing.under_tenancy_act = rng.random() < 0.7
    else:
        if rng.random() < 0.95:
            inputs.housing_cost.CopyFrom(_kronor(rng.uniform(3_500, 12_000)))
        services = inputs.services
        if rng.random() < 0.7:
            services.hemtjanst_hours = rng.randint(4, 480) / 4
        services.trygghetslarm = rng.random() < 0.6
        if rng.random() < 0.15:
            services.dagverksamhet_days_per_week = rng.randint(1, 5)
        services.matdistribution = rng.random() < 0.25
        if rng.random() < 0.1:
            services.korttidsvard_days = rng.randint(1, 14)
    if rng.random() < 0.1:
        reason, sign = rng.choice(
            [("fördyrad kost", 1), ("god man", 1), ("dubbel bosättning", 1), ("måltider ingår i boendet", -1)]
        )
        inputs.adjustment.amount.CopyFrom(_kronor(sign * rng.uniform(200, 1_500)))
        inputs.adjustment.reason = reason
    return inputs


def what_if_requests(count: int, seed: int) -> tuple[bytes, ...]:
    rng = random.Random(f"what-if:{seed}")
    return tuple(
        pb.CalculateCareFeeWhatIfRequest(inputs=what_if_inputs(rng), month=FEE_MONTH).SerializeToString()
        for _ in range(count)
    )


@dataclass(frozen=True)
class WhatIfScenario:
    address: str
    token: str
    # Encoded CalculateCareFeeWhatIfRequests.
    requests: tuple[bytes, ...]
    name: str = "CalculateCareFeeWhatIf"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        metadata = (("authorization", f"Bearer {self.token}"),)
        async with grpc.aio.insecure_channel(self.address) as channel:
            what_if = channel.unary_unary(
                WHAT_IF_METHOD,
                request_serializer=None,
                response_deserializer=pb.CalculateCareFeeWhatIfResponse.FromString,
            )

            async def call(n: int) -> None:
                answer = await what_if(
                    self.requests[n % len(self.requests)], metadata=metadata, timeout=CALL_TIMEOUT_S
                )
                if answer.fee.month != FEE_MONTH or answer.fee.total.ore < 0:
                    raise UnexpectedAnswer(answer.fee.month)

            yield call


# ---- CalculateCareFee -------------------------------------------------------------------------------------


def _reader_metadata(token: str, grant: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"), (GRANT_METADATA_KEY, grant))


@dataclass(frozen=True)
class CareFeeScenario:
    """CalculateCareFee for one person after another, each with the agent's grant for that person."""

    address: str
    token: str
    # Each person's number and the access grant the agent holds for them.
    readers: tuple[tuple[str, str], ...]
    name: str = "CalculateCareFee"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        requests = [
            pb.CalculateCareFeeRequest(person_number=p, month=FEE_MONTH).SerializeToString()
            for p, _ in self.readers
        ]
        metadata = [_reader_metadata(self.token, grant) for _, grant in self.readers]
        async with grpc.aio.insecure_channel(self.address) as channel:
            care_fee = channel.unary_unary(
                CARE_FEE_METHOD,
                request_serializer=None,
                response_deserializer=pb.CalculateCareFeeResponse.FromString,
            )

            async def call(n: int) -> None:
                index = n % len(requests)
                answer = await care_fee(requests[index], metadata=metadata[index], timeout=CALL_TIMEOUT_S)
                if not answer.district.startswith("districts/") or answer.fee.month != FEE_MONTH:
                    raise UnexpectedAnswer(answer.district)

            yield call


def fee_readers(records: Sequence[CareRecord], moved: set[str], count: int, seed: int) -> list[str]:
    """People whose district records a fee basis the mirror may show the contact center, drawn at random:
    not of the district whose agreement leaves the fee basis out, never moved, no protected identity."""
    eligible = sorted(
        r.person_number
        for r in records
        if r.fee_basis is not None
        and r.district_id != WITHOUT_FEE_BASIS
        and r.person_number not in moved
        and not r.protected_identity
    )
    return random.Random(seed).sample(eligible, min(count, len(eligible)))


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
            scopes=GRANT_SCOPES,
            now=now,
        )
        readers.append((person, grant))
    return tuple(readers)


async def usable_readers(
    address: str, token: str, readers: Sequence[tuple[str, str]], in_flight: int
) -> tuple[tuple[tuple[str, str], ...], Counter[str]]:
    """Each reader called once: those answered, and the refusals of the others by code."""
    scenario = CareFeeScenario(address, token, tuple(readers))
    refused: Counter[str] = Counter()
    kept: list[int] = []
    gate = asyncio.Semaphore(in_flight)
    async with scenario.connect() as call:

        async def one(index: int) -> None:
            async with gate:
                try:
                    await call(index)
                except Exception as error:
                    refused[error_name(error)] += 1
                else:
                    kept.append(index)

        await asyncio.gather(*(one(i) for i in range(len(readers))))
    return tuple(readers[i] for i in sorted(kept)), refused


# ---- the stand-ins and the mirror -------------------------------------------------------------------------


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


async def wait_for_stand_ins(url: str, token: str, process: ServiceProcess, timeout_s: float = 180.0) -> None:
    """Waits until the control listener answers and says every instance serves."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, headers={"X-Control-Token": token}) as control:
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


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def wait_for_full_sync(mirror: ServiceProcess, database_url: str, *, timeout_s: float) -> int:
    """Polls the mirror's `sources` table until every source says its full sync is done; the records held."""
    began = time.monotonic()
    await mirror.wait_until_serving(timeout_s=timeout_s)
    connection = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        while True:
            if mirror.process is None or mirror.process.poll() is not None:
                raise RuntimeError("the mirror exited during its first sync")
            rows = await connection.fetch("SELECT full_sync_done FROM sources")
            if sum(1 for row in rows if row["full_sync_done"]) == SOURCES:
                break
            if time.monotonic() - began > timeout_s:
                raise TimeoutError(f"the mirror's first sync did not end within {timeout_s:.0f} s")
            await asyncio.sleep(0.1)
        return int(
            await connection.fetchval(
                "SELECT (SELECT count(*) FROM person_records) + (SELECT count(*) FROM invoices)"
            )
        )
    finally:
        await connection.close()


# ---- the cases and the bills ------------------------------------------------------------------------------


def _month_before(month: date) -> date:
    return date(month.year - 1, 12, 1) if month.month == 1 else date(month.year, month.month - 1, 1)


def _month_after(month: date) -> date:
    return date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)


def billed_months(now: datetime, history: int) -> list[date]:
    """The last month that has ended in Stockholm, after the `history` months before it, oldest first."""
    months = [_month_before(to_local(now).date().replace(day=1))]
    for _ in range(history):
        months.insert(0, _month_before(months[0]))
    return months


@dataclass
class Expected:
    """A month's contacts as stored: by district (None for a case that names none)."""

    by_district: Counter[str | None] = field(default_factory=Counter)

    @property
    def attributed(self) -> int:
        return sum(n for district, n in self.by_district.items() if district)

    @property
    def unattributed(self) -> int:
        return self.by_district[None]


def contacts_by_month(cases: Sequence[Case], months: Sequence[date]) -> dict[date, Expected]:
    """The contacts of each month, as the case service's CountBillableContacts counts them."""
    bounds = {month: month_bounds(month) for month in months}
    found = {month: Expected() for month in months}
    for case in cases:
        for contact in case.contacts:
            assert contact.create_time is not None
            for month, (start, end) in bounds.items():
                if start <= contact.create_time < end:
                    found[month].by_district[case.district_id or None] += 1
    return found


def _registered(case: Case) -> datetime:
    assert case.create_time is not None
    return case.create_time


@dataclass
class Seeded:
    cases: int = 0
    contacts: int = 0
    late_cases: int = 0
    generate_s: float = 0.0
    store_s: float = 0.0


async def store(url: str, cases: Sequence[Case]) -> None:
    engine = create_engine(url)
    try:
        await store_cases(engine, cases)
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()


async def migrate_cases(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine, CASE_MIGRATIONS)
    finally:
        await engine.dispose()


@dataclass
class BillCall:
    seconds: float
    answer: pb.BillDistrictsResponse


async def bill_month(address: str, token: str, month: date) -> BillCall:
    async with grpc.aio.insecure_channel(address) as channel:
        issue = channel.unary_unary(
            BILL_METHOD,
            request_serializer=pb.BillDistrictsRequest.SerializeToString,
            response_deserializer=pb.BillDistrictsResponse.FromString,
        )
        await channel.channel_ready()
        began = time.perf_counter()
        answer = await issue(
            pb.BillDistrictsRequest(month=f"{month:%Y-%m}"),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=CALL_TIMEOUT_S,
        )
        return BillCall(time.perf_counter() - began, answer)


async def reread_bill(address: str, token: str, month: date, times: int) -> tuple[list[float], list[float]]:
    """BillDistricts for an issued month, then GetBill, each `times` times on one channel: their seconds."""
    metadata = (("authorization", f"Bearer {token}"),)
    name = f"{month:%Y-%m}"
    async with grpc.aio.insecure_channel(address) as channel:
        issue = channel.unary_unary(
            BILL_METHOD,
            request_serializer=pb.BillDistrictsRequest.SerializeToString,
            response_deserializer=pb.BillDistrictsResponse.FromString,
        )
        get = channel.unary_unary(
            GET_BILL_METHOD,
            request_serializer=pb.GetBillRequest.SerializeToString,
            response_deserializer=pb.GetBillResponse.FromString,
        )
        await channel.channel_ready()
        again, read = [], []
        for _ in range(times):
            began = time.perf_counter()
            answer = await issue(
                pb.BillDistrictsRequest(month=name), metadata=metadata, timeout=CALL_TIMEOUT_S
            )
            again.append(time.perf_counter() - began)
            if not answer.already_issued:
                raise UnexpectedAnswer(f"bills/{name} was issued anew")
            began = time.perf_counter()
            found = await get(
                pb.GetBillRequest(name=f"bills/{name}"), metadata=metadata, timeout=CALL_TIMEOUT_S
            )
            read.append(time.perf_counter() - began)
            if found.bill.name != f"bills/{name}":
                raise UnexpectedAnswer(found.bill.name)
        return again, read


def bill_summary(call: BillCall, expected: Expected, corrected: int) -> dict[str, Any]:
    """What a bill says, and whether it says what the stored contacts make it."""
    bill = call.answer.bill
    kinds = Counter(line.kind for line in bill.lines)
    calls = sum(line.quantity for line in bill.lines if line.kind == pb.BILL_LINE_KIND_CALLS)
    corrections = sum(line.quantity for line in bill.lines if line.kind == pb.BILL_LINE_KIND_CORRECTION)
    base = sum(line.amount.ore for line in bill.lines if line.kind == pb.BILL_LINE_KIND_BASE_FEE)
    exact = (
        calls == expected.attributed
        and bill.unattributed_contacts == expected.unattributed
        and corrections == corrected
        and base == bill.base_fee.ore
        and sum(t.total.ore for t in bill.totals) == bill.total.ore
    )
    return {
        "month": bill.month,
        "seconds": round(call.seconds, 3),
        "already_issued": call.answer.already_issued,
        "payers": len(bill.totals),
        "lines": len(bill.lines),
        "base_fee_lines": kinds[pb.BILL_LINE_KIND_BASE_FEE],
        "call_lines": kinds[pb.BILL_LINE_KIND_CALLS],
        "correction_lines": kinds[pb.BILL_LINE_KIND_CORRECTION],
        "calls_billed": calls,
        "calls_corrected": corrections,
        "unattributed_contacts": bill.unattributed_contacts,
        "total_kr": round(bill.total.ore / 100, 2),
        "matches_stored_contacts": exact,
    }


def _seconds(values: Sequence[float]) -> dict[str, Any]:
    return {
        "times": len(values),
        "median_s": round(statistics.median(values), 4) if values else None,
        "max_s": round(max(values), 4) if values else None,
    }


@dataclass
class Bills:
    summary: dict[str, Any]
    fresh_met: bool = False
    reread_met: bool = False


def issue_bills(
    address: str,
    token: str,
    *,
    earlier: Sequence[date],
    billed: date,
    expected_on_time: dict[date, Expected],
    expected: dict[date, Expected],
    late: Callable[[], object],
    corrected: int,
) -> Bills:
    """The earlier months issued one after another, the cases registered late stored, then the billed month
    issued fresh and read again. A refusal is the service's answer, reported, not the benchmark's failure."""
    found = Bills({"fresh": None, "reread": None, "earlier": []})
    try:
        for month in earlier:
            call = asyncio.run(bill_month(address, token, month))
            found.summary["earlier"].append(bill_summary(call, expected_on_time[month], 0))
            note(f"bills/{month:%Y-%m} issued in {call.seconds:.2f} s")
        late()
        fresh = asyncio.run(bill_month(address, token, billed))
        note(f"bills/{billed:%Y-%m} issued in {fresh.seconds:.2f} s")
        found.summary["fresh"] = bill_summary(fresh, expected[billed], corrected)
        found.fresh_met = (
            fresh.seconds <= TARGETS["bill_month_s"] and found.summary["fresh"]["matches_stored_contacts"]
        )
        again_s, get_s = asyncio.run(reread_bill(address, token, billed, REREADS))
        note(f"bills/{billed:%Y-%m} read again in {statistics.median(again_s) * 1000:.1f} ms")
        found.summary["reread"] = {"bill_districts": _seconds(again_s), "get_bill": _seconds(get_s)}
        found.reread_met = max(again_s) <= TARGETS["bill_month_s"]
    except (grpc.aio.AioRpcError, UnexpectedAnswer) as error:
        detail = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
        found.summary["error"] = f"{error_name(error)}: {detail}"
        note(f"billing failed: {found.summary['error']}")
    return found


# ---- the run ----------------------------------------------------------------------------------------------


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_load_arguments(parser, duration=8.0)
    parser.add_argument("--city-seed", type=int, default=2026)
    parser.add_argument("--officers", type=int, default=400)
    parser.add_argument("--people", type=int, default=4000, help="care recipients the stand-ins hold")
    parser.add_argument("--grants", type=int, default=500, help="people whose fee is read, each with a grant")
    parser.add_argument("--what-if-inputs", type=int, default=1000, help="distinct what-if inputs")
    parser.add_argument(
        "--care-fee-rate",
        type=float,
        default=float(TARGETS["care_fee_rate_per_s"]),
        help="CalculateCareFee calls offered per second for the latency measurement",
    )
    parser.add_argument(
        "--history-months", type=int, default=1, help="earlier months issued before the timed bill"
    )
    parser.add_argument("--sync-timeout", type=float, default=300.0, help="seconds the first sync may take")
    parser.add_argument(
        "--server-env",
        type=name_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for the fees service, e.g. OTEL_SDK_DISABLED=true",
    )
    return parser.parse_args()


@contextlib.contextmanager
def _stopped_last(processes: list[ServiceProcess], exits: dict[str, int | None]) -> Iterator[None]:
    """Stops the processes started in the block, the last started first, and keeps their exit statuses."""
    try:
        yield
    finally:
        for process in reversed(processes):
            exits[process.name] = process.stop()


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("calls", "calls_per_s", "p50_ms", "p90_ms", "p99_ms", "errors", "error_codes", "cpu_ms_per_call")
    return {key: summary[key] for key in keys if key in summary}


def main() -> int:
    arguments = _arguments()
    exit_on_sigterm()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    extra_env = dict(arguments.server_env)
    load = {
        "in_flight": arguments.in_flight,
        "duration_s": arguments.duration,
        "warmup_s": arguments.warmup,
        "processes": arguments.client_processes,
    }
    # One call at a time shows the service time itself, without queueing behind the other calls.
    one_at_a_time = {**load, "in_flight": 1, "processes": 1, "duration_s": min(arguments.duration, 5.0)}
    secrets = credentials(SECRET_SEED)
    ports = layout(_free_base_port())
    urls = {name: f"http://{HOST}:{port}" for name, port in ports.items()}
    months = billed_months(datetime.now(UTC), arguments.history_months)
    billed, earlier = months[-1], months[:-1]
    with (
        tempfile.TemporaryDirectory(prefix="bench-fees-") as folder,
        postgres_database("fees") as (postgres, fees_url),
    ):
        mirror_url = postgres.create_database("mirror")
        case_url = postgres.create_database("cases")
        root = Path(folder)
        dev_dir = root / "dev-issuer"
        grant_key = SigningKey.generate()
        jwks_file = root / "grant-keys.jwks.json"
        (root / "sources.json").write_text(json.dumps(sources_document(urls)))
        jwks_file.write_text(json.dumps(jwks_document([grant_key])))
        issuer = DevIssuer.load_or_create(dev_dir)
        agent_token = issuer.mint(role="agent", subject=AGENT, ttl_seconds=7200)
        finance_token = issuer.mint(role="finance", subject=FINANCE, ttl_seconds=7200)
        base_env = {"AUTH_DEV": "true", "AUTH_DEV_DIR": str(dev_dir), "LOG_LEVEL": "WARNING"}
        mirror_port, case_port, fees_port = free_port(), free_port(), free_port()
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
                # Still data: a fee basis or decision ended meanwhile would read as the service's error.
                "UPSTREAMS_CHANGES_PER_SECOND": "0",
            },
        )
        mirror = ServiceProcess(
            "mirror",
            "services.mirror.main",
            port=mirror_port,
            env={
                **base_env,
                "MIRROR_PORT": str(mirror_port),
                "MIRROR_DATABASE_URL": mirror_url,
                "MIRROR_SOURCES_FILE": str(root / "sources.json"),
                "MIRROR_GRANT_JWKS": str(jwks_file),
                "MIRROR_GRACE_SECONDS": "2",
                **secrets.environment(),
            },
        )
        case = ServiceProcess(
            "case",
            "services.case.main",
            port=case_port,
            env={
                **base_env,
                "CASE_PORT": str(case_port),
                "CASE_DATABASE_URL": case_url,
                "CASE_GRANT_KEY_FILE": str(root / "case-grant-key.pem"),
                "CASE_GRACE_SECONDS": "2",
                # Counting contacts asks neither the directory nor the mirror; nothing is escalated or mailed.
                "CASE_DIRECTORY_ADDRESS": f"{HOST}:{free_port()}",
                "CASE_MIRROR_ADDRESS": f"{HOST}:{mirror_port}",
                "CASE_OVERDUE_INTERVAL_SECONDS": "3600",
                "CASE_OUTBOX_INTERVAL_SECONDS": "3600",
                "CASE_SMTP_PORT": str(free_port()),
            },
        )
        fees = ServiceProcess(
            "fees",
            "services.fees.main",
            port=fees_port,
            env={
                **base_env,
                "FEES_PORT": str(fees_port),
                "FEES_DATABASE_URL": fees_url,
                "FEES_GRACE_SECONDS": "2",
                "FEES_MIRROR_ADDRESS": f"{HOST}:{mirror_port}",
                "FEES_CASE_ADDRESS": f"{HOST}:{case_port}",
                "FEES_GRANT_JWKS": str(jwks_file),
                "FEES_FINANCE_URL": urls[AGRESSO],
                # The stand-ins' secrets are in the environment, as a mounted Secret would put them there.
                "FEES_FINANCE_API_KEY_ENV": "UPSTREAM_AGRESSO_API_KEY",
                **secrets.environment(),
                **extra_env,
            },
        )
        echo = echo_server_process()
        started: list[ServiceProcess] = []
        exits: dict[str, int | None] = {}
        with _stopped_last(started, exits):
            stand_ins.start()
            started.append(stand_ins)

            # Meanwhile, in this process: the people to read and a realistic run of months of cases.
            care = generate_care_city(
                seed=arguments.city_seed, people=arguments.people, officers=arguments.officers
            )
            people = fee_readers(care.records, set(care.moved_from), arguments.grants, arguments.city_seed)
            readers = mint_grants(grant_key, people)
            del care
            requests = what_if_requests(arguments.what_if_inputs, arguments.city_seed)
            seeded = Seeded()
            began = time.perf_counter()
            city = generate_city(seed=arguments.city_seed, officers=arguments.officers)
            last_day = _month_after(billed) - timedelta(days=1)
            note(f"generating the cases registered {months[0]} to {last_day}")
            cases = list(
                generate_cases(
                    city, start=months[0], end=last_day, now=datetime.now(UTC), seed=arguments.city_seed
                )
            )
            seeded.generate_s = time.perf_counter() - began
            # A share of the earlier months' cases is registered only after their month was billed.
            rng = random.Random(f"late:{arguments.city_seed}")
            first_billed = month_bounds(billed)[0]
            late = [c for c in cases if _registered(c) < first_billed and rng.random() < LATE_SHARE]
            held_back = {id(c) for c in late}
            on_time = [c for c in cases if id(c) not in held_back]
            expected = contacts_by_month(cases, months)
            expected_on_time = contacts_by_month(on_time, months)
            seeded.cases = len(cases)
            seeded.contacts = sum(len(c.contacts) for c in cases)
            seeded.late_cases = len(late)

            asyncio.run(wait_for_stand_ins(urls[CONTROL], secrets.control_token, stand_ins))
            note("the mirror's first sync")
            began = time.perf_counter()
            mirror.start()
            started.append(mirror)

            asyncio.run(migrate_cases(case_url))
            stored = time.perf_counter()
            asyncio.run(store(case_url, on_time))
            seeded.store_s = time.perf_counter() - stored
            note(
                f"stored {len(on_time):,} cases ({seeded.contacts:,} contacts in all) in "
                f"{seeded.store_s:.1f} s, {len(late)} held back until their month is billed"
            )
            for process in (case, fees):
                process.start()
                started.append(process)
            records = asyncio.run(wait_for_full_sync(mirror, mirror_url, timeout_s=arguments.sync_timeout))
            sync_s = time.perf_counter() - began
            note(f"the mirror holds {records:,} records, {sync_s:.1f} s after its start")
            for process in (case, fees):
                asyncio.run(process.wait_until_serving())

            # ---- the bills: earlier months, then the timed one --------------------------------------
            bills = issue_bills(
                fees.address,
                finance_token,
                earlier=earlier,
                billed=billed,
                expected_on_time=expected_on_time,
                expected=expected,
                late=lambda: asyncio.run(store(case_url, late)) if late else None,
                corrected=sum(e.attributed for e in contacts_by_month(late, earlier).values()),
            )

            # Each person read once: the readers the service refuses are left out, and the path through
            # the mirror is warm before anything is timed.
            usable, refused = asyncio.run(
                usable_readers(fees.address, agent_token, readers, arguments.in_flight)
            )
            note(f"{len(usable)} of {len(readers)} people answered; refused: {dict(refused) or 'none'}")
            if not usable:
                raise RuntimeError(f"no person's fee could be worked out: {dict(refused)}")

            fees_cpu = {"server": lambda: [fees.pid], "postgres": lambda: postgres_pids(postgres)}
            what_if = WhatIfScenario(fees.address, agent_token, requests)
            what_if_full = run_load(what_if, cpu_groups=fees_cpu, **load)

            # Measured between the two, as close in time as it can be to the throughput it is set beside
            # and to the latency it scales.
            echo.start()
            started.append(echo)
            asyncio.run(echo.wait_until_serving(health=False))
            echo_result = run_load(
                EchoScenario(echo.address), cpu_groups={"server": lambda: [echo.pid]}, **load
            )
            echo.stop()

            cpu = {
                "server": lambda: [fees.pid],
                "mirror": lambda: [mirror.pid],
                "postgres": lambda: postgres_pids(postgres),
            }
            care_fee = CareFeeScenario(fees.address, agent_token, usable)
            care_fee_paced = measure_latency_target(
                care_fee,
                rate=arguments.care_fee_rate,
                p99_limit_ms=TARGETS["care_fee_p99_ms"],
                echo=echo_result,
                cpu_groups=cpu,
                **load,
            )
            care_fee_full = run_load(care_fee, cpu_groups=cpu, **load)
            what_if_alone = run_load(what_if, cpu_groups=fees_cpu, **one_at_a_time)
            care_fee_alone = run_load(care_fee, cpu_groups=cpu, **one_at_a_time)

    what_if_summary = what_if_full.summary()
    share_of_echo = (
        round(what_if_summary["calls_per_s"] / echo_result.calls_per_s, 3)
        if echo_result.calls_per_s
        else None
    )
    met = {
        "what_if_calls_per_s": what_if_summary["errors"] == 0
        and what_if_summary["calls_per_s"] >= TARGETS["what_if_calls_per_s"],
        "care_fee_p99_ms": care_fee_paced["met"] and not refused,
        "bill_month_s": bills.fresh_met,
        "bill_reread_s": bills.reread_met,
    }
    emit(
        {
            "benchmark": "fees",
            "database": "postgresql",
            "people": arguments.people,
            # What else the machine was doing when the run began (other benchmarks share its cores).
            "load_average_at_start": load_at_start,
            "in_flight": arguments.in_flight,
            "client_processes": arguments.client_processes,
            "warmup_s": arguments.warmup,
            "duration_s": arguments.duration,
            "what_if": {
                "distinct_inputs": len(requests),
                "month": FEE_MONTH,
                "full_speed": what_if_summary,
                # Against the bare echo server under the same load just after: the figure to compare
                # between runs on a machine whose speed (and whatever else runs on it) varies.
                "share_of_echo": share_of_echo,
                # That share of the reference machine's echo figure: an estimate of the throughput there,
                # not a measurement; the target is judged on the figure measured here.
                "at_reference_echo_calls_per_s": round(share_of_echo * REFERENCE_ECHO_CALLS_PER_S)
                if share_of_echo is not None
                else None,
                "one_in_flight": _brief(what_if_alone.summary()),
            },
            "care_fee": {
                "month": FEE_MONTH,
                "people_with_grants": len(readers),
                "people_answered": len(usable),
                "people_refused": dict(refused),
                "at_offered_rate": care_fee_paced,
                "full_speed": care_fee_full.summary(),
                "one_in_flight": _brief(care_fee_alone.summary()),
            },
            "bill": {
                "month": f"{billed:%Y-%m}",
                "earlier_months_recounted": len(earlier),
                **bills.summary,
                "cases": {
                    "months": [f"{m:%Y-%m}" for m in months],
                    "cases": seeded.cases,
                    "contacts": seeded.contacts,
                    "stored_after_their_bill": seeded.late_cases,
                    "generate_s": round(seeded.generate_s, 1),
                    "store_s": round(seeded.store_s, 1),
                },
            },
            "mirror": {"records": records, "first_sync_s": round(sync_s, 1)},
            "echo_baseline": echo_result.summary(),
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
