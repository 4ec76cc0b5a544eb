"""What the mirror may show of a person: sections by grant, districts by agreement, protected identity."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.common.ocr import generate_ocr
from services.mirror.model.overview import (
    Agreement,
    DistrictRecord,
    Section,
    WithheldReason,
    allowed_sections,
    assemble,
    routing_of,
)
from services.mirror.model.records import (
    MalformedRecord,
    canonical,
    parse_invoice,
    parse_person,
    person_from_stored,
)

TODAY = date(2026, 12, 1)
EVERYTHING = frozenset(Section)


def person_json(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "p-bromma-1",
        "updated_at": "2026-11-30T10:15:00.123456Z",
        "person_number": "193804122426",
        "name": {"given": "Astrid", "family": "Lindqvist"},
        "address": {"street": "Björkvägen 12", "postal_code": "168 30", "city": "Bromma"},
        "protected_identity": False,
        "responsible_officer": {"officer_id": "o-1", "team": "", "since": "2025-02-01"},
        "decisions": [
            {
                "id": "d-1",
                "insats": "hemtjanst",
                "law": "SoL",
                "scope": {"hours_per_month": 24},
                "valid_from": "2025-01-01",
                "valid_to": None,
                "status": "current",
                "provider_id": "prov-1",
            },
            {
                "id": "d-0",
                "insats": "trygghetslarm",
                "law": "SoL",
                "scope": {},
                "valid_from": "2023-01-01",
                "valid_to": "2024-01-01",
                "status": "ended",
                "provider_id": "",
            },
        ],
        "providers": [
            {"id": "prov-1", "name": "Omsorg AB", "kind": "hemtjanst", "phone": "08-1", "email": "a@b.se"}
        ],
        "fee_basis": {
            "incomes": [{"kind": "pension", "monthly_ore": 1_850_000}],
            "housing_cost_ore": 650_000,
            "household": "single",
            "partner_incomes": [],
            "decided_fee_ore": 180_000,
            "decided_from": "2026-01-01",
            "invoice_recipient": None,
        },
        "extra": {"dagverksamhet_queue": {"position": 3, "since": "2026-10-01"}, "kbf": None},
    }
    record.update(changes)
    return record


def agreement(district: str, *sections: Section, **changes: Any) -> Agreement:
    values: dict[str, Any] = {
        "district_id": district,
        "reference": f"PUB-{district}",
        "valid_from": date(2023, 7, 1),
        "valid_to": None,
        "sections": frozenset(sections or Section),
    }
    return Agreement(**(values | changes))


def at(district: str, **changes: Any) -> DistrictRecord:
    return DistrictRecord(district, f"paraply-{district}", parse_person(person_json(**changes)))


def overview(
    records: list[DistrictRecord], *, granted: frozenset[Section] = EVERYTHING, **agreements: Agreement
) -> Any:
    return assemble(
        person_number="193804122426",
        records=records,
        invoices=[],
        wanted=granted,
        granted=granted,
        agreements=agreements or {"bromma": agreement("bromma")},
        today=TODAY,
    )


def test_a_record_is_read_strictly_and_stored_in_a_form_that_round_trips() -> None:
    record = parse_person(person_json())
    assert record.postal_code == "16830"
    assert record.decisions[0].scope == {"hours_per_month": "24"}
    assert dict(record.other_facts) == {"dagverksamhet_queue": {"position": "3", "since": "2026-10-01"}}
    assert person_from_stored(canonical(record)) == record


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"person_number": "194001011231"}, "person_number"),
        ({"updated_at": "yesterday"}, "updated_at"),
        ({"decisions": "none"}, "decisions"),
        ({"protected_identity": "no"}, "protected_identity"),
        ({"name": None}, "name"),
    ],
)
def test_a_malformed_record_is_refused_naming_the_field_not_the_value(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MalformedRecord) as refused:
        parse_person(person_json(**change))
    assert reason in refused.value.reason
    assert "194001011231" not in refused.value.reason


def test_an_invoice_with_a_wrong_ocr_check_digit_is_malformed() -> None:
    ocr = generate_ocr("1000123202610")
    good = {
        "id": "t-1",
        "updated_at": "2026-11-30T10:15:00Z",
        "customer_id": "100123",
        "person_number": "193804122426",
        "voucher_no": "1",
        "invoice_ref": "F2026-1",
        "ocr": ocr,
        "kind": "care_fee",
        "period": "2026-10",
        "amount_ore": 180000,
        "remaining_ore": 0,
        "due_date": "2026-11-30",
        "status": "paid",
    }
    assert parse_invoice(good).paid
    with pytest.raises(MalformedRecord, match="ocr"):
        parse_invoice({**good, "ocr": ocr[:-1] + str((int(ocr[-1]) + 1) % 10)})


def test_everything_the_grant_and_agreement_allow_is_shown_and_ended_decisions_are_not() -> None:
    shown = overview([at("bromma")])
    assert [d.decision_id for _, d in shown.decisions] == ["d-1"]
    assert [p.provider_id for _, p in shown.providers] == ["prov-1"]
    assert shown.fee_bases[0][1].decided_fee_ore == 180_000
    assert shown.officer[1].officer_id == "o-1"
    assert shown.identity.given_name == "Astrid"
    assert shown.withheld == ()


def test_a_district_whose_agreement_leaves_out_the_fee_basis_withholds_it_and_says_why() -> None:
    without_fees = agreement("skarholmen", *(s for s in Section if s is not Section.FEE_BASIS))
    shown = overview([at("skarholmen")], skarholmen=without_fees)
    assert shown.fee_bases == ()
    assert shown.decisions
    [withheld] = shown.withheld
    assert (withheld.section, withheld.district_id, withheld.reason) == (
        Section.FEE_BASIS,
        "skarholmen",
        WithheldReason.NOT_IN_AGREEMENT,
    )


def test_a_field_an_agreement_leaves_out_is_withheld_alone() -> None:
    no_phones = agreement("bromma", withheld_fields=frozenset({"providers.phone"}))
    shown = overview([at("bromma")], bromma=no_phones)
    assert shown.providers[0][1].phone == ""
    assert shown.providers[0][1].email == "a@b.se"
    assert shown.withheld[0].field == "providers.phone"


def test_sections_the_consent_does_not_cover_are_withheld_as_not_granted() -> None:
    granted = allowed_sections(frozenset({"decisions"}))
    shown = assemble(
        person_number="193804122426",
        records=[at("bromma")],
        invoices=[],
        wanted=EVERYTHING,
        granted=granted,
        agreements={"bromma": agreement("bromma")},
        today=TODAY,
    )
    assert shown.decisions
    assert shown.fee_bases == ()
    assert {w.section for w in shown.withheld if w.reason is WithheldReason.SCOPE_NOT_GRANTED} == {
        Section.FEE_BASIS,
        Section.PROVIDERS,
        Section.OFFICER,
        Section.INVOICES,
    }


def test_an_expired_agreement_shows_nothing_of_its_district() -> None:
    expired = agreement("bromma", valid_to=date(2025, 12, 31))
    shown = overview([at("bromma")], bromma=expired)
    assert shown.decisions == ()
    assert all(w.reason is WithheldReason.NO_VALID_AGREEMENT for w in shown.withheld)


def test_name_and_address_of_a_person_with_protected_identity_are_never_shown() -> None:
    shown = overview([at("bromma", protected_identity=True)])
    assert shown.identity.protected
    assert shown.identity.given_name == ""
    assert shown.identity.street == ""
    assert any(w.reason is WithheldReason.PROTECTED_IDENTITY for w in shown.withheld)
    assert routing_of([at("bromma", protected_identity=True)]).postal_code == ""


def test_a_person_who_moved_is_routed_to_the_district_of_their_current_decisions() -> None:
    old = at(
        "bromma",
        id="p-bromma-9",
        updated_at="2026-01-01T00:00:00Z",
        decisions=[{**person_json()["decisions"][1]}],
    )
    new = at(
        "farsta", id="p-farsta-9", responsible_officer={"officer_id": "o-farsta", "team": "", "since": None}
    )
    found = routing_of([old, new])
    shown = overview([old, new], bromma=agreement("bromma"), farsta=agreement("farsta"))
    assert (found.district_id, found.officer_id) == ("farsta", "o-farsta")
    assert shown.home_districts == ("farsta", "bromma")
    assert [d for d, _ in shown.decisions] == ["farsta"]


def test_a_person_in_no_source_is_an_answer_not_an_error() -> None:
    shown = overview([])
    assert not shown.found
    assert "Ingen uppgift" in shown.summary
    assert not routing_of([]).found


def test_the_summary_names_where_to_log_in_for_what_is_withheld() -> None:
    without_fees = agreement("bromma", *(s for s in Section if s is not Section.FEE_BASIS))
    shown = overview([at("bromma")], bromma=without_fees)
    assert "bromma" in shown.summary
