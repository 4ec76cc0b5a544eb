"""Seeds an empty case database with a month of synthetic cases, for demos and local runs.

`python -m synthcity.seed_cases [--days 30] [--force]` migrates the case database (CASE_DATABASE_URL) and,
unless it already holds cases, stores the cases of the last `--days` days up to now: answered at once,
forwarded with their deadlines, answered late, still open. With --force the cases already there are
deleted first. The units and officers are those of the synthetic city the directory is seeded with
(same generator, same seed), so a forwarded case points at a real unit and its functional mailbox.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.case.main import MIGRATIONS, CaseSettings
from services.case.model import AT_UNIT, Case, CaseStatus
from services.case.store import unit_of_work_factory
from services.common.business_calendar import to_local
from services.common.db import create_engine
from services.common.errors import InvalidArgument
from services.common.migrate import upgrade_to_head
from services.common.settings import SettingsError
from synthcity.cases import generate_cases
from synthcity.city import generate_city

BATCH = 500
MAX_DAYS = 366


@dataclass
class Tally:
    cases: int = 0
    first_contact: int = 0
    forwarded: int = 0
    at_unit: int = 0
    overdue: int = 0
    open_here: int = 0

    def count(self, case: Case) -> None:
        self.cases += 1
        self.first_contact += case.resolved_at_first_contact
        self.forwarded += case.forwarded_ever
        self.at_unit += case.status in AT_UNIT
        self.overdue += case.overdue and case.status is not CaseStatus.CLOSED
        self.open_here += case.status is CaseStatus.OPEN


async def count_cases(engine: AsyncEngine) -> int:
    async with unit_of_work_factory(engine)(write=False) as uow:
        return await uow.cases.count()


async def store_cases(engine: AsyncEngine, generated: Iterable[Case], *, batch: int = BATCH) -> Tally:
    """Stores the cases through the repository, one transaction per batch."""
    make_uow = unit_of_work_factory(engine)
    tally = Tally()
    iterator = iter(generated)
    while chunk := list(itertools.islice(iterator, batch)):
        async with make_uow() as uow:
            await uow.cases.add_all(chunk)
            await uow.commit()
        for case in chunk:
            tally.count(case)
    return tally


async def seed(
    settings: CaseSettings,
    *,
    days: int,
    force: bool,
    city_seed: int,
    officers: int,
    now: datetime | None = None,
) -> str:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidArgument.field("days", f"must be between 1 and {MAX_DAYS}")
    started = time.monotonic()
    engine = create_engine(settings.server.database_url)
    try:
        await upgrade_to_head(engine, MIGRATIONS)
        existing = await count_cases(engine)
        if existing and not force:
            return f"case: {existing:,} cases already there, not seeded (use --force to replace them)"
        if existing:
            async with unit_of_work_factory(engine)() as uow:
                await uow.cases.delete_all()
                await uow.commit()
        moment = now or datetime.now(UTC)
        today = to_local(moment).date()
        first = today - timedelta(days=days - 1)
        city = generate_city(seed=city_seed, officers=officers)
        tally = await store_cases(
            engine, generate_cases(city, start=first, end=today, now=moment, seed=city_seed)
        )
    finally:
        await engine.dispose()
    share = tally.first_contact / tally.cases if tally.cases else 0.0
    return (
        f"case: seeded {tally.cases:,} cases from {first} to {today} in {time.monotonic() - started:.1f} s: "
        f"{share:.1%} answered at first contact, {tally.forwarded:,} forwarded, "
        f"{tally.at_unit:,} with a unit ({tally.overdue:,} overdue), {tally.open_here:,} open here"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30, help="how many days of cases, ending today")
    parser.add_argument("--force", action="store_true", help="delete the cases already there and seed anew")
    parser.add_argument("--seed", type=int, default=2026, help="the synthetic city's random seed")
    parser.add_argument("--officers", type=int, default=400, help="as the directory was seeded with")
    arguments = parser.parse_args()
    try:
        settings = CaseSettings.from_env()
    except SettingsError as error:
        sys.exit(f"case: configuration error: {error}")
    try:
        summary = asyncio.run(
            seed(
                settings,
                days=arguments.days,
                force=arguments.force,
                city_seed=arguments.seed,
                officers=arguments.officers,
            )
        )
    except InvalidArgument as error:
        parser.error(error.message)
    print(summary)


if __name__ == "__main__":
    main()
