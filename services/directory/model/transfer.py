"""The directory as CSV files: the import and export format, checked row by row.

Five files, UTF-8 with a header row: units.csv, officers.csv, absences.csv, areas.csv, rules.csv.
Lists inside a cell are separated by ";". A bad cell is reported as "<file>:<line>:<column>", and an
import with any bad cell writes nothing.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.common.errors import FieldViolation, InvalidArgument, quoted
from services.directory.model.checks import (
    absence_violations,
    format_periods,
    officer_violations,
    parse_periods,
    rule_set_violations,
    unit_violations,
)
from services.directory.model.directory import (
    Absence,
    Area,
    AssignmentRule,
    ContactPolicy,
    Officer,
    OfficerRole,
    PostalCodeRange,
    RuleSet,
    Specialty,
    Unit,
    parse_enum,
)

HEADERS: dict[str, tuple[str, ...]] = {
    "units.csv": (
        "unit_id",
        "display_name",
        "district_id",
        "mailbox",
        "acute_phone",
        "acute_hours",
        "contact_policy",
        "reception_phone",
        "phone_hours",
        "team_model",
    ),
    "officers.csv": (
        "officer_id",
        "unit_id",
        "given_name",
        "family_name",
        "role",
        "specialties",
        "languages",
        "team",
        "phone",
        "email",
        "active",
        "caseload",
    ),
    "absences.csv": ("absence_id", "officer_id", "start_time", "end_time", "substitute_id"),
    "areas.csv": ("unit_id", "area_id", "display_name", "postal_code_ranges"),
    "rules.csv": (
        "unit_id",
        "rule_id",
        "area_id",
        "role",
        "first_birth_day",
        "last_birth_day",
        "officer_id",
        "team",
    ),
}
REQUIRED_FILES = ("units.csv", "officers.csv")
# Times are stored in UTC but written for the people who edit the files, in Stockholm's local time.
STOCKHOLM = ZoneInfo("Europe/Stockholm")
MAX_REPORTED = 100


@dataclass(frozen=True)
class ImportCounts:
    units: int
    officers: int
    absences: int
    areas: int
    rules: int


@dataclass(frozen=True)
class ParsedDirectory:
    units: list[Unit]
    officers: list[Officer]
    absences: list[Absence]
    rule_sets: list[RuleSet]

    @property
    def counts(self) -> ImportCounts:
        return ImportCounts(
            units=len(self.units),
            officers=len(self.officers),
            absences=len(self.absences),
            areas=sum(len(r.areas) for r in self.rule_sets),
            rules=sum(len(r.rules) for r in self.rule_sets),
        )


class _Report:
    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, where: str, description: str) -> None:
        if len(self.violations) < MAX_REPORTED:
            self.violations.append(FieldViolation(where, description))

    def check(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations, reason="BAD_CSV")


@dataclass
class _Row:
    file: str
    line: int
    cells: dict[str, str]
    report: _Report

    def where(self, column: str) -> str:
        return f"{self.file}:{self.line}:{column}"

    def get(self, column: str) -> str:
        return self.cells.get(column, "").strip()

    def parse(self, column: str, parse: Callable[[str], Any], default: Any = None) -> Any:
        try:
            return parse(self.get(column))
        except InvalidArgument as error:
            self.report.add(self.where(column), error.violations[0].description)
        except ValueError as error:
            self.report.add(self.where(column), str(error))
        return default


def _rows(name: str, content: str, report: _Report) -> Iterator[_Row]:
    text = content.removeprefix("\ufeff")
    if not text.strip():
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = tuple(h.strip() for h in reader.fieldnames or ())
    expected = HEADERS[name]
    if header != expected:
        missing = [h for h in expected if h not in header]
        extra = [h for h in header if h not in expected]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing)}")
        if extra:
            detail.append(f"unknown {', '.join(extra)}")
        report.add(
            f"{name}:1",
            f"the header must be {','.join(expected)}" + (f" ({'; '.join(detail)})" if detail else ""),
        )
        return
    reader.fieldnames = list(header)
    for record in reader:
        line = reader.line_num
        if None in record:
            report.add(f"{name}:{line}", f"has more than {len(expected)} cells")
            continue
        cells = {k: (v or "") for k, v in record.items()}
        yield _Row(name, line, cells, report)


def _bool(raw: str) -> bool:
    if raw.lower() in {"true", "ja", "yes", "1"}:
        return True
    if raw.lower() in {"false", "nej", "no", "0", ""}:
        return False
    raise ValueError(f"{quoted(raw)} is neither true nor false")


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{quoted(raw)} is not a whole number") from None


def _time(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{quoted(raw)} is not an ISO 8601 time such as 2026-11-23T08:00:00+01:00") from None
    if moment.tzinfo is None:
        raise ValueError(f"{quoted(raw)} needs a UTC offset, e.g. +01:00")
    return moment


def _list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(";") if part.strip()]


def _ranges(raw: str) -> tuple[PostalCodeRange, ...]:
    found = []
    for part in _list(raw):
        first, _, last = part.partition("-")
        found.append(
            PostalCodeRange(first.strip().replace(" ", ""), (last or first).strip().replace(" ", ""))
        )
    return tuple(found)


def _violations_to_cells(
    row: _Row, violations: Sequence[FieldViolation], prefix: str, columns: dict[str, str]
) -> None:
    for violation in violations:
        attribute = violation.field.removeprefix(prefix + ".").split("[")[0]
        row.report.add(row.where(columns.get(attribute, attribute)), violation.description)


def parse_files(files: dict[str, str], *, known_districts: set[str]) -> ParsedDirectory:
    """Parses and checks the whole directory; raises InvalidArgument naming file, line and column."""
    report = _Report()
    for name in files:
        if name not in HEADERS:
            report.add(name, f"is not one of {', '.join(HEADERS)}")
    for name in REQUIRED_FILES:
        if not files.get(name, "").strip():
            report.add(name, "is required")
    report.check()

    units: dict[str, Unit] = {}
    for row in _rows("units.csv", files.get("units.csv", ""), report):
        unit = Unit(
            unit_id=row.get("unit_id"),
            display_name=row.get("display_name"),
            district_id=row.get("district_id"),
            mailbox=row.get("mailbox"),
            acute_phone=row.get("acute_phone"),
            acute_hours=row.parse("acute_hours", parse_periods, ()),
            contact_policy=row.parse(
                "contact_policy",
                lambda v: parse_enum(ContactPolicy, v, "contact_policy"),
                ContactPolicy.CONTACT_CENTER_ONLY,
            ),
            reception_phone=row.get("reception_phone"),
            phone_hours=row.parse("phone_hours", parse_periods, ()),
            team_model=row.parse("team_model", _bool, False),
        )
        _violations_to_cells(
            row, unit_violations(unit), "unit", {"name": "unit_id", "district": "district_id"}
        )
        if unit.unit_id in units:
            report.add(row.where("unit_id"), f"unit {quoted(unit.unit_id)} appears twice")
        if unit.district_id not in known_districts:
            report.add(row.where("district_id"), f"{quoted(unit.district_id)} is not a current district")
        units[unit.unit_id] = unit

    officers: dict[str, Officer] = {}
    emails: dict[str, int] = {}
    for row in _rows("officers.csv", files.get("officers.csv", ""), report):
        officer = Officer(
            officer_id=row.get("officer_id"),
            unit_id=row.get("unit_id"),
            given_name=row.get("given_name"),
            family_name=row.get("family_name"),
            role=row.parse(
                "role", lambda v: parse_enum(OfficerRole, v, "role"), OfficerRole.ORDINARY_HOUSING
            ),
            specialties=tuple(
                row.parse(
                    "specialties", lambda v: [parse_enum(Specialty, s, "specialties") for s in _list(v)], []
                )
            ),
            languages=tuple(_list(row.get("languages"))),
            team=row.get("team"),
            phone=row.get("phone"),
            email=row.get("email"),
            active=row.parse("active", _bool, True),
            caseload=row.parse("caseload", lambda v: _int(v) if v else 0, 0),
        )
        _violations_to_cells(
            row, officer_violations(officer), "officer", {"name": "officer_id", "unit": "unit_id"}
        )
        if officer.officer_id in officers:
            report.add(row.where("officer_id"), f"officer {quoted(officer.officer_id)} appears twice")
        if officer.unit_id not in units:
            report.add(row.where("unit_id"), f"{quoted(officer.unit_id)} is not a unit of units.csv")
        if officer.email:
            if officer.email.casefold() in emails:
                report.add(row.where("email"), f"is the same as on line {emails[officer.email.casefold()]}")
            emails[officer.email.casefold()] = row.line
        officers[officer.officer_id] = officer

    absences: list[Absence] = []
    seen_absences: set[tuple[str, str]] = set()
    absences_of: dict[str, list[Absence]] = defaultdict(list)
    for row in _rows("absences.csv", files.get("absences.csv", ""), report):
        start = row.parse("start_time", _time)
        end = row.parse("end_time", _time)
        officer_id = row.get("officer_id")
        absent = officers.get(officer_id)
        if absent is None:
            report.add(row.where("officer_id"), f"{quoted(officer_id)} is not an officer of officers.csv")
            continue
        if start is None or end is None:
            continue
        absence = Absence(row.get("absence_id"), officer_id, start, end, row.get("substitute_id"))
        if not absence.absence_id:
            report.add(row.where("absence_id"), "is required")
        if (officer_id, absence.absence_id) in seen_absences:
            report.add(row.where("absence_id"), "appears twice for the same officer")
        seen_absences.add((officer_id, absence.absence_id))
        _violations_to_cells(
            row,
            absence_violations(absence, officer=absent, substitute=officers.get(absence.substitute_id)),
            "absence",
            {"end_time": "end_time", "substitute": "substitute_id"},
        )
        # The same rule as CreateAbsence: an officer is away for one reason, with one substitute, at a time.
        overlapped = next((a for a in absences_of[officer_id] if a.start < end and start < a.end), None)
        if overlapped is not None:
            report.add(
                row.where("start_time"),
                f"overlaps absence {quoted(overlapped.absence_id)} of the same officer",
            )
        absences_of[officer_id].append(absence)
        absences.append(absence)

    areas: dict[str, list[Area]] = defaultdict(list)
    area_lines: dict[tuple[str, str], int] = {}
    for row in _rows("areas.csv", files.get("areas.csv", ""), report):
        unit_id = row.get("unit_id")
        if unit_id not in units:
            report.add(row.where("unit_id"), f"{quoted(unit_id)} is not a unit of units.csv")
            continue
        area = Area(row.get("area_id"), row.get("display_name"), _ranges(row.get("postal_code_ranges")))
        area_lines[(unit_id, area.area_id)] = row.line
        areas[unit_id].append(area)

    rules: dict[str, list[AssignmentRule]] = defaultdict(list)
    rule_lines: dict[tuple[str, int], int] = {}
    for row in _rows("rules.csv", files.get("rules.csv", ""), report):
        unit_id = row.get("unit_id")
        if unit_id not in units:
            report.add(row.where("unit_id"), f"{quoted(unit_id)} is not a unit of units.csv")
            continue
        role_text = row.get("role")
        rule = AssignmentRule(
            rule_id=row.get("rule_id"),
            area_id=row.get("area_id"),
            role=row.parse("role", lambda v: parse_enum(OfficerRole, v, "role")) if role_text else None,
            first_birth_day=row.parse("first_birth_day", _int, 0),
            last_birth_day=row.parse("last_birth_day", _int, 0),
            officer_id=row.get("officer_id") or None,
            team=row.get("team") or None,
        )
        rule_lines[(unit_id, len(rules[unit_id]))] = row.line
        rules[unit_id].append(rule)

    rule_sets: list[RuleSet] = []
    all_areas = [(u, a) for u, unit_areas in areas.items() for a in unit_areas]
    for unit_id in units:
        rule_set = RuleSet(unit_id=unit_id, areas=tuple(areas[unit_id]), rules=tuple(rules[unit_id]))
        unit_officers = {o.officer_id: o for o in officers.values() if o.unit_id == unit_id}
        others = [(u, a) for u, a in all_areas if u != unit_id]
        for violation in rule_set_violations(rule_set, officers=unit_officers, other_units_areas=others):
            report.add(
                _rule_location(unit_id, violation.field, rule_set, area_lines, rule_lines),
                violation.description,
            )
        rule_sets.append(rule_set)
    report.check()
    return ParsedDirectory(list(units.values()), list(officers.values()), absences, rule_sets)


def _rule_location(
    unit_id: str,
    field: str,
    rule_set: RuleSet,
    area_lines: dict[tuple[str, str], int],
    rule_lines: dict[tuple[str, int], int],
) -> str:
    """Turns "rule_set.rules[3].area_id" into "rules.csv:<line>:area_id"."""
    path = field.removeprefix("rule_set.")
    kind, _, rest = path.partition("[")
    index_text, _, attribute = rest.partition("]")
    column = attribute.lstrip(".").split("[")[0] or kind
    if kind == "rules" and index_text.isdigit():
        line = rule_lines.get((unit_id, int(index_text)))
        columns = {"officer": "officer_id", "responsible": "officer_id", "rules": "first_birth_day"}
        return f"rules.csv:{line}:{columns.get(column, column)}"
    if kind == "areas" and index_text.isdigit():
        area = rule_set.areas[int(index_text)]
        column = column if column != "areas" else "area_id"
        return f"areas.csv:{area_lines.get((unit_id, area.area_id))}:{column}"
    return f"areas.csv:unit {unit_id}:postal_code_ranges"


def _write(name: str, rows: Sequence[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADERS[name])
    writer.writerows(rows)
    return out.getvalue()


def export_files(
    units: Sequence[Unit],
    officers: Sequence[Officer],
    absences: Sequence[Absence],
    rule_sets: Sequence[RuleSet],
) -> dict[str, str]:
    def yes(value: bool) -> str:
        return "true" if value else "false"

    return {
        "units.csv": _write(
            "units.csv",
            [
                [
                    u.unit_id,
                    u.display_name,
                    u.district_id,
                    u.mailbox,
                    u.acute_phone,
                    format_periods(u.acute_hours),
                    u.contact_policy.value,
                    u.reception_phone,
                    format_periods(u.phone_hours),
                    yes(u.team_model),
                ]
                for u in units
            ],
        ),
        "officers.csv": _write(
            "officers.csv",
            [
                [
                    o.officer_id,
                    o.unit_id,
                    o.given_name,
                    o.family_name,
                    o.role.value,
                    ";".join(s.value for s in o.specialties),
                    ";".join(o.languages),
                    o.team,
                    o.phone,
                    o.email,
                    yes(o.active),
                    str(o.caseload),
                ]
                for o in officers
            ],
        ),
        "absences.csv": _write(
            "absences.csv",
            [
                [
                    a.absence_id,
                    a.officer_id,
                    a.start.astimezone(STOCKHOLM).isoformat(),
                    a.end.astimezone(STOCKHOLM).isoformat(),
                    a.substitute_id,
                ]
                for a in absences
            ],
        ),
        "areas.csv": _write(
            "areas.csv",
            [
                [
                    r.unit_id,
                    a.area_id,
                    a.display_name,
                    ";".join(f"{p.first}-{p.last}" for p in a.postal_code_ranges),
                ]
                for r in rule_sets
                for a in r.areas
            ],
        ),
        "rules.csv": _write(
            "rules.csv",
            [
                [
                    r.unit_id,
                    rule.rule_id,
                    rule.area_id,
                    rule.role.value if rule.role else "",
                    str(rule.first_birth_day),
                    str(rule.last_birth_day),
                    rule.officer_id or "",
                    rule.team or "",
                ]
                for r in rule_sets
                for rule in r.rules
            ],
        ),
    }
