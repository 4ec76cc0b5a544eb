"""ImportDirectory and ExportDirectory on a real database: the whole directory, all or nothing."""

from __future__ import annotations

import csv
import io

import pytest

from services.common.errors import InvalidArgument
from services.directory import handlers
from services.directory.store import DirectoryRepository
from tests.unit.directory.cities import city_files

# The export lists units, officers and absences by id, and a unit's areas and rules in the order given.
EXPORT_ORDER = {
    "units.csv": (0,),
    "officers.csv": (0,),
    "absences.csv": (1, 0),
    "areas.csv": (0,),
    "rules.csv": (0,),
}


def in_export_order(files: dict[str, str]) -> dict[str, str]:
    ordered = {}
    for name, content in files.items():
        header, *rows = list(csv.reader(io.StringIO(content)))
        key_columns = EXPORT_ORDER[name]
        rows.sort(key=lambda row: tuple(row[i] for i in key_columns))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        ordered[name] = out.getvalue()
    return ordered


def with_line(content: str, line: int, old: str, new: str) -> str:
    lines = content.splitlines(keepends=True)
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    return "".join(lines)


async def export(directory) -> dict[str, str]:
    return await handlers.export_directory(directory=directory)


async def test_importing_the_synthetic_city_and_exporting_it_gives_back_the_same_files(directory):
    files = city_files(2026, 400)

    counts = await handlers.import_directory(directory=directory, files=files, validate_only=False)
    exported = await export(directory)

    assert counts.units == 11
    assert counts.officers == 400
    assert exported == in_export_order(files)
    # What was exported imports again to exactly the same export.
    await handlers.import_directory(directory=directory, files=exported, validate_only=False)
    assert await export(directory) == exported


async def test_an_import_replaces_the_whole_previous_directory(directory, seeded):
    other = city_files(7)

    await handlers.import_directory(directory=directory, files=other, validate_only=False)

    assert await export(directory) == in_export_order(other)


async def test_an_import_with_one_bad_row_changes_nothing(directory, seeded):
    before = await export(directory)
    other = city_files(7)
    line = 5
    bad = other | {"officers.csv": with_line(other["officers.csv"], line, ",true,", ",kanske,")}

    with pytest.raises(InvalidArgument) as caught:
        await handlers.import_directory(directory=directory, files=bad, validate_only=False)

    assert [v.field for v in caught.value.violations] == [f"officers.csv:{line}:active"]
    assert await export(directory) == before


async def test_an_import_that_fails_while_writing_leaves_the_previous_directory(
    directory, seeded, monkeypatch
):
    before = await export(directory)

    async def fail(self) -> None:
        raise RuntimeError("the disk is full")

    # bump_revision runs last, after every table was emptied and filled again.
    monkeypatch.setattr(DirectoryRepository, "bump_revision", fail)
    with pytest.raises(RuntimeError):
        await handlers.import_directory(directory=directory, files=city_files(7), validate_only=False)
    monkeypatch.undo()

    assert await export(directory) == before


async def test_validate_only_counts_the_files_and_writes_nothing(directory, seeded):
    before = await export(directory)

    counts = await handlers.import_directory(directory=directory, files=city_files(7), validate_only=True)

    assert counts.officers == 120
    assert await export(directory) == before


# Only directory administrators export the directory with its direct numbers: declared on the servicer and
# checked by the server before the call runs, see tests/e2e/directory/test_callers.py.
