from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from services.case.model import AT_UNIT, Case, CaseStatus, Channel, EventKind
from services.case.store import cases as cases_table
from services.case.store.repository import case_values
from services.common.business_calendar import deadline_after, is_open, to_local
from services.common.errors import InvalidArgument
from services.common.personnummer import parse_person_number
from synthcity.cases import (
    ACUTE_SHARE,
    CASE_CLASS_SHARES,
    CHANNEL_SHARES,
    case_rows,
    expected_case_type_shares,
    generate_cases,
    unit_queue_rows,
)
from synthcity.city import City, generate_city

# A Monday at 14:00 in Stockholm: the last day's cases are partly done, partly still under way.
NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
MONTH_START = date(2026, 10, 24)
QUARTER = (date(2025, 9, 1), date(2025, 11, 30))


@pytest.fixture(scope="module")
def city() -> City:
    return generate_city()


@pytest.fixture(scope="module")
def month(city: City) -> list[Case]:
    return list(generate_cases(city, start=MONTH_START, end=NOW.date(), now=NOW, seed=11))


@pytest.fixture(scope="module")
def quarter(city: City) -> list[dict[str, object]]:
    """Three autumn months of finished cases, in the fast form: enough for shares to settle."""
    return list(case_rows(city, start=QUARTER[0], end=QUARTER[1], seed=5))


def share(rows: list[dict[str, object]], key: str, value: object) -> float:
    return sum(1 for row in rows if row[key] == value) / len(rows)


# ---- determinism ---------------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_cases(city: City) -> None:
    first = list(generate_cases(city, start=date(2026, 11, 16), end=date(2026, 11, 20), seed=3))
    again = list(generate_cases(city, start=date(2026, 11, 16), end=date(2026, 11, 20), seed=3))
    assert first == again
    assert len(first) > 1000


def test_another_seed_gives_other_cases(city: City) -> None:
    one = list(case_rows(city, start=date(2026, 11, 16), end=date(2026, 11, 16), seed=3))
    other = list(case_rows(city, start=date(2026, 11, 16), end=date(2026, 11, 16), seed=4))
    assert one != other


def test_fast_rows_are_the_cases_the_model_gives(city: City, month: list[Case]) -> None:
    rows = list(case_rows(city, start=MONTH_START, end=NOW.date(), now=NOW, seed=11))
    assert len(rows) == len(month)
    assert rows == [case_values(case) for case in month]


def test_fast_rows_have_every_column_of_the_cases_table_but_the_id(quarter: list[dict[str, object]]) -> None:
    assert set(quarter[0]) == {column.name for column in cases_table.columns} - {"id"}


def test_a_later_now_changes_nothing_that_had_already_happened(city: City) -> None:
    earlier = list(case_rows(city, start=date(2026, 11, 2), end=date(2026, 11, 6), now=NOW, seed=2))
    finished = list(case_rows(city, start=date(2026, 11, 2), end=date(2026, 11, 6), seed=2))
    assert [r["create_time"] for r in earlier] == [r["create_time"] for r in finished]
    assert [r["case_type"] for r in earlier] == [r["case_type"] for r in finished]


# ---- volumes and proportions ---------------------------------------------------------------------------


def test_about_2200_cases_are_registered_a_week(quarter: list[dict[str, object]]) -> None:
    weeks = ((QUARTER[1] - QUARTER[0]).days + 1) / 7
    assert 2000 <= len(quarter) / weeks <= 2400


def test_case_types_follow_the_2007_tables(quarter: list[dict[str, object]]) -> None:
    counts = Counter(row["case_type"] for row in quarter)
    expected = expected_case_type_shares()
    assert set(counts) <= set(expected)
    for case_type, wanted in expected.items():
        assert counts[case_type] / len(quarter) == pytest.approx(wanted, abs=0.01), case_type
    assert counts.most_common(2)[0][0] == "hemtjanst"


def test_case_classes_are_40_9_21_12_18_percent(quarter: list[dict[str, object]]) -> None:
    assert CASE_CLASS_SHARES["information-och-vagledning"] == 0.40
    for case_class, wanted in CASE_CLASS_SHARES.items():
        assert share(quarter, "case_class", case_class) == pytest.approx(wanted, abs=0.01), case_class


def test_the_phone_is_the_largest_channel_then_email(quarter: list[dict[str, object]]) -> None:
    shares = {channel: share(quarter, "first_channel", channel.value) for channel in Channel}
    assert shares[Channel.PHONE] == pytest.approx(0.73, abs=0.015)
    ranked = sorted(shares, key=lambda channel: -shares[channel])
    assert ranked == list(CHANNEL_SHARES)


def test_about_two_thirds_are_answered_at_first_contact(quarter: list[dict[str, object]]) -> None:
    assert 0.64 <= share(quarter, "resolved_at_first_contact", True) <= 0.70
    assert 0.26 <= share(quarter, "forwarded_ever", True) <= 0.32


def test_acute_cases_are_about_1488_of_95979(quarter: list[dict[str, object]]) -> None:
    assert share(quarter, "acute", True) == pytest.approx(ACUTE_SHARE, abs=0.004)


def test_about_one_case_in_twenty_is_anonymous(quarter: list[dict[str, object]]) -> None:
    assert share(quarter, "person_number", None) == pytest.approx(0.05, abs=0.01)


def test_some_cases_take_two_or_three_contacts(quarter: list[dict[str, object]]) -> None:
    counts = Counter(row["contact_count"] for row in quarter)
    assert set(counts) == {1, 2, 3}
    assert 0.05 <= (counts[2] + counts[3]) / len(quarter) <= 0.15


def test_satisfaction_answers_average_about_4_4(quarter: list[dict[str, object]]) -> None:
    scores = [row["satisfaction"] for row in quarter if row["satisfaction"] is not None]
    assert 0.10 <= len(scores) / len(quarter) <= 0.20
    assert sum(scores) / len(scores) == pytest.approx(4.4, abs=0.05)  # type: ignore[arg-type]
    assert all(row["status"] == "closed" for row in quarter if row["satisfaction"] is not None)


def test_most_forwarded_cases_are_answered_in_time_and_some_late(quarter: list[dict[str, object]]) -> None:
    judged = [row["deadline_kept"] for row in quarter if row["deadline_kept"] is not None]
    kept = sum(1 for value in judged if value) / len(judged)
    assert 0.80 <= kept <= 0.93


def test_at_now_some_cases_are_open_some_overdue_and_most_closed(month: list[Case]) -> None:
    statuses = Counter(case.status for case in month)
    assert statuses[CaseStatus.CLOSED] / len(month) > 0.9
    assert statuses[CaseStatus.OPEN] > 0
    assert all(statuses[status] > 0 for status in AT_UNIT)
    assert any(case.overdue and case.status is not CaseStatus.CLOSED for case in month)


# ---- consistency ---------------------------------------------------------------------------------------


def test_every_forwarded_case_points_at_a_unit_of_the_city_with_its_mailbox(
    city: City, month: list[Case]
) -> None:
    forwarded = [case for case in month if case.forwarded_ever]
    assert forwarded
    for case in forwarded:
        assert case.unit_id is not None
        unit = city.unit(case.unit_id)
        assert case.unit_mailbox == unit.mailbox
        assert case.district_id == unit.district_id
        assert case.officer_id or case.team
        if case.officer_id:
            assert city.officer(case.officer_id).unit_id == unit.unit_id


def test_a_forwarded_case_is_due_two_working_days_after_it_was_forwarded(month: list[Case]) -> None:
    for case in month:
        if case.forwarded_ever and not case.acute:
            assert case.forward_time is not None
            assert case.deadline is not None
            assert case.deadline > case.forward_time
            assert case.deadline == deadline_after(case.forward_time, 2)


def test_a_forwarded_acute_case_is_due_the_same_working_day(month: list[Case]) -> None:
    acute = [case for case in month if case.acute]
    assert acute
    for case in acute:
        assert case.create_time is not None
        if not case.forwarded_ever:
            # Only a call still under way at `now` has not been forwarded yet.
            assert NOW - case.create_time < timedelta(minutes=5)
            continue
        assert case.forward_time is not None
        assert case.deadline is not None
        assert case.deadline > case.forward_time
        assert to_local(case.deadline).date() == to_local(case.forward_time).date()


def test_first_contact_resolution_only_for_one_contact_never_forwarded(month: list[Case]) -> None:
    resolved_at_once = [case for case in month if case.resolved_at_first_contact]
    assert resolved_at_once
    for case in resolved_at_once:
        assert case.contact_count == 1
        assert not case.forwarded_ever
        assert case.status is CaseStatus.CLOSED


def test_contacts_arrive_only_while_aldre_direkt_is_open(month: list[Case]) -> None:
    for case in month:
        assert case.contacts
        assert len(case.contacts) == case.contact_count
        for contact in case.contacts:
            assert contact.create_time is not None
            assert is_open(contact.create_time)


def test_the_timeline_is_in_order_and_nothing_happens_after_now(month: list[Case]) -> None:
    for case in month:
        times = [event.time for event in case.events]
        assert times == sorted(times)
        assert times[-1] <= NOW
        assert case.events[0].kind is EventKind.CREATED
        if case.status is CaseStatus.CLOSED:
            closed_at = [e for e in case.events if e.kind is EventKind.CLOSED]
            assert len(closed_at) == 1
            assert closed_at[0].time == case.close_time


def test_late_answers_follow_an_overdue_mark(month: list[Case]) -> None:
    late = [case for case in month if case.deadline_kept is False]
    assert late
    for case in late:
        kinds = [event.kind for event in case.events]
        assert EventKind.OVERDUE in kinds
        overdue_at = case.events[kinds.index(EventKind.OVERDUE)].time
        assert case.deadline is not None
        assert overdue_at > case.deadline


def test_people_have_valid_person_numbers_and_live_in_the_case_district(month: list[Case]) -> None:
    for case in month[:2000]:
        if case.person_number is not None:
            assert str(parse_person_number(case.person_number, field="person_number")) == case.person_number
            assert case.district_id is not None


def test_written_contacts_carry_an_example_address_and_others_name_the_caller(month: list[Case]) -> None:
    for case in month:
        for contact in case.contacts:
            if contact.channel in (Channel.EMAIL,):
                assert contact.contact_email.endswith(".example")
            if contact.party.value != "self":
                assert contact.contact_name.strip()


# ---- a unit's queue ------------------------------------------------------------------------------------


def test_a_unit_queue_holds_open_cases_of_that_unit_forwarded_before_now(city: City) -> None:
    unit_id = city.units[1].unit_id
    rows = unit_queue_rows(city, unit_id, 500, now=NOW, seed=9)
    assert len(rows) == 500
    for row in rows:
        assert row["unit_id"] == unit_id
        assert row["status"] in {status.value for status in AT_UNIT}
        assert row["forward_time"] <= NOW  # type: ignore[operator]
        assert row["overdue"] == (row["deadline"] + timedelta(minutes=1) <= NOW)  # type: ignore[operator]
    assert any(row["overdue"] for row in rows)
    assert not all(row["overdue"] for row in rows)


# ---- refusals ------------------------------------------------------------------------------------------


def test_a_period_that_ends_before_it_starts_is_refused(city: City) -> None:
    with pytest.raises(InvalidArgument) as refused:
        list(case_rows(city, start=date(2026, 11, 2), end=date(2026, 11, 1)))
    assert refused.value.violations[0].field == "end"


def test_a_naive_now_is_refused(city: City) -> None:
    with pytest.raises(InvalidArgument):
        list(generate_cases(city, start=date(2026, 11, 2), end=date(2026, 11, 2), now=datetime(2026, 11, 2)))
