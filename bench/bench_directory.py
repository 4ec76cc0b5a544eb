"""The directory service under load: ResolveResponsible and SearchOfficers by language, on PostgreSQL.

    python bench/bench_directory.py [--in-flight 32] [--duration 10] [--client-processes 1]

Starts a throwaway PostgreSQL, seeds it with the synthetic city, runs the directory server in a process
of its own and keeps `--in-flight` calls going against it from a grpc.aio client on loopback. The same
load against a bare grpc.aio echo server on this machine gives the ceiling our figures are compared to.

Throughput is measured at full speed. ResolveResponsible's latency target is measured with calls offered
at the 1,500 per second its throughput target names (`--resolve-rate`), at most `--in-flight` under way,
each timed from when it was due (bench.harness.load_loop): at full speed, latency is only the
throughput seen again (mean latency = calls in flight / throughput). It is measured again at that rate
scaled by this run's echo figure (bench.harness.measure_latency_target), which is the one to compare
between runs on a machine whose speed varies.
Prints one line of JSON on stdout; progress goes to stderr. Exits 0 whether or not the targets are met,
and non-zero only when the benchmark itself could not run or clean up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from aldredirekt.directory.v1 import directory_pb2 as pb
from aldredirekt.directory.v1 import directory_pb2_grpc

from bench.harness import (
    CALL_TIMEOUT_S,
    Call,
    EchoScenario,
    LoadResult,
    ServiceProcess,
    add_load_arguments,
    echo_server_process,
    emit,
    exit_on_sigterm,
    measure_latency_target,
    name_value,
    note,
    postgres_database,
    postgres_pids,
    run_load,
)
from services.common.devissuer import DevIssuer
from services.directory.main import DirectorySettings
from support.ports import free_port
from synthcity.city import Role, generate_city
from synthcity.people import Person, generate_people
from synthcity.seed_directory import seed

TARGETS = {"resolve_calls_per_s": 1500, "resolve_p99_ms": 25, "search_calls_per_s": 800}

PEOPLE_SEED = 7
# The share of ResolveResponsible requests that give only the district; the others give the postal code.
DISTRICT_ONLY_SHARE = 0.15


class UnexpectedAnswer(Exception):
    """The service answered, but not what the synthetic city says it should; counted as an error."""


@dataclass(frozen=True)
class Ask:
    """One person to resolve, and the unit the synthetic city puts them in."""

    person_number: str
    postal_code: str
    district_id: str
    special_housing: bool
    unit_id: str


@dataclass(frozen=True)
class ResolveScenario:
    """ResolveResponsible for one person after another, each answer checked against the city's unit."""

    address: str
    token: str
    asks: tuple[Ask, ...]
    name: str = "ResolveResponsible"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        requests = [_resolve_request(ask, index) for index, ask in enumerate(self.asks)]
        expected = [f"units/{ask.unit_id}" for ask in self.asks]
        metadata = (("authorization", f"Bearer {self.token}"),)
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = directory_pb2_grpc.DirectoryServiceStub(channel)

            async def call(n: int) -> None:
                index = n % len(requests)
                answer = await stub.ResolveResponsible(
                    requests[index], metadata=metadata, timeout=CALL_TIMEOUT_S
                )
                if answer.unit.name != expected[index]:
                    raise UnexpectedAnswer(answer.unit.name)

            yield call


def _resolve_request(ask: Ask, index: int) -> pb.ResolveResponsibleRequest:
    request = pb.ResolveResponsibleRequest(person_number=ask.person_number, purpose=f"cases/bench-{index}")
    if ask.postal_code:
        request.postal_code = ask.postal_code
    else:
        request.district = f"districts/{ask.district_id}"
    if ask.special_housing:
        request.need_role = pb.OFFICER_ROLE_SPECIAL_HOUSING
    return request


@dataclass(frozen=True)
class SearchScenario:
    """SearchOfficers by one language after another, a page of 20; every officer found must speak it."""

    address: str
    token: str
    languages: tuple[str, ...]
    page_size: int = 20
    name: str = "SearchOfficers by language"

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Call]:
        requests = [
            pb.SearchOfficersRequest(language=lang, page_size=self.page_size) for lang in self.languages
        ]
        metadata = (("authorization", f"Bearer {self.token}"),)
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = directory_pb2_grpc.DirectoryServiceStub(channel)

            async def call(n: int) -> None:
                index = n % len(requests)
                answer = await stub.SearchOfficers(requests[index], metadata=metadata, timeout=CALL_TIMEOUT_S)
                language = self.languages[index]
                if not answer.officers or any(language not in o.languages for o in answer.officers):
                    raise UnexpectedAnswer(language)

            yield call


def realistic_asks(people: Sequence[Person], seed: int) -> tuple[Ask, ...]:
    """Mostly by postal code, some by district only, and special housing for its residents."""
    rng = random.Random(seed)
    asks = []
    for person in people:
        by_district = rng.random() < DISTRICT_ONLY_SHARE
        asks.append(
            Ask(
                person_number=person.person_number,
                postal_code="" if by_district else person.postal_code,
                district_id=person.district_id,
                special_housing=person.responsible_role is Role.SPECIAL_HOUSING,
                unit_id=person.unit_id,
            )
        )
    return tuple(asks)


def realistic_languages(people: Sequence[Person], seed: int, count: int = 1000) -> tuple[str, ...]:
    """Languages in the proportions the people prefer them, Swedish left out: an agent looks for an
    officer by language when the caller would rather not speak Swedish."""
    spoken = Counter(p.language for p in people if p.language != "sv")
    return tuple(random.Random(seed).choices(list(spoken), weights=list(spoken.values()), k=count))


def _ratio(ours: LoadResult, echo: LoadResult) -> float | None:
    return round(ours.calls_per_s / echo.calls_per_s, 3) if echo.calls_per_s else None


def _targets_met(resolve: dict[str, Any], paced: dict[str, Any], search: dict[str, Any]) -> dict[str, bool]:
    return {
        "resolve_calls_per_s": resolve["errors"] == 0
        and resolve["calls_per_s"] >= TARGETS["resolve_calls_per_s"],
        "resolve_p99_ms": paced["met"],
        "search_calls_per_s": search["errors"] == 0
        and search["calls_per_s"] >= TARGETS["search_calls_per_s"],
    }


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_load_arguments(parser, duration=10.0)
    parser.add_argument("--city-seed", type=int, default=2026)
    parser.add_argument("--officers", type=int, default=400)
    parser.add_argument("--people", type=int, default=5000, help="distinct people to resolve")
    parser.add_argument(
        "--resolve-rate",
        type=float,
        default=float(TARGETS["resolve_calls_per_s"]),
        help="ResolveResponsible calls offered per second for the latency measurement",
    )
    parser.add_argument(
        "--server-env",
        type=name_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for the directory server, e.g. OTEL_SDK_DISABLED=true",
    )
    return parser.parse_args()


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
    with (
        tempfile.TemporaryDirectory(prefix="bench-directory-") as folder,
        postgres_database("directory") as (postgres, database_url),
    ):
        dev_dir = Path(folder) / "dev-issuer"
        settings = DirectorySettings.from_env(
            {"DIRECTORY_DATABASE_URL": database_url, "AUTH_DEV_DIR": str(dev_dir), "AUTH_DEV": "true"}
        )
        note(
            asyncio.run(
                seed(settings, force=True, city_seed=arguments.city_seed, officers=arguments.officers)
            )
        )
        token = DevIssuer.load_or_create(dev_dir).mint(role="agent", subject="bench-agent")
        city = generate_city(seed=arguments.city_seed, officers=arguments.officers)
        people = list(generate_people(city, arguments.people, seed=PEOPLE_SEED))
        asks = realistic_asks(people, seed=PEOPLE_SEED)
        languages = realistic_languages(people, seed=PEOPLE_SEED)

        echo = echo_server_process()
        port = free_port()
        server = ServiceProcess(
            "directory",
            "services.directory.main",
            port=port,
            env={
                "DIRECTORY_PORT": str(port),
                "DIRECTORY_DATABASE_URL": database_url,
                "AUTH_DEV": "true",
                "AUTH_DEV_DIR": str(dev_dir),
                "LOG_LEVEL": "WARNING",
                "DIRECTORY_GRACE_SECONDS": "2",
                **extra_env,
            },
        )
        try:
            echo.start()
            asyncio.run(echo.wait_until_serving(health=False))
            echo_result = run_load(
                EchoScenario(echo.address), cpu_groups={"server": lambda: [echo.pid]}, **load
            )
            echo.stop()

            server.start()
            asyncio.run(server.wait_until_serving())
            directory_cpu = {"server": lambda: [server.pid], "postgres": lambda: postgres_pids(postgres)}
            resolve_scenario = ResolveScenario(server.address, token, asks)
            resolve_result = run_load(resolve_scenario, cpu_groups=directory_cpu, **load)
            paced = measure_latency_target(
                resolve_scenario,
                rate=arguments.resolve_rate,
                p99_limit_ms=TARGETS["resolve_p99_ms"],
                echo=echo_result,
                cpu_groups=directory_cpu,
                **load,
            )
            search_result = run_load(
                SearchScenario(server.address, token, languages), cpu_groups=directory_cpu, **load
            )
        finally:
            echo.stop()
            server_exit = server.stop()

    resolve = resolve_result.summary()
    search = search_result.summary()
    met = _targets_met(resolve, paced, search)
    emit(
        {
            "benchmark": "directory",
            "database": "postgresql",
            "in_flight": arguments.in_flight,
            "client_processes": arguments.client_processes,
            "warmup_s": arguments.warmup,
            "duration_s": arguments.duration,
            "resolve_responsible": {
                "full_speed": resolve,
                "at_offered_rate": paced,
            },
            "search_officers_by_language": search,
            "echo_baseline": echo_result.summary(),
            "resolve_ratio_to_echo": _ratio(resolve_result, echo_result),
            "search_ratio_to_echo": _ratio(search_result, echo_result),
            "targets": TARGETS,
            "targets_detail": met,
            "targets_met": all(met.values()),
            "server_exit_code": server_exit,
            **({"server_env": extra_env} if extra_env else {}),
        }
    )
    if server_exit != 0:
        note(f"the directory server did not stop cleanly on SIGTERM (exit status {server_exit})")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        note("interrupted; servers stopped and folders deleted")
        sys.exit(130)
