"""The whole directory exported to CSV files and imported from them, all or nothing."""

from __future__ import annotations

from services.common.db import Idempotency
from services.directory.handlers.directory import Directory
from services.directory.model import (
    transfer,
)

# ---- import and export ------------------------------------------------------------------------------------


async def export_directory(*, directory: Directory) -> dict[str, str]:
    # The export holds every direct number, so it is for the directory's administrators only.
    async with directory.uow(write=False) as uow:
        repo = uow.directory
        all_units = await repo.all_units()
        rule_sets = list((await repo.rule_sets_of([u.unit_id for u in all_units])).values())
        return transfer.export_files(
            all_units, await repo.all_officers(), await repo.all_absences(), rule_sets
        )


async def import_directory(
    *,
    directory: Directory,
    files: dict[str, str],
    validate_only: bool,
    idempotency: Idempotency | None = None,
) -> transfer.ImportCounts:
    async with directory.uow(idempotency=None if validate_only else idempotency) as uow:
        today = directory.clock().date()
        known_districts = {d.district_id for d in await uow.directory.list_districts() if d.is_current(today)}
        parsed = transfer.parse_files(files, known_districts=known_districts)
        if validate_only:
            return parsed.counts
        await uow.directory.replace_directory(
            parsed.units, parsed.officers, parsed.absences, parsed.rule_sets
        )
        await uow.commit(parsed.counts)
    directory.cache.invalidate()
    return parsed.counts
