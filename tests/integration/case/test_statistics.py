"""Statistics and billing over a set of cases whose every fact is known, built through the use cases.

The cases (local times, Europe/Stockholm; every resolve time lies inside opening hours):

  A  10 × hemtjänst, information, Farsta, phone, Tue 2026-11-10 09:00, each resolved at its first contact
     after 6, 12 … 60 minutes; satisfaction 5, 4, 4, 3 from the first four.
  B   8 × boende, ny ansökan, Bromma, e-mail, Thu 2026-12-03 10:00, forwarded at once.
     B1–B5 answered Fri 10:00 (8.5 working hours, in time), B6 Tue 12-08 10:00 (25 h, late);
     B7–B8 acute: B7 answered 14:00 (4 h, in time), B8 never, marked overdue at 17:00.
     Satisfaction 2 from B1, 5 from B7.
  C   6 × trygghetslarm, status, Järva (C1 registered under the retired Spånga-Tensta), letter,
     Mon 2026-12-14 09:00. C1–C3: a second contact at 10:00, resolved 11:00 (2 h). C4 open;
     C5 open with three contacts. C6 forwarded 09:00, returned 09:30, resolved 12:00 (3 h).
     Satisfaction 1 from C1.
  D   6 × hemtjänst, information, no district, anonymous, phone, Tue 2026-12-15 13:00, resolved at first
     contact after 10, 20 … 60 minutes.
  E   3 × hemtjänst, information, no district, anonymous, phone, open, registered half an hour after
     midnight on 2026-11-01 (still October in UTC), 2026-12-01 (still November in UTC) and 2027-01-01
     (outside the period): months are Stockholm's.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path

import pytest

from services.case import handlers
from services.case.api.mapping import billable_message
from services.case.handlers import Cases, escalate_overdue
from services.case.model import Billable, Case, Channel, FeedbackChannel, Statistics, StatisticsRow
from services.case.model.statistics import statistics_csv
from services.common.errors import InvalidArgument
from tests.integration.case.support import SQLITE_ONLY, case_settings, forward, register, running_cases
from tests.unit.case.builders import (
    AGENT,
    BERTIL,
    CARIN,
    Clock,
    FakeDirectory,
    contact,
    local,
    officer,
    unit_id_of,
    violated_fields,
)

ALL_DIMENSIONS = ("case_type", "case_class", "district", "channel", "month")
NOVEMBER, DECEMBER = date(2026, 11, 1), date(2026, 12, 31)


async def resolve(cases: Cases, case: Case) -> None:
    await handlers.resolve_case(cases=cases, caller=AGENT, case_id=case.case_id, resolution="Besvarat.")


async def feedback(cases: Cases, case: Case, district: str) -> None:
    await handlers.record_feedback(
        cases=cases,
        caller=officer(unit_id_of(district)),
        case_id=case.case_id,
        channel=FeedbackChannel.PHONE,
        note="Återkopplat.",
    )


async def satisfaction(cases: Cases, case: Case, score: int) -> None:
    await handlers.record_satisfaction(cases=cases, caller=AGENT, case_id=case.case_id, score=score)


async def build_known_cases(cases: Cases, clock: Clock) -> None:
    hemtjanst = {"case_type": "hemtjanst", "case_class": "information-och-vagledning"}

    # A
    clock.set(local(2026, 11, 10, 9, 0))
    group_a = [await register(cases, person=BERTIL, district_id="farsta", **hemtjanst) for _ in range(10)]
    for minutes, case in zip(range(6, 61, 6), group_a, strict=True):
        clock.set(local(2026, 11, 10, 9, minutes) if minutes < 60 else local(2026, 11, 10, 10, 0))
        await resolve(cases, case)
    for case, score in zip(group_a, (5, 4, 4, 3), strict=False):
        await satisfaction(cases, case, score)

    # B
    clock.set(local(2026, 12, 3, 10, 0))
    group_b = [
        await forward(
            cases,
            await register(
                cases,
                person=CARIN,
                case_type="boende",
                case_class="ny-ansokan",
                district_id="bromma",
                channel=Channel.EMAIL,
                acute=index >= 6,
            ),
        )
        for index in range(8)
    ]
    clock.set(local(2026, 12, 3, 14, 0))
    await feedback(cases, group_b[6], "bromma")
    clock.set(local(2026, 12, 3, 17, 0))
    assert await escalate_overdue(cases=cases) == 1  # B8
    clock.set(local(2026, 12, 4, 10, 0))
    for case in group_b[:5]:
        await feedback(cases, case, "bromma")
    clock.set(local(2026, 12, 8, 10, 0))
    await feedback(cases, group_b[5], "bromma")
    await satisfaction(cases, group_b[0], 2)
    await satisfaction(cases, group_b[6], 5)

    # C
    clock.set(local(2026, 12, 14, 9, 0))
    alarms = {
        "case_type": "trygghetslarm",
        "case_class": "status-pa-anmalan-arende",
        "channel": Channel.LETTER,
    }
    group_c = [
        await register(cases, person=CARIN, district_id="spanga-tensta" if index == 0 else "jarva", **alarms)
        for index in range(6)
    ]
    await forward(cases, group_c[5])
    clock.set(local(2026, 12, 14, 9, 30))
    await handlers.return_case(
        cases=cases, caller=officer(unit_id_of("jarva")), case_id=group_c[5].case_id, reason="Fel enhet."
    )
    clock.set(local(2026, 12, 14, 10, 0))
    for case in (*group_c[:3], group_c[4], group_c[4]):
        await handlers.add_contact(cases=cases, caller=AGENT, case_id=case.case_id, contact=contact())
    clock.set(local(2026, 12, 14, 11, 0))
    for case in group_c[:3]:
        await resolve(cases, case)
    clock.set(local(2026, 12, 14, 12, 0))
    await resolve(cases, group_c[5])
    await satisfaction(cases, group_c[0], 1)

    # D
    clock.set(local(2026, 12, 15, 13, 0))
    group_d = [await register(cases, person=None, district_id=None, **hemtjanst) for _ in range(6)]
    for minutes, case in zip(range(10, 61, 10), group_d, strict=True):
        clock.set(local(2026, 12, 15, 13, minutes) if minutes < 60 else local(2026, 12, 15, 14, 0))
        await resolve(cases, case)

    # E
    for year, month in ((2026, 11), (2026, 12), (2027, 1)):
        clock.set(local(year, month, 1, 0, 30))
        await register(cases, person=None, district_id=None, **hemtjanst)


def measures(row: StatisticsRow) -> tuple[object, ...]:
    """contacts, cases, resolved at first contact, its rate, forwarded, deadline-kept rate, acute,
    median and p90 working hours, satisfaction mean and answers."""
    return (
        row.contacts,
        row.cases,
        row.resolved_at_first_contact,
        round(row.first_contact_resolution_rate, 4),
        row.forwarded,
        round(row.deadline_kept_rate, 4),
        row.acute,
        row.median_hours,
        row.p90_hours,
        round(row.satisfaction_mean, 4),
        row.satisfaction_answers,
    )


def by_keys(statistics: Statistics) -> dict[tuple[str, ...], tuple[object, ...]]:
    return {row.keys: measures(row) for row in statistics.rows}


GROUP_A = (10, 10, 10, 1.0, 0, 0.0, 0, 0.5, 0.9, 4.0, 4)
GROUP_B = (8, 8, 0, 0.0, 8, 0.75, 2, 8.5, 25.0, 3.5, 2)
GROUP_C = (11, 6, 0, 0.0, 1, 0.0, 0, 2.0, 3.0, 1.0, 1)
WITHOUT_DISTRICT = (8, 8, 6, 0.75, 0, 0.0, 0, 0.5, 1.0, 0.0, 0)  # D and the first two of E
HEMTJANST = (18, 18, 16, 0.8889, 0, 0.0, 0, 0.5, 1.0, 4.0, 4)  # A, D, E
TOTAL = (37, 32, 16, 0.5, 9, 0.75, 2, 0.9, 8.5, 3.4286, 7)

EXPECTED: dict[str, dict[tuple[str, ...], tuple[object, ...]]] = {
    "case_type": {("boende",): GROUP_B, ("hemtjanst",): HEMTJANST, ("trygghetslarm",): GROUP_C},
    "case_class": {
        ("information-och-vagledning",): HEMTJANST,
        ("ny-ansokan",): GROUP_B,
        ("status-pa-anmalan-arende",): GROUP_C,
    },
    "district": {
        ("",): WITHOUT_DISTRICT,
        ("districts/bromma",): GROUP_B,
        ("districts/farsta",): GROUP_A,
        ("districts/jarva",): GROUP_C,
    },
    "channel": {("email",): GROUP_B, ("letter",): GROUP_C, ("phone",): HEMTJANST},
    "month": {
        ("2026-11",): (11, 11, 10, 0.9091, 0, 0.0, 0, 0.5, 0.9, 4.0, 4),  # A and one of E
        ("2026-12",): (26, 21, 6, 0.2857, 9, 0.75, 2, 2.0, 8.5, 2.6667, 3),
    },
}


@pytest.fixture
async def known(cases: Cases, clock: Clock) -> Cases:
    await build_known_cases(cases, clock)
    return cases


async def statistics(
    cases: Cases, *dimensions: str, start: date = NOVEMBER, end: date = DECEMBER
) -> Statistics:
    return await handlers.case_statistics(cases=cases, start=start, end=end, dimensions=list(dimensions))


async def test_statistics_by_each_dimension_give_the_known_numbers(known: Cases) -> None:
    for dimension, expected in EXPECTED.items():
        found = await statistics(known, dimension)

        assert list(by_keys(found)) == sorted(expected), dimension
        assert by_keys(found) == expected, dimension
        assert measures(found.total) == TOTAL, dimension


async def test_statistics_by_two_dimensions_and_over_a_shorter_period(known: Cases) -> None:
    by_type_and_month = await statistics(known, "case_type", "month")
    december = await statistics(known, "case_type", start=date(2026, 12, 1))

    assert by_keys(by_type_and_month) == {
        ("boende", "2026-12"): GROUP_B,
        ("hemtjanst", "2026-11"): (11, 11, 10, 0.9091, 0, 0.0, 0, 0.5, 0.9, 4.0, 4),
        ("hemtjanst", "2026-12"): (7, 7, 6, 0.8571, 0, 0.0, 0, 0.5, 1.0, 0.0, 0),
        ("trygghetslarm", "2026-12"): GROUP_C,
    }
    assert by_keys(december)[("hemtjanst",)] == (7, 7, 6, 0.8571, 0, 0.0, 0, 0.5, 1.0, 0.0, 0)
    assert measures(december.total) == (26, 21, 6, 0.2857, 9, 0.75, 2, 2.0, 8.5, 2.6667, 3)


@SQLITE_ONLY
async def test_the_csv_has_a_header_a_line_per_group_and_the_total(known: Cases) -> None:
    rows = list(csv.reader(io.StringIO(statistics_csv(await statistics(known, "district")))))

    assert rows[0] == [
        "district",
        "contacts",
        "cases",
        "resolved_at_first_contact",
        "first_contact_resolution_rate",
        "forwarded",
        "deadline_kept_rate",
        "acute",
        "median_working_hours_to_resolve",
        "p90_working_hours_to_resolve",
        "satisfaction_mean",
        "satisfaction_answers",
    ]
    assert [r[0] for r in rows[1:]] == [
        "",
        "districts/bromma",
        "districts/farsta",
        "districts/jarva",
        "total",
    ]
    assert rows[2] == [
        "districts/bromma",
        "8",
        "8",
        "0",
        "0.0000",
        "8",
        "0.7500",
        "2",
        "8.50",
        "25.00",
        "3.50",
        "2",
    ]
    assert rows[-1] == ["total", "37", "32", "16", "0.5000", "9", "0.7500", "2", "0.90", "8.50", "3.43", "7"]


# A dimension that is not one (group_by[0]) is refused by the servicer, which parses the request before this
# use case runs: see tests/e2e/case/test_case_service.py.
@SQLITE_ONLY
@pytest.mark.parametrize(
    ("start", "end", "dimensions", "field"),
    [
        (date(2026, 12, 1), date(2026, 11, 1), [], "end_date"),
        (NOVEMBER, DECEMBER, ["month", "month"], "group_by"),
    ],
)
async def test_a_bad_statistics_question_is_refused_naming_the_field(
    cases: Cases, start: date, end: date, dimensions: list[str], field: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await statistics(cases, *dimensions, start=start, end=end)

    assert violated_fields(refused.value) == [field]


# Who may read statistics (not citizens, not officers) is declared on the servicer and checked by the server
# before the call runs: see tests/e2e/case/test_case_service.py.


@pytest.mark.postgres
async def test_sqlite_and_postgresql_give_identical_statistics(postgres_url: str, tmp_path: Path) -> None:
    answers = []
    for name, url in (("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'case.db'}"), ("postgres", postgres_url)):
        clock = Clock(local(2026, 11, 1))
        settings = case_settings(url, tmp_path / name)
        async with running_cases(settings, directory=FakeDirectory(), clock=clock) as wiring:
            cases = wiring.core
            await build_known_cases(cases, clock)
            answers.append(
                [
                    statistics_csv(await statistics(cases, *dimensions))
                    for dimensions in ([], *([d] for d in ALL_DIMENSIONS), ALL_DIMENSIONS)
                ]
            )

    sqlite_answers, postgres_answers = answers
    assert sqlite_answers == postgres_answers
    assert sqlite_answers[0].splitlines()[-1].startswith("37,32,16,0.5000,9,0.7500,2,0.90,8.50,3.43,7")


# ---- billing ----


async def test_billable_contacts_are_the_contacts_of_the_month_per_district_and_unit(
    cases: Cases, clock: Clock
) -> None:
    farsta_unit = unit_id_of("farsta")
    clock.set(local(2026, 11, 27, 10, 0))
    spanning = await register(cases, district_id="farsta")
    clock.set(local(2026, 11, 30, 10, 0))
    await handlers.add_contact(cases=cases, caller=AGENT, case_id=spanning.case_id, contact=contact())
    await forward(cases, spanning)
    clock.set(local(2026, 12, 1, 0, 30))  # still November in UTC
    await handlers.add_contact(cases=cases, caller=AGENT, case_id=spanning.case_id, contact=contact())
    clock.set(local(2026, 12, 2, 10, 0))
    await handlers.add_contact(cases=cases, caller=AGENT, case_id=spanning.case_id, contact=contact())
    clock.set(local(2026, 12, 3, 10, 0))
    await forward(cases, await register(cases, district_id="farsta"))
    stays = await register(cases, district_id="bromma")
    await handlers.add_contact(cases=cases, caller=AGENT, case_id=stays.case_id, contact=contact())
    clock.set(local(2027, 1, 4, 10, 0))
    await handlers.add_contact(cases=cases, caller=AGENT, case_id=stays.case_id, contact=contact())

    def counted(rows: list[Billable]) -> list[tuple[str, str, int, int]]:
        # As CountBillableContacts answers them, by the names of district and unit.
        return [(m.district, m.unit, m.contacts, m.cases) for m in map(billable_message, rows)]

    async def billable(scope: str, month: str) -> list[tuple[str, str, int, int]]:
        return counted(
            await handlers.count_billable_contacts(
                cases=cases,
                month=datetime.strptime(month, "%Y-%m").date(),
                unit_id=scope.removeprefix("units/") if scope.startswith("units/") else None,
                district_id=scope.removeprefix("districts/") if scope.startswith("districts/") else None,
            )
        )

    assert await billable("", "2026-11") == [("districts/farsta", f"units/{farsta_unit}", 2, 1)]
    assert await billable("", "2026-12") == [
        ("districts/bromma", "", 2, 1),
        ("districts/farsta", f"units/{farsta_unit}", 3, 2),
    ]
    assert await billable(f"units/{farsta_unit}", "2026-12") == [
        ("districts/farsta", f"units/{farsta_unit}", 3, 2)
    ]
    assert await billable("districts/bromma", "2026-12") == [("districts/bromma", "", 2, 1)]
    assert await billable("districts/bromma", "2027-01") == [("districts/bromma", "", 1, 1)]


# A month or a scope that cannot be parsed ("2026-13", "bromma") is refused by the servicer, and agents are
# refused by the server before the call runs: see tests/e2e/case/test_case_service.py.
