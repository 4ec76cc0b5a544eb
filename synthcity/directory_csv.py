"""The synthetic city in the directory service's CSV import format.

Five files, UTF-8, comma-separated with a header row: units.csv, officers.csv, absences.csv, areas.csv and
rules.csv. Weekly hours are written "1 08:00-16:30;2 08:00-16:30" (ISO weekday, 1 is Monday), lists are
';'-separated, booleans are true/false, times are ISO 8601 with their offset.

    python -m synthcity.directory_csv OUTDIR [--seed N] [--officers N]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from services.common.errors import InvalidArgument
from services.directory.model.transfer import HEADERS as DIRECTORY_CSV_HEADERS
from synthcity.city import City, WeeklyPeriod, generate_city

__all__ = ["HEADERS", "directory_csv_files", "main"]

# The directory's own import format, so the generator can never drift from it.
HEADERS = DIRECTORY_CSV_HEADERS


def directory_csv_files(city: City) -> dict[str, str]:
    """File name → content of the five CSV files describing `city`."""
    rows: dict[str, list[tuple[str, ...]]] = {
        "units.csv": [
            (
                unit.unit_id,
                unit.display_name,
                unit.district_id,
                unit.mailbox,
                unit.acute_phone,
                _hours(unit.acute_hours),
                unit.contact_policy.value,
                unit.reception_phone,
                _hours(unit.phone_hours),
                _boolean(unit.team_model),
            )
            for unit in city.units
        ],
        "officers.csv": [
            (
                officer.officer_id,
                officer.unit_id,
                officer.given_name,
                officer.family_name,
                officer.role.value,
                _listing(specialty.value for specialty in officer.specialties),
                _listing(officer.languages),
                officer.team,
                officer.phone,
                officer.email,
                _boolean(officer.active),
                str(officer.caseload),
            )
            for officer in city.officers
        ],
        "absences.csv": [
            (
                absence.absence_id,
                absence.officer_id,
                absence.start_time.isoformat(),
                absence.end_time.isoformat(),
                absence.substitute_id,
            )
            for absence in city.absences
        ],
        "areas.csv": [
            (area.unit_id, area.area_id, area.display_name, _listing(str(r) for r in area.postal_code_ranges))
            for area in city.areas
        ],
        "rules.csv": [
            (
                rule.unit_id,
                rule.rule_id,
                rule.area_id,
                rule.role.value if rule.role is not None else "",
                str(rule.first_birth_day),
                str(rule.last_birth_day),
                rule.officer_id,
                rule.team,
            )
            for rule in city.rules
        ],
    }
    return {name: _render(HEADERS[name], rows[name]) for name in HEADERS}


def _render(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _hours(periods: Iterable[WeeklyPeriod]) -> str:
    return _listing(str(period) for period in periods)


def _listing(values: Iterable[str]) -> str:
    return ";".join(values)


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m synthcity.directory_csv",
        description="Write a synthetic City of Stockholm as the directory service's CSV import files.",
    )
    parser.add_argument("outdir", type=Path, help="directory to write the five CSV files to")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--officers", type=int, default=400)
    args = parser.parse_args(argv)
    try:
        city = generate_city(args.seed, args.officers)
    except InvalidArgument as error:
        parser.error(error.message)
    files = directory_csv_files(city)
    outdir: Path = args.outdir
    outdir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        # newline="" keeps the "\n" line ends on every platform, so the files are the same everywhere.
        with (outdir / name).open("w", encoding="utf-8", newline="") as file:
            file.write(content)
    print(f"wrote {', '.join(files)} to {outdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
