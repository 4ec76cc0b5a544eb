"""From what a district records of a person, through the mirror, to the inputs of a month's fee: which fee
basis, the household, the services of the decisions in force, and every refusal naming why."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from fractions import Fraction

import pytest

from services.common.errors import FailedPrecondition
from services.fees.model import Cohabiting, IncomeKind, Relation, Single, SpecialHousing
from services.fees.model.basis import (
    DecisionFact,
    FeeBasisFact,
    IncomeFact,
    PersonFees,
    SourceFact,
    WithheldFact,
    inputs_for_month,
)

NOVEMBER = date(2026, 11, 1)
SYNCED = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)


def basis(district: str = "bromma", **changes: object) -> FeeBasisFact:
    found = FeeBasisFact(
        district_id=district,
        incomes=(IncomeFact("pension", 1_600_000), IncomeFact("bostadstillagg", 150_000)),
        housing_cost_ore=600_000,
        household="single",
        partner_incomes=(),
        decided_fee_ore=150_000,
        decided_from=date(2026, 1, 1),
    )
    return replace(found, **changes)  # type: ignore[arg-type]


def decision(service: str, district: str = "bromma", **changes: object) -> DecisionFact:
    found = DecisionFact(
        district_id=district,
        decision_id=f"d-{district}-1-{service}",
        service=service,
        law="SoL",
        scope={},
        valid_from=date(2025, 3, 1),
        valid_to=None,
    )
    return replace(found, **changes)  # type: ignore[arg-type]


def person(*decisions: DecisionFact, **changes: object) -> PersonFees:
    found = PersonFees(
        found=True,
        home_districts=("bromma",),
        fee_bases=(basis(),),
        decisions=decisions,
        withheld=(),
        sources=(
            SourceFact("paraply-bromma", "bromma", SYNCED, False),
            SourceFact("agresso", "", SYNCED, True),
        ),
    )
    return replace(found, **changes)  # type: ignore[arg-type]


def mapped(who: PersonFees, month: date = NOVEMBER, *, under_act: bool = True):
    return inputs_for_month(who, month, rent_under_tenancy_act=under_act, current_month=NOVEMBER)


def refusal(who: PersonFees, month: date = NOVEMBER) -> FailedPrecondition:
    with pytest.raises(FailedPrecondition) as caught:
        mapped(who, month)
    return caught.value


def test_a_single_person_with_home_help_and_an_alarm_gets_their_incomes_housing_and_services():
    found = mapped(person(decision("hemtjanst", scope={"hours_per_month": "24"}), decision("trygghetslarm")))

    inputs = found.inputs
    assert inputs.household == Single()
    assert inputs.incomes == {IncomeKind.PENSION: 1_600_000, IncomeKind.BOSTADSTILLAGG: 150_000}
    assert inputs.housing_cost_ore == 600_000
    assert inputs.services.hemtjanst_hours == 24
    assert inputs.services.trygghetslarm
    assert inputs.special_housing is None
    assert found.district_id == "bromma"
    assert found.decided_fee_ore == 150_000
    assert (found.basis_as_of, found.basis_stale) == (SYNCED, False)
    assert found.assumptions == ()


def test_cohabiting_is_taken_for_spouses_and_the_answer_says_so():
    cohabiting = basis(household="cohabiting", partner_incomes=(IncomeFact("pension", 1_200_000),))
    found = mapped(person(decision("hemtjanst", scope={"hours_per_month": "8"}), fee_bases=(cohabiting,)))

    assert found.inputs.household == Cohabiting({IncomeKind.PENSION: 1_200_000}, Relation.MAKAR)
    said = " ".join(found.assumptions)
    assert "gifta eller registrerade partner" in said
    assert "delas lika" in said


def test_two_incomes_of_one_kind_are_one_income_of_that_kind():
    two = basis(incomes=(IncomeFact("pension", 1_000_000), IncomeFact("pension", 250_000)))
    found = mapped(person(decision("trygghetslarm"), fee_bases=(two,)))
    assert found.inputs.incomes == {IncomeKind.PENSION: 1_250_000}


def test_in_special_housing_the_housing_cost_is_the_rent_of_the_home_as_the_parameter_says():
    home = person(decision("sarskilt_boende"), fee_bases=(basis(housing_cost_ore=700_000),))

    under = mapped(home, under_act=True).inputs
    outside = mapped(home, under_act=False).inputs

    assert under.special_housing == SpecialHousing(rent_ore=700_000, under_tenancy_act=True)
    assert outside.special_housing == SpecialHousing(rent_ore=700_000, under_tenancy_act=False)
    assert under.housing_cost_ore == outside.housing_cost_ore == 0
    assert "hyreslagen" in " ".join(mapped(home).assumptions)


def test_a_decision_starting_mid_month_counts_from_the_month_after_and_one_from_the_first_at_once():
    late = decision("hemtjanst", scope={"hours_per_month": "10"}, valid_from=date(2026, 11, 14))
    first = decision("trygghetslarm", valid_from=date(2026, 11, 1))

    november = mapped(person(late, first))
    december = mapped(person(late, first), date(2026, 12, 1))

    assert november.inputs.services.hemtjanst_hours == 0
    assert november.inputs.services.trygghetslarm
    assert "32 kap. 10 §" in " ".join(november.assumptions)
    assert december.inputs.services.hemtjanst_hours == 10


def test_a_decision_ending_mid_month_still_counts_that_month_and_not_the_next():
    ending = decision("matdistribution", valid_to=date(2026, 11, 14))
    assert mapped(person(ending)).inputs.services.matdistribution
    assert not mapped(person(ending), date(2026, 12, 1)).inputs.services.matdistribution


def test_short_term_care_counts_the_days_of_the_stay_in_the_month_at_most_the_nights_granted():
    stay = decision(
        "korttidsvard", scope={"nights": "14"}, valid_from=date(2026, 11, 20), valid_to=date(2026, 12, 10)
    )
    long_stay = replace(stay, scope={"nights": "28"}, valid_from=date(2026, 11, 10))

    assert mapped(person(stay)).inputs.services.korttidsvard_days == 11  # 20–30 November
    assert mapped(person(stay), date(2026, 12, 1)).inputs.services.korttidsvard_days == 10
    assert mapped(person(long_stay)).inputs.services.korttidsvard_days == 21  # 10–30 November
    assert mapped(person(replace(stay, scope={"nights": "5"}))).inputs.services.korttidsvard_days == 5


def test_lss_decisions_and_services_without_a_tariff_are_left_out_and_named():
    found = mapped(
        person(
            decision("korttidsvard", law="LSS", scope={"nights": "7"}),
            decision("ledsagning"),
            decision("trygghetslarm"),
        )
    )
    assert found.inputs.services.korttidsvard_days == 0
    said = " ".join(found.assumptions)
    assert "LSS" in said
    assert "korttidsvård" in said
    assert "ledsagning" in said


def test_quarter_hours_of_home_help_and_several_decisions_add_up():
    found = mapped(
        person(
            decision("hemtjanst", scope={"hours_per_month": "10.25"}),
            decision("hemtjanst", decision_id="d-2", scope={"hours_per_month": "4"}),
        )
    )
    assert found.inputs.services.hemtjanst_hours == Fraction(57, 4)


def test_decisions_of_another_district_do_not_count():
    found = mapped(person(decision("hemtjanst", "farsta", scope={"hours_per_month": "30"})))
    assert found.inputs.services.hemtjanst_hours == 0
    assert "andra stadsdelsområden" in " ".join(found.assumptions)


def test_a_month_other_than_the_current_one_says_it_is_calculated_from_todays_records():
    found = mapped(person(decision("trygghetslarm")), date(2026, 6, 1))
    assert "i dag" in " ".join(found.assumptions)


def test_a_person_no_district_holds_has_no_fee_basis():
    error = refusal(person(found=False, home_districts=(), fee_bases=()))
    assert error.reason == "NO_FEE_BASIS"


def test_a_person_whose_decisions_bear_no_fee_has_no_fee_basis():
    error = refusal(person(decision("trygghetslarm"), fee_bases=()))
    assert error.reason == "NO_FEE_BASIS"
    assert error.metadata["district"] == "districts/bromma"


def test_a_fee_basis_the_districts_agreement_withholds_is_refused_naming_the_district():
    withheld = WithheldFact("fee_basis", "skarholmen", "NOT_IN_AGREEMENT")
    error = refusal(person(home_districts=("skarholmen",), fee_bases=(), withheld=(withheld,)))
    assert error.reason == "FEE_BASIS_WITHHELD"
    assert error.metadata["district"] == "districts/skarholmen"
    assert "agreement" in error.message


def test_withheld_decisions_or_fields_the_fee_needs_are_refused():
    decisions = WithheldFact("decisions", "bromma", "NOT_IN_AGREEMENT")
    hours = WithheldFact("decisions", "bromma", "FIELD_NOT_IN_AGREEMENT", field="decisions.scope")
    recipient = WithheldFact(
        "fee_basis", "bromma", "FIELD_NOT_IN_AGREEMENT", field="fee_basis.invoice_recipient"
    )

    assert refusal(person(withheld=(decisions,))).reason == "DECISIONS_WITHHELD"
    incomplete = refusal(person(withheld=(hours,)))
    assert incomplete.reason == "FEE_BASIS_INCOMPLETE"
    assert incomplete.metadata["field"] == "decisions.scope"
    # A field the fee does not need changes nothing.
    assert mapped(person(decision("trygghetslarm"), withheld=(recipient,))).inputs.services.trygghetslarm


def test_a_decision_without_the_scope_its_fee_needs_is_refused():
    error = refusal(person(decision("hemtjanst")))
    assert error.reason == "DECISION_SCOPE_MISSING"
    assert error.metadata["scope"] == "hours_per_month"
    assert refusal(person(decision("hemtjanst", scope={"hours_per_month": "many"}))).reason == (
        "DECISION_SCOPE_UNREADABLE"
    )


def test_a_fee_basis_the_model_cannot_read_is_refused_not_guessed():
    odd = basis(incomes=(IncomeFact("lottery", 100),))
    assert refusal(person(fee_bases=(odd,))).reason == "FEE_BASIS_UNREADABLE"
    assert refusal(person(fee_bases=(basis(household="commune"),))).reason == "FEE_BASIS_UNREADABLE"


def test_without_a_source_of_the_district_the_basis_is_marked_stale():
    found = mapped(person(decision("trygghetslarm"), sources=()))
    assert found.basis_stale
    assert found.basis_as_of is None
