"""Protobuf ⇄ domain for the case service: requests parsed into domain values, answers built from them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeAlias, TypeVar

from aldredirekt.case.v1 import case_pb2 as pb

from services.case.model import (
    Billable,
    Case,
    CaseStatus,
    Channel,
    Consent,
    Contact,
    ContactParty,
    StatisticsRow,
    next_step,
)
from services.common.errors import InvalidArgument, quoted
from services.common.etags import etag_for
from services.common.names import resource_id, resource_ids
from services.common.personnummer import parse_person_number
from services.common.protoconv import from_enum, timestamp, to_enum

E = TypeVar("E", bound=StrEnum)

View: TypeAlias = "pb.CaseView.ValueType"
BASIC: View = pb.CASE_VIEW_BASIC
FULL: View = pb.CASE_VIEW_FULL


def required_enum(
    kind: type[E], prefix: str, value: int, descriptor: Any, field: str, *, required: bool = True
) -> E | None:
    """Most enums of a case are required; UNSPECIFIED is refused naming the field."""
    return to_enum(kind, prefix, value, descriptor, field, required=required)


def case_id_of(name: str, field: str = "name") -> int:
    """The id of "cases/{case}"."""
    return int(resource_ids(name, ("cases",), field, numeric=True)[0])


def consent_ids_of(name: str, field: str = "name") -> tuple[int, int]:
    case_part, consent_part = resource_ids(name, ("cases", "consents"), field, numeric=True)
    return int(case_part), int(consent_part)


def person_of(raw: str, field: str) -> str | None:
    """A person number in its 12 digits, or None when none was given."""
    return str(parse_person_number(raw, field=field)) if raw else None


def district_id_of(raw: str, field: str) -> str | None:
    if not raw:
        return None
    if not raw.startswith("districts/"):
        raise InvalidArgument.field(field, f"{quoted(raw)} is not a district name like districts/bromma")
    return resource_id(raw, "districts", field)


def unit_id_of(raw: str, field: str) -> str | None:
    return resource_id(raw, "units", field) if raw else None


def view_of(value: View, default: View) -> View:
    if value == pb.CASE_VIEW_UNSPECIFIED:
        return default
    if value not in (BASIC, FULL):
        raise InvalidArgument.field("view", f"{value} is not a known view")
    return value


def contact_from(message: pb.Contact, prefix: str = "contact") -> Contact:
    channel = required_enum(Channel, "CHANNEL_", message.channel, pb.Channel, f"{prefix}.channel")
    party = required_enum(ContactParty, "CONTACT_PARTY_", message.party, pb.ContactParty, f"{prefix}.party")
    assert channel is not None
    assert party is not None
    return Contact(
        channel=channel,
        party=party,
        summary=message.summary,
        contact_name=message.contact_name,
        contact_phone=message.contact_phone,
        contact_email=message.contact_email,
    )


def contact_message(case: Case, contact: Contact) -> pb.Contact:
    return pb.Contact(
        name=f"{case.name}/contacts/{contact.contact_id}",
        channel=from_enum(contact.channel, "CHANNEL_", pb.Channel),
        party=from_enum(contact.party, "CONTACT_PARTY_", pb.ContactParty),
        contact_name=contact.contact_name,
        contact_phone=contact.contact_phone,
        contact_email=contact.contact_email,
        summary=contact.summary,
        create_time=timestamp(contact.create_time),
        registered_by=contact.registered_by,
    )


def case_message(case: Case, view: View = FULL) -> pb.Case:
    message = pb.Case(
        name=case.name,
        category=case.category,
        case_type=case.case_type,
        case_class=case.case_class,
        district=f"districts/{case.district_id}" if case.district_id else "",
        provider=case.provider,
        person_number=case.person_number or "",
        anonymous=case.anonymous,
        acute=case.acute,
        feedback_channel=from_enum(case.feedback_channel, "FEEDBACK_CHANNEL_", pb.FeedbackChannel),
        feedback_window=case.feedback_window,
        status=from_enum(case.status, "CASE_STATUS_", pb.CaseStatus),
        unit=f"units/{case.unit_id}" if case.unit_id else "",
        officer=f"officers/{case.officer_id}" if case.officer_id else "",
        team=case.team,
        deadline=timestamp(case.deadline),
        overdue=case.overdue,
        resolution=case.resolution,
        resolved_at_first_contact=case.resolved_at_first_contact,
        create_time=timestamp(case.create_time),
        update_time=timestamp(case.update_time),
        close_time=timestamp(case.close_time),
        etag=etag_for(case.name, case.revision),
        contact_count=case.contact_count,
        view=view,
    )
    if case.satisfaction is not None:
        message.satisfaction = case.satisfaction
    if view == FULL:
        message.contacts.extend(contact_message(case, c) for c in case.contacts)
        message.events.extend(
            pb.CaseEvent(
                kind=from_enum(e.kind, "EVENT_KIND_", pb.EventKind),
                time=timestamp(e.time),
                actor=e.actor,
                detail=e.detail,
            )
            for e in case.events
        )
    return message


def consent_message(consent: Consent) -> pb.Consent:
    return pb.Consent(
        name=consent.name,
        given_by=from_enum(consent.given_by, "CONSENT_GIVER_", pb.ConsentGiver),
        verification=consent.verification,
        scopes=[from_enum(s, "GRANT_SCOPE_", pb.GrantScope) for s in consent.scopes],
        create_time=timestamp(consent.create_time),
        revoke_time=timestamp(consent.revoke_time),
        recorded_by=consent.recorded_by,
    )


def statistics_row(row: StatisticsRow) -> pb.StatisticsRow:
    return pb.StatisticsRow(
        keys=list(row.keys),
        contacts=row.contacts,
        cases=row.cases,
        resolved_at_first_contact=row.resolved_at_first_contact,
        first_contact_resolution_rate=row.first_contact_resolution_rate,
        forwarded=row.forwarded,
        deadline_kept_rate=row.deadline_kept_rate,
        acute=row.acute,
        median_working_hours_to_resolve=row.median_hours,
        p90_working_hours_to_resolve=row.p90_hours,
        satisfaction_mean=row.satisfaction_mean,
        satisfaction_answers=row.satisfaction_answers,
    )


def billable_message(count: Billable) -> pb.BillableContacts:
    return pb.BillableContacts(
        district=f"districts/{count.district_id}" if count.district_id else "",
        unit=f"units/{count.unit_id}" if count.unit_id else "",
        contacts=count.contacts,
        cases=count.cases,
    )


DIMENSIONS = {
    pb.STATISTICS_DIMENSION_CASE_TYPE: "case_type",
    pb.STATISTICS_DIMENSION_CASE_CLASS: "case_class",
    pb.STATISTICS_DIMENSION_DISTRICT: "district",
    pb.STATISTICS_DIMENSION_CHANNEL: "channel",
    pb.STATISTICS_DIMENSION_MONTH: "month",
}


def my_case_message(case: Case) -> pb.MyCase:
    return pb.MyCase(
        name=case.name,
        case_type=case.case_type,
        status=from_enum(case.status, "CASE_STATUS_", pb.CaseStatus),
        next_step=next_step(case),
        deadline=timestamp(case.deadline) if case.status is not CaseStatus.CLOSED else None,
        create_time=timestamp(case.create_time),
        close_time=timestamp(case.close_time),
        resolution=case.resolution,
    )
