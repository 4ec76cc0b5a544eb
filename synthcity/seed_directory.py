"""Seeds an empty directory with the synthetic city, through the same checks as a CSV import.

`python -m synthcity.seed_directory [--force]` migrates the directory's database and imports the city
unless units already exist (or always, with --force). Only for demos and local runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace

from services.common.audit_writer import MemoryAccessLog
from services.common.runtime import wired
from services.common.settings import SettingsError
from services.directory import handlers
from services.directory.main import DEFINITION, DirectorySettings
from services.directory.store import units
from synthcity.city import generate_city
from synthcity.directory_csv import directory_csv_files


async def seed(settings: DirectorySettings, *, force: bool, city_seed: int, officers: int) -> str:
    """Imports the city, through the directory's own use case, unless units exist (or with `force`)."""
    async with wired(
        DEFINITION,
        replace(settings, server=replace(settings.server, migrate_on_start=True)),
        access=MemoryAccessLog(),
    ) as wiring:
        directory = wiring.core
        async with directory.uow(write=False) as uow:
            existing = await uow.directory.count(units)
        if existing and not force:
            return f"directory: {existing} units already there, not seeded (use --force to replace)"
        files = directory_csv_files(generate_city(seed=city_seed, officers=officers))
        counts = await handlers.import_directory(directory=directory, files=files, validate_only=False)
    return (
        f"directory: seeded {counts.units} units, {counts.officers} officers, "
        f"{counts.absences} absences, {counts.areas} areas, {counts.rules} rules"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="replace a directory that is not empty")
    parser.add_argument("--seed", type=int, default=2026, help="the synthetic city's random seed")
    parser.add_argument("--officers", type=int, default=400)
    arguments = parser.parse_args()
    try:
        settings = DirectorySettings.from_env()
    except SettingsError as error:
        sys.exit(f"directory: configuration error: {error}")
    print(
        asyncio.run(
            seed(
                settings,
                force=arguments.force,
                city_seed=arguments.seed,
                officers=arguments.officers,
            )
        )
    )


if __name__ == "__main__":
    main()
