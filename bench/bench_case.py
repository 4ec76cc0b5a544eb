"""The case service under load: CreateCase, GetCaseStatistics over a million cases, ListUnitQueue.

    python bench/bench_case.py [--in-flight 32] [--duration 15] [--rows 1000000] [--queue 10000]

Starts a throwaway PostgreSQL, runs the directory (seeded with the synthetic city, on SQLite: the case
service asks it only for the list of districts) and the case server in processes of their own, and:

- CreateCase: over gRPC with a dev agent token; every request is a realistic first contact (valid
  person numbers, districts, types) with its own request_id. Throughput is measured with `--in-flight`
  calls kept going at full speed; latency with calls offered at the target's 500 per second, at most
  `--in-flight` under way, each timed from when it was due (see bench.harness.load_loop).
- GetCaseStatistics: loads `--rows` cases (about nine years at 2,200 a week) straight into the `cases`
  table, by COPY on PostgreSQL and by batched inserts on SQLite, then asks for one year grouped by
  month and case type: by calling the handler directly on both databases, and once over gRPC. The whole
  history in one call is timed as well.
- ListUnitQueue: `--queue` open cases forwarded to one unit (the one with the most staff, 54 officers),
  read over gRPC by an officer of that unit, first page (50 cases). Latency is measured with
  `--queue-rate` pages offered per second (default 50: every one of the unit's staff reloading the queue
  about once a second, far above what a unit does), at most `--in-flight` under way; throughput at
  full speed is reported beside it.

CreateCase and ListUnitQueue are also run with one call in flight, which shows the service time itself.
A closed loop at full speed says nothing of latency beyond its throughput (mean latency = calls in
flight / throughput), which is why the latency targets are measured at a stated offered load.

Just before CreateCase, the same load at full speed against a bare grpc.aio echo server gives this run's
echo figure. Each latency target is measured again at its rate scaled by that figure
(bench.harness.measure_latency_target), which is the one to compare between runs on a machine whose
speed varies.

Prints one line of JSON on stdout; progress goes to stderr. Exits 0 whether or not the targets are met,
and non-zero only when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from aldredirekt.case.v1 import case_pb2 as pb
from aldredirekt.case.v1 import case_pb2_grpc
from google.type import date_pb2
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import insert, text

from bench.harness import (
    CALL_TIMEOUT_S,
    Call,
    EchoScenario,
    ServiceProcess,
    add_load_arguments,
    echo_server_process,
    emit,
    measure_latency_target,
    note,
    postgres_database,
    postgres_pids,
    run_load,
)
from services.case import handlers
from services.case.handlers import Cases
from services.case.main import DEFINITION, MIGRATIONS, CaseSettings
from services.case.model import Case, Routing, Statistics
from services.case.store import cases as cases_table
from services.common.audit_writer import MemoryAccessLog
from services.common.auth import Caller
from services.common.db import create_engine
from services.common.devissuer import DevIssuer
from services.common.migrate import upgrade_to_head
from services.common.runtime import wired
from services.directory.main import DirectorySettings
from support.ports import free_port
from synthcity.cases import case_rows, generate_cases, unit_queue_rows
from synthcity.city import City, generate_city
from synthcity.city import Role as CityRole
from synthcity.seed_directory import seed as seed_directory

TARGETS = {
    "create_case_calls_per_s": 500,
    "create_case_p99_ms": 50,
    "statistics_1m_postgresql_s": 1.0,
    "statistics_1m_sqlite_s": 5.0,
    "unit_queue_10k_p99_ms": 20,
}
HISTORY_START = date(2016, 1, 1)
HISTORY_END = date(2025, 12, 31)
STATISTICS_YEAR = 2023
LOAD_BATCH = 20_000
COLUMNS = tuple(column.name for column in cases_table.columns if column.name != "id")


class UnexpectedAnswer(Exception):
    """The service answered, but not with what was asked for; counted as an error."""


# ---- CreateCase -------------------------------------------------------------------------------------------


def _field_3(value: str) -> bytes:
    """`request_id = 3` in protobuf's wire format, to append to an encoded request."""
    data = value.encode()
    assert len(data) < 128
    return b"\x1a" + bytes([len(data)]) + data


@dataclass(frozen=True)
class CreateCaseScenario:
    address: str
    token: str
    # Encoded CreateCaseRequests without their request_id, which each call adds.
    requests: tuple[bytes, ...]
    name: str = "CreateCase"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        metadata = (("authorization", f"Bearer {self.token}"),)
        prefix = f"bench-{os.getpid()}-{time.monotonic_ns()}"
        async with grpc.aio.insecure_channel(self.address) as channel:
            create = channel.unary_unary(
                "/aldredirekt.case.v1.CaseService/CreateCase",
                request_serializer=None,
                response_deserializer=pb.CreateCaseResponse.FromString,
            )

            async def call(n: int) -> None:
                request = self.requests[n % len(self.requests)] + _field_3(f"{prefix}-{n}")
                answer = await create(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
                if not answer.case.name.startswith("cases/"):
                    raise UnexpectedAnswer(answer.case.name)

            yield call


def create_request(case: Case) -> pb.CreateCaseRequest:
    contact = case.contacts[0]
    return pb.CreateCaseRequest(
        case=pb.Case(
            category=case.category,
            case_type=case.case_type,
            case_class=case.case_class,
            district=f"districts/{case.district_id}" if case.district_id else "",
            provider=case.provider,
            person_number=case.person_number or "",
            anonymous=case.person_number is None,
            acute=case.acute,
            feedback_channel=pb.FeedbackChannel.Value(
                f"FEEDBACK_CHANNEL_{case.feedback_channel.value.upper()}"
            ),
            feedback_window=case.feedback_window,
        ),
        contact=pb.Contact(
            channel=pb.Channel.Value(f"CHANNEL_{contact.channel.value.upper()}"),
            party=pb.ContactParty.Value(f"CONTACT_PARTY_{contact.party.value.upper()}"),
            contact_name=contact.contact_name,
            contact_phone=contact.contact_phone,
            contact_email=contact.contact_email,
            summary=contact.summary,
        ),
    )


def realistic_requests(city: City, count: int) -> tuple[bytes, ...]:
    """First contacts as the agents register them, from a week of synthetic cases."""
    week = generate_cases(city, start=date(2026, 11, 16), end=date(2026, 11, 20), seed=17)
    return tuple(create_request(case).SerializeToString() for case in itertools.islice(week, count))


# ---- ListUnitQueue ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitQueueScenario:
    address: str
    token: str
    unit: str
    page_size: int = 50
    name: str = "ListUnitQueue"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        metadata = (("authorization", f"Bearer {self.token}"),)
        request = pb.ListUnitQueueRequest(unit=self.unit, page_size=self.page_size)
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = case_pb2_grpc.CaseServiceStub(channel)

            async def call(n: int) -> None:
                answer = await stub.ListUnitQueue(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
                if len(answer.cases) != self.page_size or not answer.next_page_token:
                    raise UnexpectedAnswer(f"{len(answer.cases)} cases")

            yield call


# ---- loading rows -----------------------------------------------------------------------------------------


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def copy_rows(connection: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    await connection.copy_records_to_table(
        "cases", records=[tuple(row[c] for c in COLUMNS) for row in rows], columns=COLUMNS
    )


@dataclass
class Loaded:
    rows: int = 0
    generate_s: float = 0.0
    postgresql_s: float = 0.0
    sqlite_s: float = 0.0


async def load_history(city: City, postgres_url: str, sqlite_path: Path, total: int) -> Loaded:
    """The same `total` synthetic cases into both databases, batch by batch, then statistics refreshed."""
    loaded = Loaded()
    sqlite = create_sync_engine(f"sqlite:///{sqlite_path}")
    connection = await asyncpg.connect(_asyncpg_dsn(postgres_url))
    try:
        rows = itertools.islice(case_rows(city, start=HISTORY_START, end=HISTORY_END, seed=2026), total)
        started = time.perf_counter()
        for batch in _batches(rows, LOAD_BATCH):
            generated = time.perf_counter()
            loaded.generate_s += generated - started
            await copy_rows(connection, batch)
            copied = time.perf_counter()
            loaded.postgresql_s += copied - generated
            with sqlite.begin() as conn:
                conn.execute(insert(cases_table), batch)
            started = time.perf_counter()
            loaded.sqlite_s += started - copied
            loaded.rows += len(batch)
            if loaded.rows % 200_000 == 0:
                note(f"loaded {loaded.rows:,} cases")
        began = time.perf_counter()
        await connection.execute("VACUUM ANALYZE cases")
        loaded.postgresql_s += time.perf_counter() - began
        began = time.perf_counter()
        with sqlite.begin() as conn:
            conn.execute(text("ANALYZE"))
        loaded.sqlite_s += time.perf_counter() - began
    finally:
        await connection.close()
        sqlite.dispose()
    return loaded


# ---- statistics -------------------------------------------------------------------------------------------


class NoDirectory:
    """Statistics never ask the directory."""

    async def resolve(self, caller: Caller, **_: Any) -> Routing:
        raise RuntimeError("not used")

    async def district_ids(self, caller: Caller) -> dict[str, str]:
        raise RuntimeError("not used")

    async def officer_unit(self, caller: Caller, officer_id: str) -> str | None:
        raise RuntimeError("not used")


async def time_statistics(
    cases: Cases, start: date, end: date, *, repeat: int = 3
) -> tuple[list[float], Statistics]:
    timings = []
    answer = None
    for _ in range(repeat):
        began = time.perf_counter()
        answer = await handlers.case_statistics(
            cases=cases, start=start, end=end, dimensions=["month", "case_type"]
        )
        timings.append(time.perf_counter() - began)
    assert answer is not None
    return timings, answer


async def statistics_on(url: str, settings: CaseSettings) -> dict[str, Any]:
    configured = replace(settings, server=replace(settings.server, database_url=url, migrate_on_start=False))
    async with wired(DEFINITION, configured, directory=NoDirectory(), access=MemoryAccessLog()) as wiring:
        cases = wiring.core
        year, answer = await time_statistics(
            cases, date(STATISTICS_YEAR, 1, 1), date(STATISTICS_YEAR, 12, 31)
        )
        everything, whole = await time_statistics(cases, HISTORY_START, HISTORY_END, repeat=1)
    return {
        "year_s": round(statistics.median(year), 3),
        "year_first_s": round(year[0], 3),
        "year_cases": answer.total.cases,
        "year_groups": len(answer.rows),
        "all_rows_s": round(everything[0], 3),
        "all_rows_cases": whole.total.cases,
        "all_rows_groups": len(whole.rows),
    }


async def statistics_over_grpc(address: str, token: str) -> tuple[float, int]:
    request = pb.GetCaseStatisticsRequest(
        start_date=date_pb2.Date(year=STATISTICS_YEAR, month=1, day=1),
        end_date=date_pb2.Date(year=STATISTICS_YEAR, month=12, day=31),
        group_by=[pb.STATISTICS_DIMENSION_MONTH, pb.STATISTICS_DIMENSION_CASE_TYPE],
    )
    async with grpc.aio.insecure_channel(address) as channel:
        stub = case_pb2_grpc.CaseServiceStub(channel)
        began = time.perf_counter()
        answer = await stub.GetCaseStatistics(
            request, metadata=(("authorization", f"Bearer {token}"),), timeout=CALL_TIMEOUT_S
        )
        return time.perf_counter() - began, answer.total.cases


# ---- the queue --------------------------------------------------------------------------------------------


async def load_queue(postgres_url: str, city: City, unit_id: str, count: int) -> None:
    rows = unit_queue_rows(city, unit_id, count, now=datetime.now(UTC), seed=2026)
    connection = await asyncpg.connect(_asyncpg_dsn(postgres_url))
    try:
        await copy_rows(connection, rows)
        await connection.execute("ANALYZE cases")
    finally:
        await connection.close()


def officer_of(city: City, unit_id: str) -> str:
    return next(
        o.officer_id for o in city.officers_of(unit_id) if o.active and o.role is CityRole.ORDINARY_HOUSING
    )


# ---- the run ----------------------------------------------------------------------------------------------


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_load_arguments(parser, duration=15.0, warmup=3.0)
    parser.add_argument("--rows", type=int, default=1_000_000, help="cases loaded for the statistics")
    parser.add_argument("--queue", type=int, default=10_000, help="open cases in the unit's queue")
    parser.add_argument(
        "--create-rate", type=float, default=500.0, help="CreateCase calls offered per second for latency"
    )
    parser.add_argument(
        "--queue-rate", type=float, default=50.0, help="ListUnitQueue pages offered per second for latency"
    )
    parser.add_argument("--city-seed", type=int, default=2026)
    parser.add_argument("--officers", type=int, default=400)
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for the case server, e.g. OTEL_SDK_DISABLED=true",
    )
    return parser.parse_args()


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("calls_per_s", "p50_ms", "p99_ms", "errors", "cpu_ms_per_call")
    return {key: summary[key] for key in keys if key in summary}


def main() -> int:
    arguments = _arguments()
    extra_env = dict(item.split("=", 1) for item in arguments.server_env)
    load = {
        "in_flight": arguments.in_flight,
        "duration_s": arguments.duration,
        "warmup_s": arguments.warmup,
        "processes": arguments.client_processes,
    }
    # One call at a time shows the service time itself, without queueing behind the other calls.
    one_at_a_time = {**load, "in_flight": 1, "processes": 1, "duration_s": min(arguments.duration, 5.0)}
    city = generate_city(seed=arguments.city_seed, officers=arguments.officers)
    queue_unit = max(city.units, key=lambda unit: len(city.officers_of(unit.unit_id))).unit_id
    with (
        tempfile.TemporaryDirectory(prefix="bench-case-") as folder,
        postgres_database("cases") as (postgres, case_url),
    ):
        root = Path(folder)
        dev_dir = root / "dev-issuer"
        directory_url = f"sqlite+aiosqlite:///{root / 'directory.db'}"
        sqlite_path = root / "case.db"
        sqlite_url = f"sqlite+aiosqlite:///{sqlite_path}"
        case_env = {
            "CASE_DATABASE_URL": case_url,
            "AUTH_DEV": "true",
            "AUTH_DEV_DIR": str(dev_dir),
            "CASE_GRANT_KEY_FILE": str(root / "grant-key.pem"),
            "LOG_LEVEL": "WARNING",
            "CASE_GRACE_SECONDS": "2",
            # The queue's overdue cases come marked; nothing is to be escalated or mailed meanwhile.
            "CASE_OVERDUE_INTERVAL_SECONDS": "3600",
            "CASE_OUTBOX_INTERVAL_SECONDS": "3600",
            "CASE_SMTP_PORT": str(free_port()),
            # No mirror in this benchmark: forwards go by the directory's rules.
            "CASE_MIRROR_ADDRESS": f"127.0.0.1:{free_port()}",
        }
        settings = CaseSettings.from_env(case_env)
        note(
            asyncio.run(
                seed_directory(
                    DirectorySettings.from_env(
                        {
                            "DIRECTORY_DATABASE_URL": directory_url,
                            "AUTH_DEV_DIR": str(dev_dir),
                            "AUTH_DEV": "true",
                        }
                    ),
                    force=True,
                    city_seed=arguments.city_seed,
                    officers=arguments.officers,
                )
            )
        )
        issuer = DevIssuer.load_or_create(dev_dir)
        agent_token = issuer.mint(role="agent", subject="bench-agent")
        auditor_token = issuer.mint(role="auditor", subject="bench-auditor")
        officer_token = issuer.mint(
            role="officer", subject=officer_of(city, queue_unit), unit=f"units/{queue_unit}"
        )

        directory_port, case_port = free_port(), free_port()
        directory = ServiceProcess(
            "directory",
            "services.directory.main",
            port=directory_port,
            env={
                "DIRECTORY_PORT": str(directory_port),
                "DIRECTORY_DATABASE_URL": directory_url,
                "AUTH_DEV": "true",
                "AUTH_DEV_DIR": str(dev_dir),
                "LOG_LEVEL": "WARNING",
                "DIRECTORY_GRACE_SECONDS": "2",
            },
        )
        server = ServiceProcess(
            "case",
            "services.case.main",
            port=case_port,
            env={
                **case_env,
                "CASE_PORT": str(case_port),
                "CASE_DIRECTORY_ADDRESS": f"127.0.0.1:{directory_port}",
                **extra_env,
            },
        )
        echo = echo_server_process()
        server_exit: int | None = None
        try:
            directory.start()
            asyncio.run(directory.wait_until_serving())
            server.start()
            asyncio.run(server.wait_until_serving())

            note(f"loading {arguments.rows:,} cases into PostgreSQL and SQLite")
            sqlite_engine = create_engine(sqlite_url)
            asyncio.run(upgrade_to_head(sqlite_engine, MIGRATIONS))
            asyncio.run(sqlite_engine.dispose())
            loaded = asyncio.run(load_history(city, case_url, sqlite_path, arguments.rows))
            note(
                f"loaded {loaded.rows:,} cases: generating {loaded.generate_s:.1f} s, "
                f"PostgreSQL {loaded.postgresql_s:.1f} s, SQLite {loaded.sqlite_s:.1f} s"
            )

            # Measured here rather than first, to be as close in time as it can to the latency it scales.
            echo.start()
            asyncio.run(echo.wait_until_serving(health=False))
            echo_result = run_load(
                EchoScenario(echo.address), cpu_groups={"server": lambda: [echo.pid]}, **load
            )
            echo.stop()

            cpu = {"server": lambda: [server.pid], "postgres": lambda: postgres_pids(postgres)}
            requests = realistic_requests(city, 2000)
            create_scenario = CreateCaseScenario(server.address, agent_token, requests)
            create_result = run_load(create_scenario, cpu_groups=cpu, **load)
            create_at_rate = measure_latency_target(
                create_scenario,
                rate=arguments.create_rate,
                p99_limit_ms=TARGETS["create_case_p99_ms"],
                echo=echo_result,
                cpu_groups=cpu,
                **load,
            )
            create_alone = run_load(create_scenario, cpu_groups=cpu, **one_at_a_time)

            note("statistics on PostgreSQL")
            postgresql = asyncio.run(statistics_on(case_url, settings))
            grpc_s, grpc_cases = asyncio.run(statistics_over_grpc(server.address, auditor_token))
            note("statistics on SQLite")
            sqlite = asyncio.run(statistics_on(sqlite_url, settings))

            note(f"filling the queue of units/{queue_unit} with {arguments.queue:,} open cases")
            asyncio.run(load_queue(case_url, city, queue_unit, arguments.queue))
            queue_scenario = UnitQueueScenario(server.address, officer_token, f"units/{queue_unit}")
            queue_result = run_load(queue_scenario, cpu_groups=cpu, **load)
            queue_at_rate = measure_latency_target(
                queue_scenario,
                rate=arguments.queue_rate,
                p99_limit_ms=TARGETS["unit_queue_10k_p99_ms"],
                echo=echo_result,
                cpu_groups=cpu,
                **load,
            )
            queue_alone = run_load(queue_scenario, cpu_groups=cpu, **one_at_a_time)
        finally:
            echo.stop()
            server_exit = server.stop()
            directory.stop()

    create = create_result.summary()
    queue = queue_result.summary()
    statistics_1m = {
        "rows": loaded.rows,
        "year": STATISTICS_YEAR,
        "group_by": ["month", "case_type"],
        "postgresql_s": postgresql["year_s"],
        "sqlite_s": sqlite["year_s"],
        "postgresql_grpc_s": round(grpc_s, 3),
        "postgresql": postgresql,
        "sqlite": sqlite,
        "grpc_cases": grpc_cases,
        "load_s": {
            "generate": round(loaded.generate_s, 1),
            "postgresql_copy": round(loaded.postgresql_s, 1),
            "sqlite_insert": round(loaded.sqlite_s, 1),
        },
    }
    met = {
        "create_case_calls_per_s": create["calls_per_s"] >= TARGETS["create_case_calls_per_s"],
        "create_case_p99_ms": create_at_rate["met"],
        "statistics_1m_postgresql_s": postgresql["year_s"] <= TARGETS["statistics_1m_postgresql_s"],
        "statistics_1m_sqlite_s": sqlite["year_s"] <= TARGETS["statistics_1m_sqlite_s"],
        "unit_queue_10k_p99_ms": queue_at_rate["met"],
    }
    emit(
        {
            "benchmark": "case",
            "database": "postgresql",
            "in_flight": arguments.in_flight,
            "client_processes": arguments.client_processes,
            "warmup_s": arguments.warmup,
            "duration_s": arguments.duration,
            "create_case": {
                "full_speed": create,
                "at_offered_rate": create_at_rate,
                "one_in_flight": _brief(create_alone.summary()),
            },
            "statistics_1m": statistics_1m,
            "unit_queue_10k": {
                "open_cases": arguments.queue,
                "spread": "all in one unit",
                "unit": f"units/{queue_unit}",
                "page_size": 50,
                "at_offered_rate": queue_at_rate,
                "full_speed": queue,
                "one_in_flight": _brief(queue_alone.summary()),
            },
            "echo_baseline": echo_result.summary(),
            "targets": TARGETS,
            "targets_detail": met,
            "targets_met": all(met.values())
            and create["errors"] == create_at_rate["errors"] == 0
            and queue["errors"] == queue_at_rate["errors"] == 0,
            "server_exit_code": server_exit,
            **({"server_env": extra_env} if extra_env else {}),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
