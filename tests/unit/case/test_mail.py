"""The mails a case sends: what they say, what they leave out, and how they are marked."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.case import model
from services.case.mail import build_message
from services.case.model import Case, Mail, escalation_mail, forward_mail
from services.common.outbox import exponential_backoff
from tests.unit.case.builders import ASTRID, BERTIL, contact, local, new_case, routing_for

SUMMARY = "Dottern berättar att mamma fallit i badrummet och inte kan resa sig."


def forwarded(*, acute: bool, note: str = "") -> Case:
    case = replace(
        model.register(
            new_case(person_number=ASTRID, acute=acute, feedback_window="vardagar 10-12"),
            contact(summary=SUMMARY),
            actor="agent",
            now=local(2026, 12, 3, 9, 0),
        ),
        case_id=42,
    )
    return model.forward(case, routing_for("farsta"), actor="agent", now=local(2026, 12, 3, 10, 0))


def test_the_forward_mail_goes_to_the_units_mailbox_and_names_case_and_deadline() -> None:
    mail = forward_mail(forwarded(acute=False), "Behöver ny biståndsbedömning.")

    assert mail.recipients == ("aldreomsorg.farsta@stockholm.example",)
    assert "Ärende 42" in mail.subject
    assert "2026-12-07 16:30" in mail.subject
    assert "Anteckning: Behöver ny biståndsbedömning." in mail.body
    assert mail.urgent is False


def test_the_forward_mail_carries_neither_person_number_nor_summary() -> None:
    mail = forward_mail(forwarded(acute=True), "")
    text = mail.subject + mail.body

    assert ASTRID not in text
    assert ASTRID[2:8] not in text  # not even the date of birth
    assert SUMMARY not in text


def test_an_acute_forward_mail_is_urgent_and_says_so() -> None:
    mail = forward_mail(forwarded(acute=True), "")

    assert mail.urgent is True
    assert mail.subject.startswith("AKUT")
    assert "2026-12-03 16:30" in mail.subject


def test_an_urgent_mail_is_sent_with_high_importance_and_its_fixed_message_id() -> None:
    mail = forward_mail(forwarded(acute=True), "")
    message = build_message(
        mail,
        message_id="<outbox-3.forwarded.case-42@example>",
        sender="aldredirekt@stockholm.example",
        now=local(2026, 12, 3, 10, 1),
    )

    assert message["Importance"] == "high"
    assert message["X-Priority"] == "1"
    assert message["Message-ID"] == "<outbox-3.forwarded.case-42@example>"
    assert message["To"] == "aldreomsorg.farsta@stockholm.example"
    assert message["Auto-Submitted"] == "auto-generated"


def test_an_ordinary_mail_has_no_importance_header() -> None:
    mail = forward_mail(forwarded(acute=False), "")
    message = build_message(
        mail, message_id="<m@example>", sender="aldredirekt@stockholm.example", now=local(2026, 12, 3, 10, 1)
    )

    assert message["Importance"] is None
    assert message["X-Priority"] is None


def test_the_overdue_mail_goes_to_the_unit_managers_or_else_the_mailbox() -> None:
    case = forwarded(acute=False)

    to_managers = escalation_mail(case)
    to_mailbox = escalation_mail(replace(case, escalation_emails=()))

    assert to_managers.recipients == ("chef.farsta@stockholm.example",)
    assert to_mailbox.recipients == ("aldreomsorg.farsta@stockholm.example",)
    assert to_managers.urgent is True
    assert ASTRID not in to_managers.body


# Mail leaves through the shared outbox, whose sender waits by its exponential backoff after a failure.
@pytest.mark.parametrize(("attempts", "seconds"), [(1, 5), (2, 10), (3, 20), (7, 320), (8, 600), (30, 600)])
def test_failed_mail_backs_off_doubling_up_to_ten_minutes(attempts: int, seconds: int) -> None:
    assert exponential_backoff(attempts) == timedelta(seconds=seconds)


def test_a_person_number_written_in_the_note_is_not_mailed() -> None:
    case = forwarded(acute=False)
    ten_digit = f"{BERTIL[2:8]}-{BERTIL[8:]}"

    mail = forward_mail(case, f"Gäller {ASTRID}, make till {ten_digit}; ring dottern.")

    assert ASTRID not in mail.body
    assert ten_digit not in mail.body
    assert "ring dottern." in mail.body


def test_the_mail_is_kept_in_the_outbox_as_it_is_sent() -> None:
    mail = forward_mail(forwarded(acute=True), "Ring dottern.")

    assert Mail.decode(mail.encode()) == mail
    assert (mail.kind, mail.case_id) == ("forwarded", 42)


def test_the_forward_mail_says_in_swedish_how_the_person_wants_the_answer() -> None:
    mail = forward_mail(forwarded(acute=False), "")

    assert "Önskad återkoppling: telefon, vardagar 10-12" in mail.body
