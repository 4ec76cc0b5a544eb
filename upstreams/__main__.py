"""`python -m upstreams`: every stand-in in one process, until SIGTERM or SIGINT.

Settings are environment variables (all optional): UPSTREAMS_HOST, UPSTREAMS_BASE_PORT, UPSTREAMS_SEED,
UPSTREAMS_PEOPLE, UPSTREAMS_OFFICERS, UPSTREAMS_SECRET_SEED, UPSTREAMS_CHANGES_PER_SECOND and
UPSTREAMS_LATE_COMMIT_SECONDS. One line is printed per listener once all of them listen; secrets never are.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from synthcity.care import generate_care_city
from upstreams.server import serve_all

T = TypeVar("T", int, float)


class SettingError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    base_port: int = 7000
    seed: int = 2026
    people: int = 30_000
    officers: int = 400
    secret_seed: int = 2026
    changes_per_second: float = 1.0
    late_commit_seconds: float = 2.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        defaults = cls()

        def read(name: str, parse: Callable[[str], T], default: T, lowest: T, highest: T) -> T:
            raw = environ.get(name, "").strip()
            if not raw:
                return default
            try:
                value = parse(raw)
            except ValueError:
                raise SettingError(f"{name} must be a number, got {raw!r}") from None
            if not lowest <= value <= highest:
                raise SettingError(f"{name} must be from {lowest} to {highest}, got {raw!r}")
            return value

        return cls(
            host=environ.get("UPSTREAMS_HOST", "").strip() or defaults.host,
            # The control listener is at base + 99, which must be a port too.
            base_port=read("UPSTREAMS_BASE_PORT", int, defaults.base_port, 1, 65_535 - 99),
            seed=read("UPSTREAMS_SEED", int, defaults.seed, 0, 2**63),
            people=read("UPSTREAMS_PEOPLE", int, defaults.people, 1, 1_000_000),
            officers=read("UPSTREAMS_OFFICERS", int, defaults.officers, 66, 5000),
            secret_seed=read("UPSTREAMS_SECRET_SEED", int, defaults.secret_seed, 0, 2**63),
            changes_per_second=read(
                "UPSTREAMS_CHANGES_PER_SECOND", float, defaults.changes_per_second, 0.0, 1e4
            ),
            late_commit_seconds=read(
                "UPSTREAMS_LATE_COMMIT_SECONDS", float, defaults.late_commit_seconds, 0.0, 3600
            ),
        )


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    started = time.perf_counter()
    care = await asyncio.to_thread(generate_care_city, settings.seed, settings.people, settings.officers)
    generated = time.perf_counter() - started
    async with serve_all(
        care=care,
        seed=settings.seed,
        secret_seed=settings.secret_seed,
        host=settings.host,
        base_port=settings.base_port,
        changes_per_second=settings.changes_per_second,
        late_commit_seconds=settings.late_commit_seconds,
        warm=True,
    ) as running:
        # The city's records live as long as the process: frozen, the collector never walks them again (a
        # full collection over millions of objects is a pause of a second in the middle of a request).
        gc.freeze()
        for name in running.names:
            print(f"upstreams: {name} listening on {running.url(name)}", flush=True)
        print(
            f"upstreams: {len(care.people)} people, {len(care.records)} Paraply records and "
            f"{len(care.invoices)} invoices generated in {generated:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_environment(os.environ)
    except SettingError as error:
        print(f"upstreams: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings))
    except OSError as error:
        # A port already taken, most often: another stand-in or `make run` is up.
        print(f"upstreams: cannot listen: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Every listener is closed by now; freeing the city's records object by object would only keep the
    # process alive seconds longer after SIGTERM, so the heap is dropped whole.
    os._exit(code)
