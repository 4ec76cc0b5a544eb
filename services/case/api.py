"""The gRPC servicer: protobuf in, a handler called, protobuf out. Nothing else happens here."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

import grpc
from aldredirekt.case.v1 import case_pb2 as pb
from aldredirekt.case.v1 import case_pb2_grpc

from services.case import handlers
from services.case.handlers import Billable, Cases, GrantedConsent, Statistics, StatisticsRow
from services.case.model import (
    Case,
    CaseStatus,
    Channel,
    Consent,
    ConsentGiver,
    Contact,
    ContactParty,
    FeedbackChannel,
    GrantScope,
    ReferenceKind,
    next_step,
)
from services.common.audit import AccessEntry
from services.common.commands import run_command
from services.common.errors import InvalidArgument
from services.common.etags import etag_for
from services.common.pagination import page_request
from services.common.protoconv import from_date_message, from_enum, timestamp, to_enum
from services.common.server import current_caller

Context = grpc.aio.ServicerContext[Any, Any]
E = TypeVar("E", bound=StrEnum)


def required_enum(
    kind: type[E], prefix: str, value: int, descriptor: Any, field: str, *, required: bool = True
) -> E | None:
    """Most enums of a case are required; UNSPECIFIED is refused naming the field."""
    return to_enum(kind, prefix, value, descriptor, field, required=required)


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


def case_message(case: Case) -> pb.Case:
    return pb.Case(
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
        contacts=[contact_message(case, c) for c in case.contacts],
        unit=f"units/{case.unit_id}" if case.unit_id else "",
        officer=f"officers/{case.officer_id}" if case.officer_id else "",
        team=case.team,
        deadline=timestamp(case.deadline),
        overdue=case.overdue,
        resolution=case.resolution,
        resolved_at_first_contact=case.resolved_at_first_contact,
        events=[
            pb.CaseEvent(
                kind=from_enum(e.kind, "EVENT_KIND_", pb.EventKind),
                time=timestamp(e.time),
                actor=e.actor,
                detail=e.detail,
            )
            for e in case.events
        ],
        satisfaction=case.satisfaction or 0,
        create_time=timestamp(case.create_time),
        update_time=timestamp(case.update_time),
        close_time=timestamp(case.close_time),
        etag=etag_for(case.name, case.revision),
    )


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


_DIMENSIONS = {
    pb.STATISTICS_DIMENSION_CASE_TYPE: "case_type",
    pb.STATISTICS_DIMENSION_CASE_CLASS: "case_class",
    pb.STATISTICS_DIMENSION_DISTRICT: "district",
    pb.STATISTICS_DIMENSION_CHANNEL: "channel",
    pb.STATISTICS_DIMENSION_MONTH: "month",
}


class CaseServicer(case_pb2_grpc.CaseServiceServicer):
    def __init__(self, cases: Cases):
        self.cases = cases

    async def ListReferenceData(
        self, request: pb.ListReferenceDataRequest, context: Context
    ) -> pb.ListReferenceDataResponse:
        items = await handlers.list_reference_data(cases=self.cases, caller=current_caller())

        def of(kind: ReferenceKind) -> list[pb.ReferenceItem]:
            return [pb.ReferenceItem(id=i.item_id, label=i.label) for i in items if i.kind is kind]

        return pb.ListReferenceDataResponse(
            categories=of(ReferenceKind.CATEGORY),
            case_types=of(ReferenceKind.CASE_TYPE),
            case_classes=of(ReferenceKind.CASE_CLASS),
        )

    async def CreateCase(self, request: pb.CreateCaseRequest, context: Context) -> pb.CreateCaseResponse:
        message = request.case
        district = message.district
        if district and not district.startswith("districts/"):
            raise InvalidArgument.field(
                "case.district", f"{district!r} is not a district name like districts/bromma"
            )
        feedback = required_enum(
            FeedbackChannel,
            "FEEDBACK_CHANNEL_",
            message.feedback_channel,
            pb.FeedbackChannel,
            "case.feedback_channel",
        )
        assert feedback is not None
        case = Case(
            category=message.category,
            case_type=message.case_type,
            case_class=message.case_class,
            district_id=district.removeprefix("districts/") or None,
            person_number=None,
            acute=message.acute,
            feedback_channel=feedback,
            provider=message.provider,
            feedback_window=message.feedback_window,
        )
        contact = contact_from(request.contact)
        return await run_command(
            "case.CreateCase",
            request,
            pb.CreateCaseResponse,
            lambda idempotency: handlers.create_case(
                cases=self.cases,
                caller=current_caller(),
                case=case,
                contact=contact,
                person_number=message.person_number,
                anonymous=message.anonymous,
                idempotency=idempotency,
            ),
            lambda stored: pb.CreateCaseResponse(case=case_message(stored)),
        )

    async def GetCase(self, request: pb.GetCaseRequest, context: Context) -> pb.GetCaseResponse:
        case = await handlers.get_case(cases=self.cases, caller=current_caller(), name=request.name)
        return pb.GetCaseResponse(case=case_message(case))

    async def FindOpenCases(
        self, request: pb.FindOpenCasesRequest, context: Context
    ) -> pb.FindOpenCasesResponse:
        found = await handlers.find_open_cases(
            cases=self.cases, caller=current_caller(), person_number=request.person_number
        )
        return pb.FindOpenCasesResponse(cases=[case_message(c) for c in found])

    async def AddContact(self, request: pb.AddContactRequest, context: Context) -> pb.AddContactResponse:
        contact = contact_from(request.contact)
        return await run_command(
            "case.AddContact",
            request,
            pb.AddContactResponse,
            lambda idempotency: handlers.add_contact(
                cases=self.cases,
                caller=current_caller(),
                name=request.name,
                contact=contact,
                idempotency=idempotency,
            ),
            lambda stored: pb.AddContactResponse(case=case_message(stored)),
        )

    async def ResolveCase(self, request: pb.ResolveCaseRequest, context: Context) -> pb.ResolveCaseResponse:
        return await run_command(
            "case.ResolveCase",
            request,
            pb.ResolveCaseResponse,
            lambda idempotency: handlers.resolve_case(
                cases=self.cases,
                caller=current_caller(),
                name=request.name,
                resolution=request.resolution,
                idempotency=idempotency,
            ),
            lambda stored: pb.ResolveCaseResponse(case=case_message(stored)),
        )

    async def ForwardCase(self, request: pb.ForwardCaseRequest, context: Context) -> pb.ForwardCaseResponse:
        return await run_command(
            "case.ForwardCase",
            request,
            pb.ForwardCaseResponse,
            lambda idempotency: handlers.forward_case(
                cases=self.cases,
                caller=current_caller(),
                name=request.name,
                postal_code=request.postal_code.replace(" ", ""),
                named_officer=request.named_officer,
                note=request.note,
                idempotency=idempotency,
            ),
            lambda stored: pb.ForwardCaseResponse(case=case_message(stored)),
        )

    async def ReopenCase(self, request: pb.ReopenCaseRequest, context: Context) -> pb.ReopenCaseResponse:
        return await run_command(
            "case.ReopenCase",
            request,
            pb.ReopenCaseResponse,
            lambda idempotency: handlers.reopen_case(
                cases=self.cases,
                caller=current_caller(),
                name=request.name,
                reason=request.reason,
                idempotency=idempotency,
            ),
            lambda stored: pb.ReopenCaseResponse(case=case_message(stored)),
        )

    async def ListUnitQueue(
        self, request: pb.ListUnitQueueRequest, context: Context
    ) -> pb.ListUnitQueueResponse:
        page = page_request(request.page_size, request.page_token, {"queue": request.unit})
        items, token = await handlers.list_unit_queue(
            cases=self.cases, caller=current_caller(), unit=request.unit, page=page
        )
        return pb.ListUnitQueueResponse(cases=[case_message(c) for c in items], next_page_token=token)

    async def AcknowledgeCase(
        self, request: pb.AcknowledgeCaseRequest, context: Context
    ) -> pb.AcknowledgeCaseResponse:
        return await run_command(
            "case.AcknowledgeCase",
            request,
            pb.AcknowledgeCaseResponse,
            lambda idempotency: handlers.acknowledge_case(
                cases=self.cases, caller=current_caller(), name=request.name, idempotency=idempotency
            ),
            lambda stored: pb.AcknowledgeCaseResponse(case=case_message(stored)),
        )

    async def AssignCase(self, request: pb.AssignCaseRequest, context: Context) -> pb.AssignCaseResponse:
        return await run_command(
            "case.AssignCase",
            request,
            pb.AssignCaseResponse,
            lambda idempotency: handlers.assign_case(
                cases=self.cases,
                caller=current_caller(),
                name=request.name,
                officer=request.officer,
                idempotency=idempotency,
            ),
            lambda stored: pb.AssignCaseResponse(case=case_message(stored)),
        )

    async def RecordFeedback(
        self, request: pb.RecordFeedbackRequest, context: Context
    ) -> pb.RecordFeedbackResponse:
        channel = required_enum(
            FeedbackChannel, "FEEDBACK_CHANNEL_", request.channel, pb.FeedbackChannel, "channel"
        )
        assert channel is not None
        return await run_command(
            "case.RecordFeedback",
            request,
            pb.RecordFeedbackResponse,
            lambda idempotency: handlers.record_feedback(
                cases=self.cases,
                caller=current_caller(),
                name=request.name,
                channel=channel,
                note=request.note,
                idempotency=idempotency,
            ),
            lambda stored: pb.RecordFeedbackResponse(case=case_message(stored)),
        )

    async def ReturnCase(self, request: pb.ReturnCaseRequest, context: Context) -> pb.ReturnCaseResponse:
        return await run_command(
            "case.ReturnCase",
            request,
            pb.ReturnCaseResponse,
            lambda idempotency: handlers.return_case(
                cases=self.cases,
                caller=current_caller(),
                name=request.name,
                reason=request.reason,
                idempotency=idempotency,
            ),
            lambda stored: pb.ReturnCaseResponse(case=case_message(stored)),
        )

    async def ListOverdueCases(
        self, request: pb.ListOverdueCasesRequest, context: Context
    ) -> pb.ListOverdueCasesResponse:
        page = page_request(request.page_size, request.page_token, {"overdue": request.unit})
        items, token = await handlers.list_overdue_cases(
            cases=self.cases, caller=current_caller(), unit=request.unit, page=page
        )
        return pb.ListOverdueCasesResponse(cases=[case_message(c) for c in items], next_page_token=token)

    async def RecordConsent(
        self, request: pb.RecordConsentRequest, context: Context
    ) -> pb.RecordConsentResponse:
        given_by = required_enum(
            ConsentGiver,
            "CONSENT_GIVER_",
            request.consent.given_by,
            pb.ConsentGiver,
            "consent.given_by",
            required=False,
        )
        scopes = [
            required_enum(GrantScope, "GRANT_SCOPE_", s, pb.GrantScope, f"consent.scopes[{i}]")
            for i, s in enumerate(request.consent.scopes)
        ]

        def respond(granted: GrantedConsent) -> pb.RecordConsentResponse:
            return pb.RecordConsentResponse(
                consent=consent_message(granted.consent),
                access_grant=granted.grant,
                grant_expire_time=timestamp(granted.expire_time),
            )

        return await run_command(
            "case.RecordConsent",
            request,
            pb.RecordConsentResponse,
            lambda idempotency: handlers.record_consent(
                cases=self.cases,
                caller=current_caller(),
                name=request.parent,
                given_by=given_by,
                verification=request.consent.verification,
                scopes=[s for s in scopes if s is not None],
                idempotency=idempotency,
            ),
            respond,
        )

    async def RevokeConsent(
        self, request: pb.RevokeConsentRequest, context: Context
    ) -> pb.RevokeConsentResponse:
        consent = await handlers.revoke_consent(cases=self.cases, caller=current_caller(), name=request.name)
        return pb.RevokeConsentResponse(consent=consent_message(consent))

    async def GetGrantKeys(
        self, request: pb.GetGrantKeysRequest, context: Context
    ) -> pb.GetGrantKeysResponse:
        return pb.GetGrantKeysResponse(jwks_json=self.cases.grant_jwks, issuer=self.cases.grants.issuer)

    async def RecordSatisfaction(
        self, request: pb.RecordSatisfactionRequest, context: Context
    ) -> pb.RecordSatisfactionResponse:
        return await run_command(
            "case.RecordSatisfaction",
            request,
            pb.RecordSatisfactionResponse,
            lambda idempotency: handlers.record_satisfaction(
                cases=self.cases,
                caller=current_caller(),
                name=request.name,
                score=request.score,
                idempotency=idempotency,
            ),
            lambda stored: pb.RecordSatisfactionResponse(case=case_message(stored)),
        )

    async def GetCaseStatistics(
        self, request: pb.GetCaseStatisticsRequest, context: Context
    ) -> pb.GetCaseStatisticsResponse:
        if not request.HasField("start_date"):
            raise InvalidArgument.field("start_date", "is required")
        if not request.HasField("end_date"):
            raise InvalidArgument.field("end_date", "is required")
        dimensions = []
        for index, value in enumerate(request.group_by):
            if value not in _DIMENSIONS:
                raise InvalidArgument.field(f"group_by[{index}]", "must be a dimension, not unspecified")
            dimensions.append(_DIMENSIONS[value])
        statistics: Statistics = await handlers.case_statistics(
            cases=self.cases,
            caller=current_caller(),
            start=from_date_message(request.start_date, "start_date"),
            end=from_date_message(request.end_date, "end_date"),
            dimensions=dimensions,
        )
        return pb.GetCaseStatisticsResponse(
            rows=[statistics_row(r) for r in statistics.rows],
            total=statistics_row(statistics.total),
            csv=handlers.statistics_csv(statistics) if request.include_csv else "",
        )

    async def CountBillableContacts(
        self, request: pb.CountBillableContactsRequest, context: Context
    ) -> pb.CountBillableContactsResponse:
        counts: list[Billable] = await handlers.count_billable_contacts(
            cases=self.cases, caller=current_caller(), scope=request.scope, month=request.month
        )
        return pb.CountBillableContactsResponse(
            counts=[
                pb.BillableContacts(district=c.district, unit=c.unit, contacts=c.contacts, cases=c.cases)
                for c in counts
            ],
            month=request.month,
        )

    async def ListMyCases(self, request: pb.ListMyCasesRequest, context: Context) -> pb.ListMyCasesResponse:
        page = page_request(request.page_size, request.page_token, {"mine": True})
        items, token = await handlers.list_my_cases(cases=self.cases, caller=current_caller(), page=page)
        return pb.ListMyCasesResponse(cases=[_my_case(c) for c in items], next_page_token=token)

    async def ListAccessLog(
        self, request: pb.ListAccessLogRequest, context: Context
    ) -> pb.ListAccessLogResponse:
        page = page_request(request.page_size, request.page_token, {"access": request.person_number})
        entries, token = await handlers.list_access_log(
            cases=self.cases, caller=current_caller(), person_number=request.person_number, page=page
        )
        return pb.ListAccessLogResponse(entries=[_entry(e) for e in entries], next_page_token=token)


def _my_case(case: Case) -> pb.MyCase:
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


def _entry(entry: AccessEntry) -> pb.AccessLogEntry:
    return pb.AccessLogEntry(
        time=timestamp(entry.occurred_at),
        actor=entry.actor,
        actor_role=entry.actor_role,
        action=entry.action,
        purpose=entry.purpose,
        service=entry.service,
    )
