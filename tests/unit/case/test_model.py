"""The case's rules, without a database: transitions, first-contact resolution, deadlines and validation."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from services.case import model
from services.case.model import Case, CaseStatus, EventKind, FeedbackChannel
from services.common.errors import FailedPrecondition, InvalidArgument
from tests.unit.case.builders import ASTRID, contact, local, new_case, routing_for, violated_fields

MONDAY_MORNING = local(2026, 11, 30, 9, 0)


def registered(**changes: object) -> Case:
    return replace(
        model.register(
            new_case(person_number=ASTRID, **changes), contact(), actor="agent", now=MONDAY_MORNING
        ),
        case_id=7,
    )


def forwarded(case: Case, at: datetime) -> Case:
    return model.forward(case, routing_for("farsta"), actor="agent", now=at)


# ---- first contact resolution ----


def test_a_case_resolved_during_its_only_contact_counts_as_resolved_at_first_contact() -> None:
    resolved = model.resolve(registered(), "Svarade direkt.", actor="agent", now=MONDAY_MORNING)

    assert resolved.status is CaseStatus.CLOSED
    assert resolved.resolved_at_first_contact is True
    assert resolved.resolve_minutes == 0


def test_a_case_with_a_second_contact_is_not_resolved_at_first_contact() -> None:
    case = model.add_contact(registered(), contact(), actor="agent", now=local(2026, 11, 30, 10, 0))

    resolved = model.resolve(case, "Svarade.", actor="agent", now=local(2026, 11, 30, 10, 5))

    assert resolved.contact_count == 2
    assert resolved.resolved_at_first_contact is False


def test_a_forwarded_then_returned_case_is_not_resolved_at_first_contact() -> None:
    case = forwarded(registered(), MONDAY_MORNING)
    returned = model.return_to_contact_center(case, "Fel enhet.", actor="officer", now=MONDAY_MORNING)

    resolved = model.resolve(returned, "Besvarat av Äldre direkt.", actor="agent", now=MONDAY_MORNING)

    assert resolved.contact_count == 1
    assert resolved.resolved_at_first_contact is False


def test_a_case_with_a_unit_cannot_be_resolved_by_the_contact_center() -> None:
    case = forwarded(registered(), MONDAY_MORNING)

    with pytest.raises(FailedPrecondition) as refused:
        model.resolve(case, "Svar.", actor="agent", now=MONDAY_MORNING)

    assert refused.value.reason == "CASE_FORWARDED"


def test_time_to_resolve_counts_opening_hours_only() -> None:
    # Friday 15:00 to Monday 09:00 in December: one hour on Friday (closes 16:00), one on Monday.
    case = replace(registered(), create_time=local(2026, 12, 4, 15, 0))

    resolved = model.resolve(case, "Svar.", actor="agent", now=local(2026, 12, 7, 9, 0))

    assert resolved.resolve_minutes == 120


# ---- contacts ----


def test_a_closed_case_takes_no_more_contacts() -> None:
    closed = model.resolve(registered(), "Svar.", actor="agent", now=MONDAY_MORNING)

    with pytest.raises(FailedPrecondition) as refused:
        model.add_contact(closed, contact(), actor="agent", now=MONDAY_MORNING)

    assert refused.value.reason == "CASE_CLOSED"


@pytest.mark.parametrize(
    ("summary", "fields"),
    [("", ["contact.summary"]), ("   ", ["contact.summary"]), ("x" * 4001, ["contact.summary"])],
)
def test_a_summary_must_be_given_and_at_most_4000_characters(summary: str, fields: list[str]) -> None:
    violations = model.contact_violations(contact(summary=summary))

    assert [v.field for v in violations] == fields


def test_a_summary_of_exactly_4000_characters_is_accepted() -> None:
    assert model.contact_violations(contact(summary="x" * 4000)) == []


def test_someone_other_than_the_person_must_give_their_name() -> None:
    violations = model.contact_violations(contact(party=model.ContactParty.RELATIVE))

    assert [v.field for v in violations] == ["contact.contact_name"]


# ---- forwarding deadlines ----


def test_a_case_forwarded_on_thursday_is_due_at_closing_on_monday() -> None:
    case = forwarded(registered(), local(2026, 12, 3, 10, 0))

    assert case.deadline == local(2026, 12, 7, 16, 30)
    assert case.status is CaseStatus.FORWARDED
    assert case.forwarded_ever is True


def test_a_case_forwarded_on_friday_after_closing_counts_from_monday() -> None:
    case = forwarded(registered(), local(2026, 12, 4, 17, 0))

    assert case.deadline == local(2026, 12, 9, 16, 30)


def test_a_forwarded_acute_case_is_due_the_same_working_day() -> None:
    case = forwarded(registered(acute=True), local(2026, 12, 3, 10, 0))

    assert case.deadline == local(2026, 12, 3, 16, 30)


def test_an_acute_case_forwarded_after_hours_is_due_at_the_end_of_the_next_working_day() -> None:
    case = forwarded(registered(acute=True), local(2026, 12, 3, 18, 0))

    assert case.deadline == local(2026, 12, 4, 16, 0)  # a Friday in December closes at 16:00


def test_a_closed_case_cannot_be_forwarded() -> None:
    closed = model.resolve(registered(), "Svar.", actor="agent", now=MONDAY_MORNING)

    with pytest.raises(FailedPrecondition) as refused:
        forwarded(closed, MONDAY_MORNING)

    assert refused.value.reason == "CASE_CLOSED"


def test_a_case_with_a_unit_cannot_be_forwarded_again_until_returned() -> None:
    case = forwarded(registered(), MONDAY_MORNING)

    with pytest.raises(FailedPrecondition):
        forwarded(case, MONDAY_MORNING)
    returned = model.return_to_contact_center(case, "Fel enhet.", actor="officer", now=MONDAY_MORNING)
    again = forwarded(returned, local(2026, 11, 30, 11, 0))

    assert again.status is CaseStatus.FORWARDED
    assert [e.kind for e in again.events][-3:] == [
        EventKind.FORWARDED,
        EventKind.RETURNED,
        EventKind.FORWARDED,
    ]


# ---- the unit's feedback ----


def test_feedback_by_the_deadline_keeps_it() -> None:
    case = forwarded(registered(), local(2026, 12, 3, 10, 0))

    answered = model.record_feedback(
        case, FeedbackChannel.PHONE, "Ringde upp.", actor="officer", now=local(2026, 12, 7, 16, 0)
    )

    assert answered.status is CaseStatus.CLOSED
    assert answered.deadline_kept is True
    assert answered.feedback_time == local(2026, 12, 7, 16, 0)
    assert [e.kind for e in answered.events][-2:] == [EventKind.FEEDBACK, EventKind.CLOSED]


def test_feedback_after_the_deadline_does_not_keep_it() -> None:
    case = forwarded(registered(), local(2026, 12, 3, 10, 0))

    answered = model.record_feedback(
        case, FeedbackChannel.PHONE, "Ringde upp.", actor="officer", now=local(2026, 12, 8, 9, 0)
    )

    assert answered.deadline_kept is False


def test_a_case_marked_overdue_stays_late_even_if_the_deadline_is_later_moved() -> None:
    case = forwarded(registered(), local(2026, 12, 3, 10, 0))
    late = model.mark_overdue(case, now=local(2026, 12, 8, 9, 0))

    answered = model.record_feedback(
        replace(late, deadline=local(2026, 12, 31, 16, 0)),
        FeedbackChannel.LETTER,
        "Brev skickat.",
        actor="officer",
        now=local(2026, 12, 8, 10, 0),
    )

    assert late.overdue is True
    assert answered.deadline_kept is False


def test_only_a_newly_forwarded_case_is_acknowledged() -> None:
    case = model.acknowledge(forwarded(registered(), MONDAY_MORNING), actor="officer", now=MONDAY_MORNING)

    with pytest.raises(FailedPrecondition) as refused:
        model.acknowledge(case, actor="officer", now=MONDAY_MORNING)

    assert refused.value.reason == "NOT_AWAITING_ACK"


# ---- satisfaction ----


@pytest.mark.parametrize("score", [0, 6, -1])
def test_satisfaction_outside_one_to_five_is_refused_naming_score(score: int) -> None:
    closed = model.resolve(registered(), "Svar.", actor="agent", now=MONDAY_MORNING)

    with pytest.raises(InvalidArgument) as refused:
        model.record_satisfaction(closed, score, actor="agent", now=MONDAY_MORNING)

    assert violated_fields(refused.value) == ["score"]


def test_satisfaction_is_recorded_once_and_only_after_close() -> None:
    case = registered()
    with pytest.raises(FailedPrecondition):
        model.record_satisfaction(case, 4, actor="agent", now=MONDAY_MORNING)
    closed = model.resolve(case, "Svar.", actor="agent", now=MONDAY_MORNING)

    answered = model.record_satisfaction(closed, 5, actor="agent", now=MONDAY_MORNING)
    with pytest.raises(FailedPrecondition) as twice:
        model.record_satisfaction(answered, 1, actor="agent", now=MONDAY_MORNING)

    assert answered.satisfaction == 5
    assert twice.value.reason == "SATISFACTION_RECORDED"


# ---- what the person sees ----


def test_each_status_has_a_next_step_in_swedish() -> None:
    case = registered()
    steps = {
        status: model.next_step(replace(case, status=status))
        for status in CaseStatus  # every status, so a new one without a text fails here
    }

    assert all(steps.values())
    assert len(set(steps.values())) == len(CaseStatus)
    assert steps[CaseStatus.CLOSED] == "Ärendet är avslutat."
