"""The CSV files: checked as a whole, refused naming file:line:column, and written back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.errors import InvalidArgument
from services.directory.model import ContactPolicy, OfficerRole, Specialty
from services.directory.model.transfer import HEADERS, export_files, parse_files
from synthcity.city import DISTRICTS, generate_city
from synthcity.directory_csv import directory_csv_files

KNOWN_DISTRICTS = {d.district_id for d in DISTRICTS}

# Long rows are split where a cell ends; each file is still the literal text an administrator would edit.
UNITS = (
    "unit_id,display_name,district_id,mailbox,acute_phone,acute_hours,contact_policy,reception_phone,"
    "phone_hours,team_model\n"
    'skarholmen-bestallarenhet,"Beställarenheten Skärholmen, Sätra och Västertorp",skarholmen,'
    "aldreomsorg.skarholmen@example.stockholm.se,08-508 24 000,1 08:00-16:30;2 08:00-16:30,phone_hours,"
    "08-508 24 100,2 09:00-11:00,false\n"
)
OFFICERS = (
    "officer_id,unit_id,given_name,family_name,role,specialties,languages,team,phone,email,active,caseload\n"
    "asa-oberg,skarholmen-bestallarenhet,Åsa,Öberg,ordinary_housing,dementia;sip,sv;fi,Team Söder,"
    "08-508 24 201,asa.oberg@example.stockholm.se,true,72\n"
    "bjorn-angstrom,skarholmen-bestallarenhet,Björn,Ångström-Ärlig,ordinary_housing,,sv,Team Söder,"
    "08-508 24 202,bjorn.angstrom@example.stockholm.se,true,65\n"
    "eva-ask,skarholmen-bestallarenhet,Eva,Ask,special_housing,,sv;ar,,"
    "08-508 24 203,eva.ask@example.stockholm.se,false,0\n"
)
ABSENCES = """\
absence_id,officer_id,start_time,end_time,substitute_id
semester,asa-oberg,2026-07-06T00:00:00+02:00,2026-08-03T00:00:00+02:00,bjorn-angstrom
"""
AREAS = """\
unit_id,area_id,display_name,postal_code_ranges
skarholmen-bestallarenhet,vastertorp,Västertorp,12730-12739;12750-12759
skarholmen-bestallarenhet,satra,Sätra,12740-12749
"""
RULES = """\
unit_id,rule_id,area_id,role,first_birth_day,last_birth_day,officer_id,team
skarholmen-bestallarenhet,vastertorp-1-15,vastertorp,,1,15,asa-oberg,
skarholmen-bestallarenhet,vastertorp-16-31,vastertorp,,16,31,bjorn-angstrom,
skarholmen-bestallarenhet,satra-alla,satra,,1,31,,Team Söder
"""
FILES = {
    "units.csv": UNITS,
    "officers.csv": OFFICERS,
    "absences.csv": ABSENCES,
    "areas.csv": AREAS,
    "rules.csv": RULES,
}


def parse(files: dict[str, str]):
    return parse_files(files, known_districts=KNOWN_DISTRICTS)


def refusal(files: dict[str, str]) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        parse(files)
    return caught.value


def with_line(content: str, line: int, old: str, new: str) -> str:
    """`content` with `old` replaced by `new` on one line (1 is the header)."""
    lines = content.splitlines(keepends=True)
    assert old in lines[line - 1], f"{old!r} is not on line {line}"
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    return "".join(lines)


def export(files: dict[str, str]) -> dict[str, str]:
    parsed = parse(files)
    return export_files(parsed.units, parsed.officers, parsed.absences, parsed.rule_sets)


def test_the_files_are_read_into_the_directory():
    parsed = parse(FILES)

    (unit,) = parsed.units
    asa, bjorn, eva = parsed.officers
    (semester,) = parsed.absences
    (rule_set,) = parsed.rule_sets
    assert unit.display_name == "Beställarenheten Skärholmen, Sätra och Västertorp"
    assert unit.contact_policy is ContactPolicy.PHONE_HOURS
    assert (asa.given_name, asa.family_name, asa.team) == ("Åsa", "Öberg", "Team Söder")
    assert asa.specialties == (Specialty.DEMENTIA, Specialty.SIP)
    assert bjorn.family_name == "Ångström-Ärlig"
    assert (eva.role, eva.active, eva.languages) == (OfficerRole.SPECIAL_HOUSING, False, ("sv", "ar"))
    assert semester.start == datetime(2026, 7, 5, 22, 0, tzinfo=UTC)
    assert [a.area_id for a in rule_set.areas] == ["vastertorp", "satra"]
    assert [r.rule_id for r in rule_set.rules] == ["vastertorp-1-15", "vastertorp-16-31", "satra-alla"]
    assert parsed.counts.areas == 2
    assert parsed.counts.rules == 3


def test_swedish_letters_survive_export_and_parse_unchanged():
    exported = export(FILES)

    assert exported == FILES
    assert export(exported) == exported
    assert "Ångström-Ärlig" in exported["officers.csv"]


def test_the_synthetic_city_is_written_back_exactly_as_it_was_read():
    files = directory_csv_files(generate_city(seed=7, officers=120))

    assert export(files) == files


def test_a_byte_order_mark_before_the_header_is_accepted():
    files = FILES | {"officers.csv": "\ufeff" + OFFICERS}

    assert len(parse(files).officers) == 3


@pytest.mark.parametrize(
    ("column", "old", "new"),
    [
        ("role", "special_housing", "wizard"),
        ("specialties", "special_housing,,", "special_housing,knitting,"),
        ("languages", "sv;ar", "svenska"),
        ("email", "eva.ask@example.stockholm.se", "eva.ask"),
        ("active", "false", "kanske"),
        ("caseload", ",0\n", ",många\n"),
        ("unit_id", "skarholmen-bestallarenhet", "atlantis-bestallarenhet"),
        ("phone", "08-508 24 203", "ring växeln"),
    ],
)
def test_one_bad_cell_among_good_rows_is_refused_naming_file_line_and_column(column, old, new):
    # Line 4 is an officer no absence or rule names, so nothing else is refused because of it.
    files = FILES | {"officers.csv": with_line(OFFICERS, 4, old, new)}

    error = refusal(files)

    assert [v.field for v in error.violations] == [f"officers.csv:4:{column}"]
    assert error.reason == "BAD_CSV"


def test_bad_cells_in_several_files_are_all_reported_at_once():
    files = FILES | {
        "units.csv": with_line(UNITS, 2, "1 08:00-16:30;", "måndag 8-16;"),
        "officers.csv": with_line(OFFICERS, 4, ",0\n", ",-3\n"),
    }

    assert [v.field for v in refusal(files).violations] == [
        "units.csv:2:acute_hours",
        "officers.csv:4:caseload",
    ]


def test_a_unit_of_an_unknown_district_is_refused():
    files = FILES | {"units.csv": with_line(UNITS, 2, ",skarholmen,", ",atlantis,")}

    assert [v.field for v in refusal(files).violations] == ["units.csv:2:district_id"]


def test_an_officer_listed_twice_is_refused_on_the_second_line():
    files = FILES | {"officers.csv": OFFICERS + OFFICERS.splitlines(keepends=True)[1]}

    violations = refusal(files).violations
    assert "officers.csv:5:officer_id" in [v.field for v in violations]


def test_a_row_with_more_cells_than_the_header_is_refused():
    files = FILES | {"officers.csv": with_line(OFFICERS, 4, ",0\n", ",0,extra\n")}

    error = refusal(files)

    assert [v.field for v in error.violations] == ["officers.csv:4"]
    assert "more than 12 cells" in error.violations[0].description


def test_a_rule_set_with_a_gap_is_refused_naming_the_rule_line():
    files = FILES | {"rules.csv": with_line(RULES, 3, ",16,31,", ",17,31,")}

    error = refusal(files)

    assert [v.field for v in error.violations] == ["rules.csv:3:first_birth_day"]
    assert "days 16–16 uncovered" in error.violations[0].description


def test_a_rule_naming_an_inactive_officer_is_refused_naming_its_officer_cell():
    files = FILES | {"rules.csv": with_line(RULES, 2, "asa-oberg", "eva-ask")}

    assert [v.field for v in refusal(files).violations] == ["rules.csv:2:officer_id"]


def test_an_absence_with_a_substitute_from_nowhere_is_refused_naming_the_substitute_cell():
    files = FILES | {"absences.csv": with_line(ABSENCES, 2, ",bjorn-angstrom", ",nils-nobody")}

    assert [v.field for v in refusal(files).violations] == ["absences.csv:2:substitute_id"]


def test_absences_of_one_officer_that_overlap_are_refused():
    overlapping = "sjuk,asa-oberg,2026-08-02T00:00:00+02:00,2026-08-10T00:00:00+02:00,bjorn-angstrom\n"
    files = FILES | {"absences.csv": ABSENCES + overlapping}

    error = refusal(files)

    assert [v.field for v in error.violations] == ["absences.csv:3:start_time"]
    assert "'semester'" in error.violations[0].description


def test_absences_of_one_officer_that_follow_each_other_are_accepted():
    following = "sjuk,asa-oberg,2026-08-03T00:00:00+02:00,2026-08-10T00:00:00+02:00,bjorn-angstrom\n"

    assert len(parse(FILES | {"absences.csv": ABSENCES + following}).absences) == 2


def test_an_absence_time_without_an_offset_is_refused():
    files = FILES | {"absences.csv": with_line(ABSENCES, 2, "2026-07-06T00:00:00+02:00", "2026-07-06T00:00")}

    error = refusal(files)

    assert [v.field for v in error.violations] == ["absences.csv:2:start_time"]
    assert "UTC offset" in error.violations[0].description


def test_a_header_missing_a_column_is_refused_naming_the_column():
    files = FILES | {"officers.csv": OFFICERS.replace(",email,", ",", 1)}

    error = refusal(files)

    # Absences and rules that name the officers of an unreadable file are refused after it.
    assert error.violations[0].field == "officers.csv:1"
    assert "missing email" in error.violations[0].description


def test_a_header_with_an_unknown_column_is_refused_naming_it():
    files = FILES | {"areas.csv": AREAS.replace("postal_code_ranges", "postal_code_ranges,notes", 1)}

    error = refusal(files)

    assert error.violations[0].field == "areas.csv:1"
    assert "unknown notes" in error.violations[0].description


def test_a_header_with_the_right_columns_in_another_order_is_refused():
    swapped = ",".join(reversed(HEADERS["rules.csv"]))
    files = FILES | {"rules.csv": swapped + "\n"}

    error = refusal(files)

    assert [v.field for v in error.violations] == ["rules.csv:1"]
    assert ",".join(HEADERS["rules.csv"]) in error.violations[0].description


def test_a_file_that_is_not_part_of_the_format_is_refused():
    assert [v.field for v in refusal(FILES | {"staff.csv": "x\n"}).violations] == ["staff.csv"]


@pytest.mark.parametrize("name", ["units.csv", "officers.csv"])
def test_the_units_and_officers_files_are_required(name):
    error = refusal(FILES | {name: ""})

    assert [(v.field, v.description) for v in error.violations] == [(name, "is required")]


def test_absences_areas_and_rules_may_be_left_out():
    parsed = parse({"units.csv": UNITS, "officers.csv": OFFICERS})

    assert parsed.counts.absences == parsed.counts.areas == parsed.counts.rules == 0
