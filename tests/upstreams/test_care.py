"""The synthetic care records: deterministic, the size of the city, and shaped as the README promises."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

import pytest

from services.common.ocr import OcrControl, parse_ocr
from services.common.personnummer import parse_person_number
from synthcity.care import (
    FEE_BEARING,
    FEE_YEARS,
    INVOICE_MONTHS,
    CareCity,
    CareRecord,
    DecisionStatus,
    Household,
    Income,
    IncomeKind,
    InvoiceKind,
    InvoiceStatus,
    decided_fee,
    generate_care,
    generate_care_city,
)
from synthcity.city import DISTRICTS, generate_city
from synthcity.people import generate_people

CITY_PEOPLE = 30_000


@pytest.fixture(scope="module")
def whole_city() -> CareCity:
    return generate_care_city(seed=2026, people=CITY_PEOPLE, officers=400)


@pytest.fixture(scope="module")
def records_by_person(whole_city: CareCity) -> dict[str, list[CareRecord]]:
    found: dict[str, list[CareRecord]] = defaultdict(list)
    for record in whole_city.records:
        found[record.person_number].append(record)
    return found


def test_the_same_seed_gives_the_same_records_and_another_seed_other_ones():
    first = generate_care_city(seed=7, people=300)
    again = generate_care_city(seed=7, people=300)
    other = generate_care_city(seed=8, people=300)

    assert first.records == again.records
    assert first.invoices == again.invoices
    assert first.providers == again.providers
    assert [r.person_number for r in first.records] != [r.person_number for r in other.records]


def test_the_care_seed_changes_the_care_but_not_the_people():
    city = generate_city(2026, 400)
    people = list(generate_people(city, 200))

    one = generate_care(city, people, seed=1)
    two = generate_care(city, people, seed=2)

    assert one.people == two.people
    assert one.records != two.records


def test_the_whole_city_has_thirty_thousand_people_over_the_eleven_districts(whole_city: CareCity):
    people = whole_city.people
    records = whole_city.records

    assert len(people) == CITY_PEOPLE
    assert len(records) == CITY_PEOPLE + len(whole_city.moved_from)
    assert {r.district_id for r in records} == {d.district_id for d in DISTRICTS}
    assert len({r.record_id for r in records}) == len(records)
    assert 0.006 < sum(r.protected_identity for r in records) / len(records) < 0.015
    assert 0.015 < len(whole_city.moved_from) / CITY_PEOPLE < 0.025


def test_each_person_has_a_current_record_with_their_own_officer(
    whole_city: CareCity, records_by_person: dict[str, list[CareRecord]]
):
    by_number = records_by_person
    city = whole_city.city
    officers = {officer.officer_id for officer in city.officers}

    for person in whole_city.people:
        current = [r for r in by_number[person.person_number] if r.current_decisions]
        assert [r.district_id for r in current] == [person.district_id]
        officer = current[0].responsible_officer
        assert (officer.officer_id, officer.team) == (person.officer_id, person.team)
        assert officer.officer_id in officers or (officer.team and not officer.officer_id)
        parse_person_number(person.person_number)


def test_who_moved_has_only_ended_decisions_in_the_old_district(
    whole_city: CareCity, records_by_person: dict[str, list[CareRecord]]
):
    by_number = records_by_person

    for person_number, old_district in whole_city.moved_from.items():
        old = next(r for r in by_number[person_number] if r.district_id == old_district)
        new = next(r for r in by_number[person_number] if r.district_id != old_district)
        assert old.decisions
        assert all(d.status is DecisionStatus.ENDED for d in old.decisions)
        assert all(d.valid_to is not None and d.valid_to < whole_city.city.today for d in old.decisions)
        assert new.current_decisions
        moved_on = min(d.valid_from for d in new.current_decisions)
        assert max(d.valid_to for d in old.decisions if d.valid_to) < moved_on


def test_decisions_are_well_formed_and_fees_follow_the_decisions(whole_city: CareCity):
    today = whole_city.city.today
    for record in whole_city.records:
        assert record.decisions
        provider_ids = {p.provider_id for p in whole_city.providers[record.district_id]}
        for decision in record.decisions:
            assert decision.provider_id in provider_ids
            if decision.status is DecisionStatus.ENDED:
                assert decision.valid_to is not None
                assert decision.valid_to < today
            elif decision.valid_to is not None:
                assert decision.valid_to >= today
        bears_fee = any(d.insats in FEE_BEARING for d in record.current_decisions)
        assert (record.fee_basis is not None) == bears_fee
        assert {p.provider_id for p in record.providers} == {d.provider_id for d in record.current_decisions}


def test_decided_fees_are_plausible_for_stockholm(whole_city: CareCity):
    cap = FEE_YEARS[2026].cap_ore
    fees = [r.fee_basis.decided_fee_ore for r in whole_city.records if r.fee_basis]
    paying = [fee for fee in fees if fee > 0]

    assert cap == 266_000
    assert all(0 <= fee <= cap and fee % 100 == 0 for fee in fees)
    # Most pay something, many the whole cap, some a few hundred kronor, some nothing at all.
    assert 0.6 < len(paying) / len(fees) < 0.95
    assert 100_000 < statistics.median(paying) < 250_000
    assert min(paying) < 50_000
    assert sum(fee == cap for fee in paying) > len(paying) * 0.1
    kinds = Counter(i.kind for r in whole_city.records if r.fee_basis for i in r.fee_basis.incomes)
    assert kinds[IncomeKind.BOSTADSTILLAGG] > 0.1 * len(fees)
    assert sum(1 for r in whole_city.records if r.fee_basis and r.fee_basis.invoice_recipient) > 0
    extras = Counter(key for r in whole_city.records for key, value in r.extra.items() if value)
    assert set(extras) == {"dagverksamhet_queue", "kbf", "hemvardsbidrag"}


def test_fee_payers_get_twelve_monthly_care_fee_invoices_of_their_fee(whole_city: CareCity):
    invoices = defaultdict(list)
    for invoice in whole_city.invoices:
        if invoice.kind is InvoiceKind.CARE_FEE:
            invoices[invoice.person_number].append(invoice)

    for record in whole_city.records:
        if record.fee_basis is None or not record.current_decisions:
            continue
        theirs = invoices.get(record.person_number, [])
        if record.fee_basis.decided_fee_ore == 0:
            assert theirs == []
            continue
        assert len(theirs) == INVOICE_MONTHS
        assert len({i.period for i in theirs}) == INVOICE_MONTHS
        assert {i.amount_ore for i in theirs} == {record.fee_basis.decided_fee_ore}


def test_invoices_are_paid_partly_paid_unpaid_or_overdue_with_valid_ocrs(whole_city: CareCity):
    invoices = whole_city.invoices
    today = whole_city.city.today
    statuses = Counter(i.status for i in invoices)

    assert set(statuses) == set(InvoiceStatus)
    assert statuses[InvoiceStatus.PAID] > 0.8 * len(invoices)
    assert Counter(i.kind for i in invoices)[InvoiceKind.OTHER] > 0
    assert len({i.ocr for i in invoices}) == len(invoices)
    assert len({i.invoice_ref for i in invoices}) == len(invoices)
    # Every seventh OCR is parsed, which keeps the test quick; the small city's are all checked over HTTP.
    for invoice in invoices[::7]:
        assert parse_ocr(invoice.ocr, control=OcrControl.VARIABLE_LENGTH) == invoice.ocr
    for invoice in invoices:
        assert invoice.updated_at <= whole_city.as_of
        if invoice.status is InvoiceStatus.OVERDUE:
            assert invoice.due_date < today
            assert invoice.remaining_ore == invoice.amount_ore
        if invoice.status is InvoiceStatus.PARTLY_PAID:
            assert 0 < invoice.remaining_ore < invoice.amount_ore
        if invoice.status is InvoiceStatus.PAID:
            assert invoice.remaining_ore == 0


def test_the_fee_is_the_tariff_or_the_room_left_after_the_reserved_amount():
    pension = (Income(IncomeKind.PENSION, 2_500_000),)
    small = (Income(IncomeKind.PENSION, 1_000_000), Income(IncomeKind.BOSTADSTILLAGG, 300_000))
    common = {"housing_cost_ore": 700_000, "tariff_ore": 200_000, "year": 2026}

    assert decided_fee(incomes=pension, partner_incomes=(), household=Household.SINGLE, **common) == 200_000
    # 13,000 kr less (7,296 kr minimibelopp + 7,000 kr housing) leaves nothing.
    assert decided_fee(incomes=small, partner_incomes=(), household=Household.SINGLE, **common) == 0
    # A couple is each reckoned with half the income and half the housing: (25,000 + 10,000) / 2 = 17,500
    # less 5,953 kr minimibelopp and 3,500 kr housing leaves 8,047 kr, more than the tariff.
    couple = decided_fee(incomes=pension, partner_incomes=small[:1], household=Household.COHABITING, **common)
    assert couple == 200_000
    room = decided_fee(
        incomes=(Income(IncomeKind.PENSION, 1_600_000),),
        partner_incomes=(),
        household=Household.SINGLE,
        **common,
    )
    assert room == (1_600_000 - FEE_YEARS[2026].minimum_ore(Household.SINGLE) - 700_000) // 100 * 100
