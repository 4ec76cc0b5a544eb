"""The case's domain: what a case is, how it moves from registration to feedback, and what counts.

Pure Python: no SQLAlchemy, no gRPC, no generated code. Every transition checks where the case stands and
returns the event it adds to the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from services.common.business_calendar import deadline_after, working_hours_between
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument

MAX_SUMMARY = 4000
MAX_TEXT = 1000
MAX_SHORT = 200


class Channel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    LETTER = "letter"
    FAX = "fax"
    E_SERVICE = "e_service"
    VISIT = "visit"


class ContactParty(StrEnum):
    SELF = "self"
    RELATIVE = "relative"
    LEGAL_REPRESENTATIVE = "legal_representative"
    OTHER = "other"


class FeedbackChannel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    LETTER = "letter"
    MY_PAGES = "my_pages"


class CaseStatus(StrEnum):
    OPEN = "open"
    FORWARDED = "forwarded"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    CLOSED = "closed"


AT_UNIT = (CaseStatus.FORWARDED, CaseStatus.ACKNOWLEDGED, CaseStatus.ASSIGNED)


class EventKind(StrEnum):
    CREATED = "created"
    CONTACT_ADDED = "contact_added"
    FORWARDED = "forwarded"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    FEEDBACK = "feedback"
    RETURNED = "returned"
    CLOSED = "closed"
    REOPENED = "reopened"
    OVERDUE = "overdue"
    CONSENT_RECORDED = "consent_recorded"
    CONSENT_REVOKED = "consent_revoked"
    SATISFACTION = "satisfaction"


class GrantScope(StrEnum):
    DECISIONS = "decisions"
    FEES = "fees"
    PROVIDERS = "providers"
    OFFICER = "officer"
    INVOICES = "invoices"


class ConsentGiver(StrEnum):
    PERSON = "person"
    REPRESENTATIVE = "representative"


class ReferenceKind(StrEnum):
    CATEGORY = "category"
    CASE_TYPE = "case_type"
    CASE_CLASS = "case_class"


@dataclass(frozen=True)
class ReferenceItem:
    kind: ReferenceKind
    item_id: str
    label: str
    # For case types: the directory role a forwarded case of this type needs, e.g. special housing.
    need_role: str = ""


@dataclass(frozen=True)
class Contact:
    channel: Channel
    party: ContactParty
    summary: str
    contact_name: str = ""
    contact_phone: str = ""
    contact_email: str = ""
    contact_id: int = 0
    create_time: datetime | None = None
    registered_by: str = ""


@dataclass(frozen=True)
class Event:
    kind: EventKind
    time: datetime
    actor: str
    detail: str = ""


@dataclass(frozen=True)
class Case:
    category: str
    case_type: str
    case_class: str
    district_id: str | None
    person_number: str | None
    acute: bool
    feedback_channel: FeedbackChannel
    provider: str = ""
    feedback_window: str = ""
    case_id: int = 0
    status: CaseStatus = CaseStatus.OPEN
    first_channel: Channel = Channel.PHONE
    unit_id: str | None = None
    officer_id: str | None = None
    team: str = ""
    deadline: datetime | None = None
    forward_time: datetime | None = None
    overdue: bool = False
    deadline_kept: bool | None = None
    escalation_emails: tuple[str, ...] = ()
    escalated: bool = False
    unit_mailbox: str = ""
    resolution: str = ""
    resolved_at_first_contact: bool = False
    forwarded_ever: bool = False
    satisfaction: int | None = None
    contact_count: int = 0
    resolve_minutes: int | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None
    close_time: datetime | None = None
    feedback_time: datetime | None = None
    revision: int = 1
    contacts: tuple[Contact, ...] = ()
    events: tuple[Event, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"cases/{self.case_id}"

    @property
    def anonymous(self) -> bool:
        return self.person_number is None


@dataclass(frozen=True)
class Consent:
    case_id: int
    given_by: ConsentGiver
    verification: str
    scopes: tuple[GrantScope, ...]
    recorded_by: str
    consent_id: int = 0
    create_time: datetime | None = None
    revoke_time: datetime | None = None

    @property
    def name(self) -> str:
        return f"cases/{self.case_id}/consents/{self.consent_id}"


class RoutingBasis(StrEnum):
    """How a forwarded case found its unit and officer."""

    CARE_SYSTEM = "care_system"
    AGENT = "agent"
    DIRECTORY_RULES = "directory_rules"


@dataclass(frozen=True)
class Routing:
    """Where the directory says a case goes."""

    unit_id: str
    district_id: str
    mailbox: str
    acute_phone: str
    officer_id: str | None
    team: str
    manager_emails: tuple[str, ...]


# ---- validation ------------------------------------------------------------------------------------------


def _text(
    value: str, field_name: str, limit: int, out: list[FieldViolation], *, required: bool = False
) -> None:
    if required and not value.strip():
        out.append(FieldViolation(field_name, "is required"))
    elif len(value) > limit:
        out.append(FieldViolation(field_name, f"must be at most {limit:,} characters, got {len(value):,}"))


def contact_violations(contact: Contact, prefix: str = "contact") -> list[FieldViolation]:
    out: list[FieldViolation] = []
    _text(contact.summary, f"{prefix}.summary", MAX_SUMMARY, out, required=True)
    _text(contact.contact_name, f"{prefix}.contact_name", MAX_SHORT, out)
    _text(contact.contact_phone, f"{prefix}.contact_phone", 40, out)
    _text(contact.contact_email, f"{prefix}.contact_email", MAX_SHORT, out)
    if contact.contact_email and ("@" not in contact.contact_email or " " in contact.contact_email.strip()):
        out.append(FieldViolation(f"{prefix}.contact_email", "is not an e-mail address"))
    if contact.party is not ContactParty.SELF and not (contact.contact_name.strip()):
        out.append(
            FieldViolation(
                f"{prefix}.contact_name", "is required when someone other than the person makes contact"
            )
        )
    return out


def case_violations(case: Case, prefix: str = "case") -> list[FieldViolation]:
    out: list[FieldViolation] = []
    _text(case.provider, f"{prefix}.provider", MAX_SHORT, out)
    _text(case.feedback_window, f"{prefix}.feedback_window", MAX_SHORT, out)
    return out


def raise_if(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(violations)


# ---- transitions -----------------------------------------------------------------------------------------


def _refuse(case: Case, doing: str, reason: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{case.name} is {case.status.value}: cannot {doing}",
        reason=reason,
        metadata={"status": case.status.value},
    )


def _with_event(case: Case, event: Event, **changes: object) -> Case:
    return replace(case, events=(*case.events, event), update_time=event.time, **changes)  # type: ignore[arg-type]


def register(case: Case, contact: Contact, *, actor: str, now: datetime) -> Case:
    first = replace(contact, create_time=now, registered_by=actor)
    return replace(
        case,
        status=CaseStatus.OPEN,
        first_channel=contact.channel,
        contacts=(first,),
        contact_count=1,
        create_time=now,
        update_time=now,
        events=(Event(EventKind.CREATED, now, actor, contact.channel.value),),
    )


def add_contact(case: Case, contact: Contact, *, actor: str, now: datetime) -> Case:
    if case.status is CaseStatus.CLOSED:
        raise _refuse(case, "add a contact; reopen it or register a new case", "CASE_CLOSED")
    added = replace(contact, create_time=now, registered_by=actor)
    return _with_event(
        case,
        Event(EventKind.CONTACT_ADDED, now, actor, contact.channel.value),
        contacts=(*case.contacts, added),
        contact_count=case.contact_count + 1,
    )


def _close(
    case: Case, events: tuple[Event, ...], *, now: datetime, actor: str, detail: str = "", **changes: object
) -> Case:
    """Closes after `events`, ending the timeline with CLOSED; time to resolve counts opening hours only."""
    assert case.create_time is not None
    minutes = round(working_hours_between(case.create_time, now) * 60)
    return replace(
        case,
        events=(*case.events, *events, Event(EventKind.CLOSED, now, actor, detail)),
        update_time=now,
        status=CaseStatus.CLOSED,
        close_time=now,
        resolve_minutes=minutes,
        **changes,  # type: ignore[arg-type]
    )


def resolve(case: Case, resolution: str, *, actor: str, now: datetime) -> Case:
    if case.status in AT_UNIT:
        raise _refuse(case, "resolve a case a unit holds; the unit records its feedback", "CASE_FORWARDED")
    if case.status is CaseStatus.CLOSED:
        raise _refuse(case, "resolve it again", "CASE_CLOSED")
    violations: list[FieldViolation] = []
    _text(resolution, "resolution", MAX_TEXT, violations, required=True)
    raise_if(violations)
    return _close(
        case,
        (),
        now=now,
        actor=actor,
        detail="resolved by the contact center",
        resolution=resolution.strip(),
        resolved_at_first_contact=case.contact_count == 1 and not case.forwarded_ever,
    )


def check_forwardable(case: Case) -> None:
    if case.status is CaseStatus.CLOSED:
        raise _refuse(case, "forward it; reopen it first", "CASE_CLOSED")
    if case.status in AT_UNIT:
        raise _refuse(case, "forward it again; the unit must return it first", "CASE_FORWARDED")


def forward(case: Case, routing: Routing, *, actor: str, now: datetime) -> Case:
    check_forwardable(case)
    deadline = forward_deadline(now, acute=case.acute)
    return _with_event(
        case,
        Event(EventKind.FORWARDED, now, actor, f"units/{routing.unit_id}"),
        status=CaseStatus.FORWARDED,
        unit_id=routing.unit_id,
        district_id=case.district_id or routing.district_id,
        officer_id=routing.officer_id,
        team=routing.team,
        unit_mailbox=routing.mailbox,
        escalation_emails=routing.manager_emails,
        deadline=deadline,
        forward_time=now,
        forwarded_ever=True,
        overdue=False,
        escalated=False,
        deadline_kept=None,
    )


def acknowledge(case: Case, *, actor: str, now: datetime) -> Case:
    if case.status is not CaseStatus.FORWARDED:
        raise _refuse(case, "acknowledge it; only a newly forwarded case is acknowledged", "NOT_AWAITING_ACK")
    return _with_event(case, Event(EventKind.ACKNOWLEDGED, now, actor), status=CaseStatus.ACKNOWLEDGED)


def assign(case: Case, officer_id: str, *, actor: str, now: datetime) -> Case:
    if case.status not in AT_UNIT:
        raise _refuse(case, "assign an officer; it is not with a unit", "NOT_AT_UNIT")
    return _with_event(
        case,
        Event(EventKind.ASSIGNED, now, actor, f"officers/{officer_id}"),
        status=CaseStatus.ASSIGNED,
        officer_id=officer_id,
    )


def record_feedback(case: Case, channel: FeedbackChannel, note: str, *, actor: str, now: datetime) -> Case:
    if case.status not in AT_UNIT:
        raise _refuse(case, "record feedback; it is not with a unit", "NOT_AT_UNIT")
    violations: list[FieldViolation] = []
    _text(note, "note", MAX_TEXT, violations, required=True)
    raise_if(violations)
    kept = case.deadline is not None and now <= case.deadline and not case.overdue
    return _close(
        case,
        (Event(EventKind.FEEDBACK, now, actor, channel.value),),
        now=now,
        actor=actor,
        resolution=note.strip(),
        feedback_time=now,
        deadline_kept=kept,
    )


def return_to_contact_center(case: Case, reason: str, *, actor: str, now: datetime) -> Case:
    if case.status not in AT_UNIT:
        raise _refuse(case, "return it; it is not with a unit", "NOT_AT_UNIT")
    violations: list[FieldViolation] = []
    _text(reason, "reason", MAX_TEXT, violations, required=True)
    raise_if(violations)
    return _with_event(
        case,
        Event(EventKind.RETURNED, now, actor, reason.strip()),
        status=CaseStatus.OPEN,
        unit_id=None,
        officer_id=None,
        team="",
        deadline=None,
        overdue=False,
        deadline_kept=None,
        unit_mailbox="",
        escalation_emails=(),
    )


def reopen(case: Case, reason: str, *, actor: str, now: datetime) -> Case:
    if case.status is not CaseStatus.CLOSED:
        raise _refuse(case, "reopen it; it is not closed", "CASE_NOT_CLOSED")
    violations: list[FieldViolation] = []
    _text(reason, "reason", MAX_TEXT, violations, required=True)
    raise_if(violations)
    return _with_event(
        case,
        Event(EventKind.REOPENED, now, actor, reason.strip()),
        status=CaseStatus.OPEN,
        close_time=None,
        resolve_minutes=None,
        resolution="",
        resolved_at_first_contact=False,
        unit_id=None,
        officer_id=None,
        team="",
        deadline=None,
        overdue=False,
    )


def mark_overdue(case: Case, *, now: datetime) -> Case:
    return _with_event(
        case,
        Event(EventKind.OVERDUE, now, "system", f"deadline {case.deadline:%Y-%m-%d %H:%M} UTC"),
        overdue=True,
        deadline_kept=False,
        escalated=True,
    )


def record_satisfaction(case: Case, score: int, *, actor: str, now: datetime) -> Case:
    if not 1 <= score <= 5:
        raise InvalidArgument.field("score", f"must be 1 to 5, got {score}")
    if case.status is not CaseStatus.CLOSED:
        raise _refuse(case, "record satisfaction before it is closed", "CASE_NOT_CLOSED")
    if case.satisfaction is not None:
        raise FailedPrecondition(
            f"{case.name} already has a satisfaction answer", reason="SATISFACTION_RECORDED"
        )
    return _with_event(case, Event(EventKind.SATISFACTION, now, actor, str(score)), satisfaction=score)


def next_step(case: Case) -> str:
    """What happens next, in Swedish, for the person on Mina sidor."""
    match case.status:
        case CaseStatus.OPEN:
            return "Äldre direkt handlägger din fråga."
        case CaseStatus.FORWARDED:
            return "Din fråga har skickats till beställarenheten, som återkommer till dig."
        case CaseStatus.ACKNOWLEDGED:
            return "Beställarenheten har tagit emot din fråga och återkommer till dig."
        case CaseStatus.ASSIGNED:
            return "En handläggare har din fråga och återkommer till dig."
        case CaseStatus.CLOSED:
            return "Ärendet är avslutat."


def forward_deadline(received: datetime, *, acute: bool) -> datetime:
    return deadline_after(received, 0 if acute else 2)
