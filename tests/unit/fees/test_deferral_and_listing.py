"""A deferral's own rules (days, reason, what can be deferred, the finance system's answer), the figures in
force listed as people read them, and the flag kind of parameter."""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path

import pytest

from services.common.errors import InvalidArgument
from services.fees.model import Kind, Level, ParameterError, Parameters, load_parameters
from services.fees.model.deferral import (
    Deferral,
    DeferralState,
    FinanceAnswer,
    InvoiceFacts,
    check_request,
    deferral_of_handoff,
    refusal_for,
)
from services.fees.model.listing import parameters_in_force, render_value

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def invoice(**changes: object) -> InvoiceFacts:
    values: dict[str, object] = {
        "invoice_number": "F2026-000123",
        "person_number": "194001011230",
        "care_fee": True,
        "amount_ore": 180_000,
        "remaining_ore": 180_000,
        "due_date": date(2026, 12, 31),
    }
    values.update(changes)
    return InvoiceFacts(**values)  # type: ignore[arg-type]


def test_days_and_reason_are_checked_together_naming_each_field():
    assert check_request(days=30, reason="  pensionen kommer sent  ") == "pensionen kommer sent"
    with pytest.raises(InvalidArgument) as caught:
        check_request(days=31, reason="   ")
    assert [v.field for v in caught.value.violations] == ["deferral.days", "deferral.reason"]
    with pytest.raises(InvalidArgument) as too_long:
        check_request(days=0, reason="x" * 1001)
    assert [v.field for v in too_long.value.violations] == ["deferral.days", "deferral.reason"]


def test_a_paid_or_non_care_fee_invoice_cannot_be_deferred():
    assert refusal_for(invoice()) is None
    paid = refusal_for(invoice(remaining_ore=0))
    other = refusal_for(invoice(care_fee=False))
    assert paid is not None
    assert paid.reason == "INVOICE_PAID"
    assert other is not None
    assert other.reason == "INVOICE_NOT_CARE_FEE"
    # Paid is said first: there is nothing to defer whatever the invoice is for.
    both = refusal_for(invoice(remaining_ore=0, care_fee=False))
    assert both is not None
    assert both.reason == "INVOICE_PAID"


def test_the_finance_systems_answer_becomes_the_deferrals_state():
    asked = Deferral(
        deferral_id="a" * 32,
        invoice_number="F2026-000123",
        person_number="194001011230",
        case="cases/12",
        days=14,
        reason="pensionen kommer sent",
        requested_by="agent-astrid",
        amount_ore=180_000,
        original_due_date=date(2026, 12, 31),
        state=DeferralState.REQUESTED,
        refusal_reason="",
        new_due_date=None,
        finance_reference="",
        create_time=NOW,
        update_time=NOW,
    )
    accepted = asked.answered(FinanceAnswer(True, "", date(2027, 1, 14), "def-000001"), NOW)
    refused = asked.answered(FinanceAnswer(False, "already_deferred", date(2026, 12, 31)), NOW)
    assert (accepted.state, accepted.new_due_date, accepted.finance_reference) == (
        DeferralState.ACCEPTED,
        date(2027, 1, 14),
        "def-000001",
    )
    assert (refused.state, refused.refusal_reason, refused.new_due_date) == (
        DeferralState.REFUSED,
        "already_deferred",
        None,
    )
    assert asked.delivery_key == asked.delivery_key == f"fees-deferral-{'a' * 32}"
    assert deferral_of_handoff(asked.handoff()) == asked.deferral_id


def test_values_are_written_as_people_read_them():
    assert render_value(Kind.AMOUNT, 5_920_000) == "59 200 kr"
    assert render_value(Kind.AMOUNT, 6_850) == "68,50 kr"
    assert render_value(Kind.FRACTION, Fraction("0.5392")) == "0,5392"
    assert render_value(Kind.FRACTION, Fraction(1, 3)) == "1/3"
    assert render_value(Kind.FLAG, True) == "ja"
    assert render_value(Kind.LEVELS, (Level(Fraction(0), 50_000), Level(Fraction(5), 100_000))) == (
        "från 0: 500 kr; från 5: 1 000 kr"
    )
    assert render_value(Kind.SHARES, {"bromma": Fraction(1, 4), "farsta": Fraction(3, 4)}) == (
        "bromma 0,25; farsta 0,75"
    )


def test_the_figures_in_force_on_a_day_are_listed_with_their_source(shipped: Parameters):
    listed = {p.name: p for p in parameters_in_force(shipped, date(2026, 3, 15))}
    pbb = listed["prisbasbelopp"]
    assert (pbb.value, pbb.valid_from, pbb.example) == ("59 200 kr", date(2026, 1, 1), False)
    assert pbb.source.startswith("https://")
    assert listed["maxtaxa_andel"].citation == "SoL (2025:400) 32 kap. 6 § p. 1"
    assert listed["taxa_hemtjanst"].example
    assert listed["sarskilt_boende_hyreslagen"].value == "ja"
    # Before the current allocation key, the key is simply not listed.
    assert "fordelningsnyckel_aldreomsorg" not in {
        p.name for p in parameters_in_force(shipped, date(2022, 5, 1))
    }


def test_a_flag_is_true_or_false_and_nothing_else(tmp_path: Path):
    (tmp_path / "flags.toml").write_text(
        """
[hyreslagen]
kind = "flag"
[[hyreslagen.periods]]
valid_from = 2024-01-01
value = false
statute = "Exempel"
example = true
"""
    )
    assert load_parameters(tmp_path).flag("hyreslagen", date(2025, 1, 1)).value is False
    (tmp_path / "flags.toml").write_text(
        (tmp_path / "flags.toml").read_text().replace("value = false", "value = 1")
    )
    with pytest.raises(ParameterError, match="flag is true or false"):
        load_parameters(tmp_path)
