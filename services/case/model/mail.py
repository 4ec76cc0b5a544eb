"""The mail the case service sends: the notice to a unit's functional mailbox and the escalation of an
overdue case, in Swedish, as the units read them. No personal data travels by mail: a mail names the case
and its deadline; the details are read in the unit's queue."""

from __future__ import annotations

import json
from dataclasses import dataclass

from services.case.model.cases import Case, FeedbackChannel
from services.common.business_calendar import to_local
from services.common.personnummer import redact_person_numbers

# How the person wants the answer, as the unit's mail says it.
FEEDBACK_CHANNEL_WORDS = {
    FeedbackChannel.PHONE: "telefon",
    FeedbackChannel.EMAIL: "e-post",
    FeedbackChannel.LETTER: "brev",
    FeedbackChannel.MY_PAGES: "Mina sidor",
}


@dataclass(frozen=True)
class Mail:
    """A mail to send, with the case it is about and what kind of notice it is ("forwarded", "overdue")."""

    kind: str
    case_id: int
    recipients: tuple[str, ...]
    subject: str
    body: str
    urgent: bool

    def encode(self) -> bytes:
        """The mail as the outbox keeps it until it is sent."""
        return json.dumps(
            {
                "kind": self.kind,
                "case_id": self.case_id,
                "recipients": list(self.recipients),
                "subject": self.subject,
                "body": self.body,
                "urgent": self.urgent,
            },
            ensure_ascii=False,
        ).encode()

    @classmethod
    def decode(cls, payload: bytes) -> Mail:
        fields = json.loads(payload)
        return cls(
            kind=str(fields["kind"]),
            case_id=int(fields["case_id"]),
            recipients=tuple(str(r) for r in fields["recipients"]),
            subject=str(fields["subject"]),
            body=str(fields["body"]),
            urgent=bool(fields["urgent"]),
        )


def forward_mail(case: Case, note: str) -> Mail:
    """The notice to the unit's functional mailbox."""
    assert case.deadline is not None
    deadline = to_local(case.deadline)
    prefix = "AKUT – " if case.acute else ""
    subject = f"{prefix}Ärende {case.case_id} från Äldre direkt: svar senast {deadline:%Y-%m-%d %H:%M}"
    lines = [
        f"Äldre direkt har skickat ärende {case.case_id} ({case.case_type}, {case.case_class}) "
        "till er enhet.",
        "",
        f"Återkoppla till den enskilde senast {deadline:%Y-%m-%d kl. %H:%M}"
        + (" – ärendet är akut och ska besvaras i dag." if case.acute else "."),
        f"Önskad återkoppling: {FEEDBACK_CHANNEL_WORDS[case.feedback_channel]}"
        + (f", {case.feedback_window}" if case.feedback_window else ""),
        "",
        "Uppgifterna om ärendet finns i enhetens ärendekö.",
    ]
    if note.strip():
        # The note is the agent's free text; a person number typed into it must not leave by e-mail.
        lines[1:1] = ["", f"Anteckning: {redact_person_numbers(note.strip())}"]
    return Mail("forwarded", case.case_id, (case.unit_mailbox,), subject, "\n".join(lines) + "\n", case.acute)


def escalation_mail(case: Case) -> Mail:
    """To the unit's managers (or its mailbox) when a forwarded case passed its deadline unanswered."""
    assert case.deadline is not None
    recipients = case.escalation_emails or ((case.unit_mailbox,) if case.unit_mailbox else ())
    subject = f"Ärende {case.case_id} har passerat sin tidsfrist"
    body = (
        f"Ärende {case.case_id}, skickat från Äldre direkt till enheten units/{case.unit_id}, "
        "skulle ha besvarats senast "
        f"{to_local(case.deadline):%Y-%m-%d kl. %H:%M} och har ännu ingen registrerad återkoppling.\n"
    )
    return Mail("overdue", case.case_id, recipients, subject, body, True)
