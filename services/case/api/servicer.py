"""The CaseService servicer: who may call each RPC, the request parsed, a use case called, the answer built.
Nothing else happens here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from aldredirekt.case.v1 import case_pb2 as pb
from aldredirekt.case.v1 import case_pb2_grpc
from google.protobuf.message import Message

from services.case import handlers
from services.case.api.mapping import (
    BASIC,
    DIMENSIONS,
    FULL,
    billable_message,
    case_id_of,
    case_message,
    consent_ids_of,
    consent_message,
    contact_from,
    district_id_of,
    my_case_message,
    person_of,
    required_enum,
    statistics_row,
    unit_id_of,
    view_of,
)
from services.case.handlers import Cases, GrantedConsent
from services.case.handlers.cases import log_reads
from services.case.model import Case, ConsentGiver, FeedbackChannel, GrantScope, ReferenceKind, RoutingBasis
from services.case.model.statistics import statistics_csv
from services.common.auth import Role
from services.common.commands import run_command
from services.common.db import Idempotency
from services.common.errors import InvalidArgument, quoted
from services.common.names import resource_id
from services.common.pagination import PageTokens
from services.common.protoconv import from_date_message, parse_month, timestamp
from services.common.server import allow, current_caller

Context = grpc.aio.ServicerContext[Any, Any]
R = TypeVar("R", bound=Message)

AGENTS = (Role.AGENT,)
ROUTING_BASES = {
    RoutingBasis.CARE_SYSTEM: pb.ROUTING_BASIS_CARE_SYSTEM,
    RoutingBasis.AGENT: pb.ROUTING_BASIS_AGENT,
    RoutingBasis.DIRECTORY_RULES: pb.ROUTING_BASIS_DIRECTORY_RULES,
}
UNIT_STAFF = (Role.OFFICER, Role.UNIT_MANAGER)


class CaseServicer(case_pb2_grpc.CaseServiceServicer):
    def __init__(self, cases: Cases, pages: PageTokens):
        self.cases = cases
        self.pages = pages

    async def _case_command(
        self,
        method: str,
        request: Any,
        response_type: type[R],
        run: Callable[[Idempotency | None], Awaitable[Case]],
    ) -> R:
        """A command that answers with the case: safe to retry by request_id, and a replay logs the read
        of the person it shows, as the first answer did."""
        return await run_command(
            f"case.{method}",
            request,
            response_type,
            run,
            lambda stored: response_type(case=case_message(stored)),  # type: ignore[call-arg]
            replayed=self._replayed(method),
        )

    def _replayed(self, action: str) -> Any:
        """Logs, for a replayed command, the read of the person's data its first answer shows, as the first
        call logged it."""

        async def log(response: Any) -> None:
            await log_reads(
                self.cases, current_caller(), [response.case.person_number], action, response.case.name
            )

        return log

    @allow(Role.AGENT, Role.OFFICER, Role.UNIT_MANAGER, Role.AUDITOR, Role.FINANCE, Role.SERVICE)
    async def ListReferenceData(
        self, request: pb.ListReferenceDataRequest, context: Context
    ) -> pb.ListReferenceDataResponse:
        items = await handlers.list_reference_data(cases=self.cases)

        def of(kind: ReferenceKind) -> list[pb.ReferenceItem]:
            return [pb.ReferenceItem(id=i.item_id, label=i.label) for i in items if i.kind is kind]

        return pb.ListReferenceDataResponse(
            categories=of(ReferenceKind.CATEGORY),
            case_types=of(ReferenceKind.CASE_TYPE),
            case_classes=of(ReferenceKind.CASE_CLASS),
        )

    @allow(*AGENTS)
    async def CreateCase(self, request: pb.CreateCaseRequest, context: Context) -> pb.CreateCaseResponse:
        message = request.case
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
            district_id=district_id_of(message.district, "case.district"),
            person_number=person_of(message.person_number, "case.person_number"),
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
                anonymous=message.anonymous,
                idempotency=idempotency,
            ),
            lambda stored: pb.CreateCaseResponse(case=case_message(stored)),
        )

    @allow(Role.AGENT, *UNIT_STAFF, Role.CITIZEN)
    async def GetCase(self, request: pb.GetCaseRequest, context: Context) -> pb.GetCaseResponse:
        view = view_of(request.view, FULL)
        case = await handlers.get_case(
            cases=self.cases, caller=current_caller(), case_id=case_id_of(request.name)
        )
        return pb.GetCaseResponse(case=case_message(case, view))

    @allow(*AGENTS)
    async def FindOpenCases(
        self, request: pb.FindOpenCasesRequest, context: Context
    ) -> pb.FindOpenCasesResponse:
        view = view_of(request.view, BASIC)
        person = person_of(request.person_number, "person_number")
        if person is None:
            raise InvalidArgument.field("person_number", "is required")
        caller = current_caller()
        page = self.pages.request(request, {"open_cases": person}, owner=caller)
        found, token = await handlers.find_open_cases(
            cases=self.cases, caller=caller, person=person, page=page
        )
        return pb.FindOpenCasesResponse(cases=[case_message(c, view) for c in found], next_page_token=token)

    @allow(*AGENTS)
    async def AddContact(self, request: pb.AddContactRequest, context: Context) -> pb.AddContactResponse:
        case_id = case_id_of(request.name)
        contact = contact_from(request.contact)
        return await self._case_command(
            "AddContact",
            request,
            pb.AddContactResponse,
            lambda idempotency: handlers.add_contact(
                cases=self.cases,
                caller=current_caller(),
                case_id=case_id,
                contact=contact,
                idempotency=idempotency,
            ),
        )

    @allow(*AGENTS)
    async def ResolveCase(self, request: pb.ResolveCaseRequest, context: Context) -> pb.ResolveCaseResponse:
        case_id = case_id_of(request.name)
        return await self._case_command(
            "ResolveCase",
            request,
            pb.ResolveCaseResponse,
            lambda idempotency: handlers.resolve_case(
                cases=self.cases,
                caller=current_caller(),
                case_id=case_id,
                resolution=request.resolution,
                idempotency=idempotency,
            ),
        )

    @allow(*AGENTS)
    async def ForwardCase(self, request: pb.ForwardCaseRequest, context: Context) -> pb.ForwardCaseResponse:
        case_id = case_id_of(request.name)
        named_officer = request.named_officer
        if named_officer:
            resource_id(named_officer, "officers", "named_officer")
        return await run_command(
            "case.ForwardCase",
            request,
            pb.ForwardCaseResponse,
            lambda idempotency: handlers.forward_case(
                cases=self.cases,
                caller=current_caller(),
                case_id=case_id,
                postal_code=request.postal_code.replace(" ", ""),
                named_officer=named_officer,
                note=request.note,
                idempotency=idempotency,
            ),
            lambda forwarded: pb.ForwardCaseResponse(
                case=case_message(forwarded.case),
                routing_basis=ROUTING_BASES[forwarded.basis],
                routing_note=forwarded.note,
            ),
            replayed=self._replayed("ForwardCase"),
        )

    @allow(*AGENTS)
    async def ReopenCase(self, request: pb.ReopenCaseRequest, context: Context) -> pb.ReopenCaseResponse:
        case_id = case_id_of(request.name)
        return await self._case_command(
            "ReopenCase",
            request,
            pb.ReopenCaseResponse,
            lambda idempotency: handlers.reopen_case(
                cases=self.cases,
                caller=current_caller(),
                case_id=case_id,
                reason=request.reason,
                idempotency=idempotency,
            ),
        )

    @allow(*UNIT_STAFF)
    async def ListUnitQueue(
        self, request: pb.ListUnitQueueRequest, context: Context
    ) -> pb.ListUnitQueueResponse:
        view = view_of(request.view, BASIC)
        unit_id = resource_id(request.unit, "units", "unit")
        caller = current_caller()
        page = self.pages.request(request, {"queue": unit_id}, owner=caller)
        items, token = await handlers.list_unit_queue(
            cases=self.cases, caller=caller, unit_id=unit_id, page=page
        )
        return pb.ListUnitQueueResponse(cases=[case_message(c, view) for c in items], next_page_token=token)

    @allow(*UNIT_STAFF)
    async def AcknowledgeCase(
        self, request: pb.AcknowledgeCaseRequest, context: Context
    ) -> pb.AcknowledgeCaseResponse:
        case_id = case_id_of(request.name)
        return await self._case_command(
            "AcknowledgeCase",
            request,
            pb.AcknowledgeCaseResponse,
            lambda idempotency: handlers.acknowledge_case(
                cases=self.cases, caller=current_caller(), case_id=case_id, idempotency=idempotency
            ),
        )

    @allow(*UNIT_STAFF)
    async def AssignCase(self, request: pb.AssignCaseRequest, context: Context) -> pb.AssignCaseResponse:
        case_id = case_id_of(request.name)
        officer_id = resource_id(request.officer, "officers", "officer")
        return await self._case_command(
            "AssignCase",
            request,
            pb.AssignCaseResponse,
            lambda idempotency: handlers.assign_case(
                cases=self.cases,
                caller=current_caller(),
                case_id=case_id,
                officer_id=officer_id,
                idempotency=idempotency,
            ),
        )

    @allow(*UNIT_STAFF)
    async def RecordFeedback(
        self, request: pb.RecordFeedbackRequest, context: Context
    ) -> pb.RecordFeedbackResponse:
        case_id = case_id_of(request.name)
        channel = required_enum(
            FeedbackChannel, "FEEDBACK_CHANNEL_", request.channel, pb.FeedbackChannel, "channel"
        )
        assert channel is not None
        return await self._case_command(
            "RecordFeedback",
            request,
            pb.RecordFeedbackResponse,
            lambda idempotency: handlers.record_feedback(
                cases=self.cases,
                caller=current_caller(),
                case_id=case_id,
                channel=channel,
                note=request.note,
                idempotency=idempotency,
            ),
        )

    @allow(*UNIT_STAFF)
    async def ReturnCase(self, request: pb.ReturnCaseRequest, context: Context) -> pb.ReturnCaseResponse:
        case_id = case_id_of(request.name)
        return await self._case_command(
            "ReturnCase",
            request,
            pb.ReturnCaseResponse,
            lambda idempotency: handlers.return_case(
                cases=self.cases,
                caller=current_caller(),
                case_id=case_id,
                reason=request.reason,
                idempotency=idempotency,
            ),
        )

    @allow(Role.AGENT, *UNIT_STAFF, Role.AUDITOR)
    async def ListOverdueCases(
        self, request: pb.ListOverdueCasesRequest, context: Context
    ) -> pb.ListOverdueCasesResponse:
        view = view_of(request.view, BASIC)
        if request.unit and not request.unit.startswith("units/"):
            raise InvalidArgument.field(
                "unit", f"{quoted(request.unit)} is not a unit name like units/bromma-bestallarenhet"
            )
        unit_id = unit_id_of(request.unit, "unit")
        caller = current_caller()
        page = self.pages.request(request, {"overdue": unit_id}, owner=caller)
        items, token = await handlers.list_overdue_cases(
            cases=self.cases, caller=caller, unit_id=unit_id, page=page
        )
        return pb.ListOverdueCasesResponse(
            cases=[case_message(c, view) for c in items], next_page_token=token
        )

    @allow(*AGENTS)
    async def RecordConsent(
        self, request: pb.RecordConsentRequest, context: Context
    ) -> pb.RecordConsentResponse:
        case_id = case_id_of(request.parent, "parent")
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
                case_id=case_id,
                given_by=given_by,
                verification=request.consent.verification,
                scopes=[s for s in scopes if s is not None],
                idempotency=idempotency,
            ),
            respond,
        )

    @allow(*AGENTS)
    async def RevokeConsent(
        self, request: pb.RevokeConsentRequest, context: Context
    ) -> pb.RevokeConsentResponse:
        case_id, consent_id = consent_ids_of(request.name)
        return await run_command(
            "case.RevokeConsent",
            request,
            pb.RevokeConsentResponse,
            lambda idempotency: handlers.revoke_consent(
                cases=self.cases,
                caller=current_caller(),
                case_id=case_id,
                consent_id=consent_id,
                idempotency=idempotency,
            ),
            lambda consent: pb.RevokeConsentResponse(consent=consent_message(consent)),
        )

    # Public keys: anyone with a token may fetch them to verify grants.
    @allow(*Role)
    async def GetGrantKeys(
        self, request: pb.GetGrantKeysRequest, context: Context
    ) -> pb.GetGrantKeysResponse:
        return pb.GetGrantKeysResponse(jwks_json=self.cases.grant_jwks, issuer=self.cases.grants.issuer)

    @allow(Role.AGENT, Role.CITIZEN)
    async def RecordSatisfaction(
        self, request: pb.RecordSatisfactionRequest, context: Context
    ) -> pb.RecordSatisfactionResponse:
        case_id = case_id_of(request.name)
        return await self._case_command(
            "RecordSatisfaction",
            request,
            pb.RecordSatisfactionResponse,
            lambda idempotency: handlers.record_satisfaction(
                cases=self.cases,
                caller=current_caller(),
                case_id=case_id,
                score=request.score,
                idempotency=idempotency,
            ),
        )

    @allow(Role.AGENT, Role.UNIT_MANAGER, Role.AUDITOR, Role.FINANCE)
    async def GetCaseStatistics(
        self, request: pb.GetCaseStatisticsRequest, context: Context
    ) -> pb.GetCaseStatisticsResponse:
        if not request.HasField("start_date"):
            raise InvalidArgument.field("start_date", "is required")
        if not request.HasField("end_date"):
            raise InvalidArgument.field("end_date", "is required")
        dimensions = []
        for index, value in enumerate(request.group_by):
            if value not in DIMENSIONS:
                raise InvalidArgument.field(f"group_by[{index}]", "must be a dimension, not unspecified")
            dimensions.append(DIMENSIONS[value])
        statistics = await handlers.case_statistics(
            cases=self.cases,
            start=from_date_message(request.start_date, "start_date"),
            end=from_date_message(request.end_date, "end_date"),
            dimensions=dimensions,
        )
        return pb.GetCaseStatisticsResponse(
            rows=[statistics_row(r) for r in statistics.rows],
            total=statistics_row(statistics.total),
            csv=statistics_csv(statistics) if request.include_csv else "",
        )

    @allow(Role.FINANCE, Role.SERVICE, Role.AUDITOR)
    async def CountBillableContacts(
        self, request: pb.CountBillableContactsRequest, context: Context
    ) -> pb.CountBillableContactsResponse:
        month = parse_month(request.month, "month")
        scope = request.scope
        unit_id = district_id = None
        if scope.startswith("units/"):
            unit_id = resource_id(scope, "units", "scope")
        elif scope.startswith("districts/"):
            district_id = resource_id(scope, "districts", "scope")
        elif scope:
            raise InvalidArgument.field(
                "scope", f"{quoted(scope)} is neither units/{{unit}} nor districts/{{district}}"
            )
        counts = await handlers.count_billable_contacts(
            cases=self.cases, month=month, unit_id=unit_id, district_id=district_id
        )
        return pb.CountBillableContactsResponse(
            counts=[billable_message(c) for c in counts], month=f"{month:%Y-%m}"
        )

    @allow(Role.CITIZEN)
    async def ListMyCases(self, request: pb.ListMyCasesRequest, context: Context) -> pb.ListMyCasesResponse:
        caller = current_caller()
        page = self.pages.request(request, {"mine": True}, owner=caller)
        items, token = await handlers.list_my_cases(cases=self.cases, caller=caller, page=page)
        return pb.ListMyCasesResponse(cases=[my_case_message(c) for c in items], next_page_token=token)
