"""The gRPC servicer: protobuf in, a handler called, protobuf out. Nothing else happens here."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

import grpc
from aldredirekt.common.v1 import common_pb2
from aldredirekt.directory.v1 import directory_pb2 as pb
from aldredirekt.directory.v1 import directory_pb2_grpc

from services.common.commands import run_command
from services.common.errors import InvalidArgument
from services.common.etags import etag_for
from services.common.names import resource_id
from services.common.pagination import page_request
from services.common.protoconv import date_message, from_enum, from_timestamp, timestamp, to_enum
from services.common.server import current_caller
from services.directory import handlers
from services.directory.handlers import Directory, OfficerView, ResolveQuery, UnitView
from services.directory.model import (
    Absence,
    Area,
    AssignmentRule,
    ContactPolicy,
    Decision,
    District,
    Officer,
    OfficerRole,
    PostalCodeRange,
    RuleSet,
    Specialty,
    Unit,
    WeeklyPeriod,
    parse_hhmm,
)
from services.directory.store import OfficerQuery

E = TypeVar("E", bound=StrEnum)
Context = grpc.aio.ServicerContext[Any, Any]

# ---- conversions ------------------------------------------------------------------------------------------
# The views are immutable and the same few hundred recur on every call, so their messages are built once;
# a message placed in a response is copied there, so the cached one is never changed.


def _role(value: int, field: str) -> OfficerRole | None:
    return to_enum(OfficerRole, "OFFICER_ROLE_", value, pb.OfficerRole, field)


def _specialty(value: int, field: str) -> Specialty | None:
    return to_enum(Specialty, "SPECIALTY_", value, pb.Specialty, field)


def _policy(value: int, field: str) -> ContactPolicy:
    policy = to_enum(ContactPolicy, "CONTACT_POLICY_", value, pb.ContactPolicy, field)
    if policy is None:
        raise InvalidArgument.field(field, "is required")
    return policy


def _periods(items: Sequence[common_pb2.WeeklyPeriod], field: str) -> tuple[WeeklyPeriod, ...]:
    return tuple(
        WeeklyPeriod(
            p.day_of_week,
            parse_hhmm(p.start_time, f"{field}[{i}].start_time"),
            parse_hhmm(p.end_time, f"{field}[{i}].end_time"),
        )
        for i, p in enumerate(items)
    )


def _period_messages(periods: Sequence[WeeklyPeriod]) -> list[common_pb2.WeeklyPeriod]:
    return [
        common_pb2.WeeklyPeriod(
            day_of_week=p.day_of_week, start_time=f"{p.start:%H:%M}", end_time=f"{p.end:%H:%M}"
        )
        for p in periods
    ]


@functools.lru_cache(maxsize=4096)
def district_message(district: District, today: date) -> pb.District:
    return pb.District(
        name=district.name,
        display_name=district.display_name,
        valid_from=date_message(district.valid_from),
        valid_to=date_message(district.valid_to),
        successor=f"districts/{district.successor_id}" if district.successor_id else "",
        current=district.is_current(today),
    )


@functools.lru_cache(maxsize=4096)
def unit_message(view: UnitView) -> pb.Unit:
    unit, route = view.unit, view.route
    public = pb.ContactRoute(
        contact_policy=from_enum(route.contact_policy, "CONTACT_POLICY_", pb.ContactPolicy),
        phone=route.phone,
        hours=_period_messages(route.hours),
        description=route.description,
    )
    if view.public_only:
        return pb.Unit(
            name=unit.name,
            display_name=unit.display_name,
            district=f"districts/{unit.district_id}",
            public_route=public,
        )
    return pb.Unit(
        name=unit.name,
        display_name=unit.display_name,
        district=f"districts/{unit.district_id}",
        mailbox=unit.mailbox,
        acute_phone=unit.acute_phone,
        acute_hours=_period_messages(unit.acute_hours),
        contact_policy=from_enum(unit.contact_policy, "CONTACT_POLICY_", pb.ContactPolicy),
        reception_phone=unit.reception_phone,
        phone_hours=_period_messages(unit.phone_hours),
        team_model=unit.team_model,
        public_route=public,
        etag=etag_for(unit.name, unit.revision),
        create_time=timestamp(unit.create_time),
        update_time=timestamp(unit.update_time),
    )


def unit_from_message(message: pb.Unit, unit_id: str, prefix: str, *, policy_required: bool = True) -> Unit:
    """A unit from a request; an update whose mask leaves the policy alone may send it unspecified
    (a placeholder stands in, which the mask never applies)."""
    policy = (
        _policy(message.contact_policy, f"{prefix}.contact_policy")
        if policy_required or message.contact_policy
        else ContactPolicy.CONTACT_CENTER_ONLY
    )
    return Unit(
        unit_id=unit_id,
        display_name=message.display_name,
        district_id=resource_id(message.district, "districts", f"{prefix}.district")
        if message.district
        else "",
        mailbox=message.mailbox,
        acute_phone=message.acute_phone,
        acute_hours=_periods(message.acute_hours, f"{prefix}.acute_hours"),
        contact_policy=policy,
        reception_phone=message.reception_phone,
        phone_hours=_periods(message.phone_hours, f"{prefix}.phone_hours"),
        team_model=message.team_model,
    )


@functools.lru_cache(maxsize=4096)
def officer_message(view: OfficerView) -> pb.Officer:
    officer = view.officer
    return pb.Officer(
        name=officer.name,
        given_name=officer.given_name,
        family_name=officer.family_name,
        unit=f"units/{officer.unit_id}",
        role=from_enum(officer.role, "OFFICER_ROLE_", pb.OfficerRole),
        specialties=[from_enum(s, "SPECIALTY_", pb.Specialty) for s in officer.specialties],
        languages=list(officer.languages),
        team=officer.team,
        phone=officer.phone,
        phone_withheld=view.phone_withheld,
        email=officer.email,
        active=officer.active,
        caseload=officer.caseload,
        etag=etag_for(officer.name, officer.revision),
        create_time=timestamp(officer.create_time),
        update_time=timestamp(officer.update_time),
    )


def officer_from_message(
    message: pb.Officer, officer_id: str, prefix: str, *, role_required: bool = True
) -> Officer:
    """An officer from a request; an update whose mask leaves the role alone may send it unspecified."""
    role = _role(message.role, f"{prefix}.role")
    if role is None and role_required:
        raise InvalidArgument.field(f"{prefix}.role", "is required")
    specialties = []
    for index, value in enumerate(message.specialties):
        specialty = _specialty(value, f"{prefix}.specialties[{index}]")
        if specialty is None:
            raise InvalidArgument.field(f"{prefix}.specialties[{index}]", "must not be unspecified")
        specialties.append(specialty)
    return Officer(
        officer_id=officer_id,
        unit_id=resource_id(message.unit, "units", f"{prefix}.unit") if message.unit else "",
        given_name=message.given_name,
        family_name=message.family_name,
        role=role or OfficerRole.ORDINARY_HOUSING,  # only when the mask does not apply it
        specialties=tuple(specialties),
        languages=tuple(message.languages),
        team=message.team,
        phone=message.phone,
        email=message.email,
        active=message.active,
        caseload=message.caseload,
    )


def absence_message(absence: Absence) -> pb.Absence:
    return pb.Absence(
        name=absence.name,
        start_time=timestamp(absence.start),
        end_time=timestamp(absence.end),
        substitute=f"officers/{absence.substitute_id}",
        create_time=timestamp(absence.create_time),
    )


def rule_set_message(rule_set: RuleSet) -> pb.AssignmentRuleSet:
    rules = []
    for rule in rule_set.rules:
        message = pb.AssignmentRule(
            rule_id=rule.rule_id,
            area_id=rule.area_id,
            role=from_enum(rule.role, "OFFICER_ROLE_", pb.OfficerRole),
            first_birth_day=rule.first_birth_day,
            last_birth_day=rule.last_birth_day,
        )
        if rule.officer_id:
            message.officer = f"officers/{rule.officer_id}"
        elif rule.team:
            message.team = rule.team
        rules.append(message)
    return pb.AssignmentRuleSet(
        unit=f"units/{rule_set.unit_id}",
        areas=[
            pb.Area(
                area_id=a.area_id,
                display_name=a.display_name,
                postal_code_ranges=[
                    pb.PostalCodeRange(first=r.first, last=r.last) for r in a.postal_code_ranges
                ],
            )
            for a in rule_set.areas
        ],
        rules=rules,
        etag=etag_for(rule_set.name, rule_set.revision),
        update_time=timestamp(rule_set.update_time),
    )


def rule_set_from_message(message: pb.AssignmentRuleSet) -> RuleSet:
    unit_id = resource_id(message.unit, "units", "rule_set.unit")
    rules = []
    for index, rule in enumerate(message.rules):
        which = rule.WhichOneof("responsible")
        rules.append(
            AssignmentRule(
                rule_id=rule.rule_id,
                area_id=rule.area_id,
                role=_role(rule.role, f"rule_set.rules[{index}].role"),
                first_birth_day=rule.first_birth_day,
                last_birth_day=rule.last_birth_day,
                officer_id=(
                    resource_id(rule.officer, "officers", f"rule_set.rules[{index}].officer")
                    if which == "officer"
                    else None
                ),
                team=rule.team if which == "team" else None,
            )
        )
    return RuleSet(
        unit_id=unit_id,
        areas=tuple(
            Area(
                a.area_id,
                a.display_name,
                tuple(PostalCodeRange(r.first, r.last) for r in a.postal_code_ranges),
            )
            for a in message.areas
        ),
        rules=tuple(rules),
    )


_DECISIONS = {
    Decision.NAMED_OFFICER: pb.DECISION_NAMED_OFFICER,
    Decision.ASSIGNMENT_RULE: pb.DECISION_ASSIGNMENT_RULE,
    Decision.SPECIALIST: pb.DECISION_SPECIALIST,
    Decision.UNIT_INTAKE: pb.DECISION_UNIT_INTAKE,
}


# ---- the servicer -----------------------------------------------------------------------------------------


class DirectoryServicer(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self, directory: Directory):
        self.directory = directory

    async def GetDistrict(self, request: pb.GetDistrictRequest, context: Context) -> pb.GetDistrictResponse:
        district, current = await handlers.get_district(
            directory=self.directory, caller=current_caller(), name=request.name
        )
        today = self.directory.clock().date()
        return pb.GetDistrictResponse(
            district=district_message(district, today), current_district=district_message(current, today)
        )

    async def ListDistricts(
        self, request: pb.ListDistrictsRequest, context: Context
    ) -> pb.ListDistrictsResponse:
        page = page_request(request.page_size, request.page_token, {"retired": request.include_retired})
        items, token = await handlers.list_districts(
            directory=self.directory,
            caller=current_caller(),
            page=page,
            include_retired=request.include_retired,
        )
        today = self.directory.clock().date()
        return pb.ListDistrictsResponse(
            districts=[district_message(d, today) for d in items], next_page_token=token
        )

    async def GetUnit(self, request: pb.GetUnitRequest, context: Context) -> pb.GetUnitResponse:
        view = await handlers.get_unit(directory=self.directory, caller=current_caller(), name=request.name)
        return pb.GetUnitResponse(unit=unit_message(view))

    async def ListUnits(self, request: pb.ListUnitsRequest, context: Context) -> pb.ListUnitsResponse:
        page = page_request(request.page_size, request.page_token, {"district": request.district})
        items, token = await handlers.list_units(
            directory=self.directory, caller=current_caller(), page=page, district=request.district
        )
        return pb.ListUnitsResponse(units=[unit_message(v) for v in items], next_page_token=token)

    async def CreateUnit(self, request: pb.CreateUnitRequest, context: Context) -> pb.CreateUnitResponse:
        current_caller().require_role(*handlers.ADMINS)  # before the request is even read
        unit = unit_from_message(request.unit, request.unit_id, "unit")
        return await run_command(
            "directory.CreateUnit",
            request,
            pb.CreateUnitResponse,
            lambda idempotency: handlers.create_unit(
                directory=self.directory, caller=current_caller(), unit=unit, idempotency=idempotency
            ),
            lambda view: pb.CreateUnitResponse(unit=unit_message(view)),
        )

    async def UpdateUnit(self, request: pb.UpdateUnitRequest, context: Context) -> pb.UpdateUnitResponse:
        current_caller().require_role(*handlers.ADMINS)  # before the request is even read
        unit_id = resource_id(request.unit.name, "units", "unit.name")
        unit = unit_from_message(
            request.unit, unit_id, "unit", policy_required=_needs(request.update_mask, "contact_policy")
        )
        view = await handlers.update_unit(
            directory=self.directory,
            caller=current_caller(),
            unit=unit,
            etag=request.unit.etag,
            update_mask=list(request.update_mask),
        )
        return pb.UpdateUnitResponse(unit=unit_message(view))

    async def GetOfficer(self, request: pb.GetOfficerRequest, context: Context) -> pb.GetOfficerResponse:
        view = await handlers.get_officer(
            directory=self.directory, caller=current_caller(), name=request.name
        )
        return pb.GetOfficerResponse(officer=officer_message(view))

    async def ListOfficers(
        self, request: pb.ListOfficersRequest, context: Context
    ) -> pb.ListOfficersResponse:
        query = OfficerQuery(
            unit_id=resource_id(request.unit, "units", "unit") if request.unit else None,
            include_inactive=request.include_inactive,
        )
        page = page_request(request.page_size, request.page_token, {"list": query.__dict__})
        items, token = await handlers.search_officers(
            directory=self.directory, caller=current_caller(), page=page, query=query
        )
        return pb.ListOfficersResponse(officers=[officer_message(v) for v in items], next_page_token=token)

    async def SearchOfficers(
        self, request: pb.SearchOfficersRequest, context: Context
    ) -> pb.SearchOfficersResponse:
        language = request.language.strip().lower()
        if language and not (2 <= len(language) <= 3 and language.isalpha()):
            raise InvalidArgument.field("language", "must be an ISO 639 code such as sv, fi or ar")
        if len(request.name_prefix) > 200:
            raise InvalidArgument.field("name_prefix", "must be at most 200 characters")
        query = OfficerQuery(
            unit_id=resource_id(request.unit, "units", "unit") if request.unit else None,
            district_id=resource_id(request.district, "districts", "district") if request.district else None,
            name_prefix=request.name_prefix.strip() or None,
            language=language or None,
            specialty=_specialty(request.specialty, "specialty"),
            role=_role(request.role, "role"),
            include_inactive=request.include_inactive,
        )
        page = page_request(request.page_size, request.page_token, {"search": query.__dict__})
        items, token = await handlers.search_officers(
            directory=self.directory, caller=current_caller(), page=page, query=query
        )
        return pb.SearchOfficersResponse(officers=[officer_message(v) for v in items], next_page_token=token)

    async def CreateOfficer(
        self, request: pb.CreateOfficerRequest, context: Context
    ) -> pb.CreateOfficerResponse:
        current_caller().require_role(*handlers.ADMINS)  # before the request is even read
        officer = officer_from_message(request.officer, request.officer_id, "officer")
        return await run_command(
            "directory.CreateOfficer",
            request,
            pb.CreateOfficerResponse,
            lambda idempotency: handlers.create_officer(
                directory=self.directory, caller=current_caller(), officer=officer, idempotency=idempotency
            ),
            lambda view: pb.CreateOfficerResponse(officer=officer_message(view)),
        )

    async def UpdateOfficer(
        self, request: pb.UpdateOfficerRequest, context: Context
    ) -> pb.UpdateOfficerResponse:
        current_caller().require_role(*handlers.ADMINS)  # before the request is even read
        officer_id = resource_id(request.officer.name, "officers", "officer.name")
        officer = officer_from_message(
            request.officer, officer_id, "officer", role_required=_needs(request.update_mask, "role")
        )
        view = await handlers.update_officer(
            directory=self.directory,
            caller=current_caller(),
            officer=officer,
            etag=request.officer.etag,
            update_mask=list(request.update_mask),
        )
        return pb.UpdateOfficerResponse(officer=officer_message(view))

    async def CreateAbsence(
        self, request: pb.CreateAbsenceRequest, context: Context
    ) -> pb.CreateAbsenceResponse:
        current_caller().require_role(*handlers.ADMINS)  # before the request is even read
        officer_id = resource_id(request.parent, "officers", "parent")
        start = from_timestamp(request.absence.start_time, "absence.start_time")
        end = from_timestamp(request.absence.end_time, "absence.end_time")
        assert start is not None
        assert end is not None
        substitute = (
            resource_id(request.absence.substitute, "officers", "absence.substitute")
            if request.absence.substitute
            else ""
        )
        absence_id = request.absence.name.rsplit("/", 1)[-1] if request.absence.name else ""
        if not absence_id:
            # The absence's id is derived from the request, so a retry without request_id still cannot
            # record the same absence twice.
            absence_id = f"{start:%Y%m%d%H%M}-{end:%Y%m%d%H%M}"
        absence = Absence(
            absence_id=absence_id, officer_id=officer_id, start=start, end=end, substitute_id=substitute
        )
        return await run_command(
            "directory.CreateAbsence",
            request,
            pb.CreateAbsenceResponse,
            lambda idempotency: handlers.create_absence(
                directory=self.directory, caller=current_caller(), absence=absence, idempotency=idempotency
            ),
            lambda stored: pb.CreateAbsenceResponse(absence=absence_message(stored)),
        )

    async def ListAbsences(
        self, request: pb.ListAbsencesRequest, context: Context
    ) -> pb.ListAbsencesResponse:
        page = page_request(request.page_size, request.page_token, {"parent": request.parent})
        items, token = await handlers.list_absences(
            directory=self.directory, caller=current_caller(), parent=request.parent, page=page
        )
        return pb.ListAbsencesResponse(absences=[absence_message(a) for a in items], next_page_token=token)

    async def DeleteAbsence(
        self, request: pb.DeleteAbsenceRequest, context: Context
    ) -> pb.DeleteAbsenceResponse:
        await handlers.delete_absence(directory=self.directory, caller=current_caller(), name=request.name)
        return pb.DeleteAbsenceResponse()

    async def GetAssignmentRules(
        self, request: pb.GetAssignmentRulesRequest, context: Context
    ) -> pb.GetAssignmentRulesResponse:
        rule_set = await handlers.get_assignment_rules(
            directory=self.directory, caller=current_caller(), unit=request.unit
        )
        return pb.GetAssignmentRulesResponse(rule_set=rule_set_message(rule_set))

    async def ReplaceAssignmentRules(
        self, request: pb.ReplaceAssignmentRulesRequest, context: Context
    ) -> pb.ReplaceAssignmentRulesResponse:
        current_caller().require_role(*handlers.ADMINS)  # before the request is even read
        rule_set = rule_set_from_message(request.rule_set)
        return await run_command(
            "directory.ReplaceAssignmentRules",
            request,
            pb.ReplaceAssignmentRulesResponse,
            lambda idempotency: handlers.replace_assignment_rules(
                directory=self.directory,
                caller=current_caller(),
                rule_set=rule_set,
                etag=request.rule_set.etag,
                idempotency=idempotency,
            ),
            lambda stored: pb.ReplaceAssignmentRulesResponse(rule_set=rule_set_message(stored)),
        )

    async def ResolveResponsible(
        self, request: pb.ResolveResponsibleRequest, context: Context
    ) -> pb.ResolveResponsibleResponse:
        query = ResolveQuery(
            person_number=request.person_number,
            district=request.district,
            postal_code=request.postal_code,
            need_role=_role(request.need_role, "need_role"),
            need_specialty=_specialty(request.need_specialty, "need_specialty"),
            named_officer=request.named_officer,
            at=from_timestamp(request.at_time, "at_time", required=False),
            purpose=request.purpose,
        )
        resolved = await handlers.resolve_responsible(
            directory=self.directory, caller=current_caller(), query=query
        )
        return resolved_message(resolved, self.directory.clock().date())

    async def ExportDirectory(
        self, request: pb.ExportDirectoryRequest, context: Context
    ) -> pb.ExportDirectoryResponse:
        files = await handlers.export_directory(directory=self.directory, caller=current_caller())
        return pb.ExportDirectoryResponse(
            files=[pb.CsvFile(file_name=name, content=content) for name, content in files.items()]
        )

    async def ImportDirectory(
        self, request: pb.ImportDirectoryRequest, context: Context
    ) -> pb.ImportDirectoryResponse:
        current_caller().require_role(*handlers.ADMINS)  # before the request is even read
        files: dict[str, str] = {}
        for index, item in enumerate(request.files):
            if item.file_name in files:
                raise InvalidArgument.field(f"files[{index}].file_name", f"{item.file_name} is given twice")
            files[item.file_name] = item.content

        def respond(counts: Any) -> pb.ImportDirectoryResponse:
            return pb.ImportDirectoryResponse(
                units=counts.units,
                officers=counts.officers,
                absences=counts.absences,
                areas=counts.areas,
                rules=counts.rules,
            )

        return await run_command(
            "directory.ImportDirectory",
            request,
            pb.ImportDirectoryResponse,
            lambda idempotency: handlers.import_directory(
                directory=self.directory,
                caller=current_caller(),
                files=files,
                validate_only=request.validate_only,
                idempotency=idempotency,
            ),
            respond,
        )


@functools.lru_cache(maxsize=8192)
def resolved_message(resolved: handlers.ResolvedView, today: date) -> pb.ResolveResponsibleResponse:
    """Built once per answer and day: equal answers are one object (handlers.ResolvedView), and the
    message is only read from here on, serialised by grpc for each call."""
    responsible = resolved.responsible
    return pb.ResolveResponsibleResponse(
        officer=officer_message(resolved.officer) if resolved.officer else None,
        absent_officer=officer_message(resolved.absent_officer) if resolved.absent_officer else None,
        team=responsible.team,
        team_members=[officer_message(v) for v in resolved.team_members],
        unit=unit_message(resolved.unit),
        district=district_message(responsible.district, today),
        decision=_DECISIONS[responsible.decision],
        rule_id=responsible.rule_id,
        area_id=responsible.area_id,
        unit_managers=[officer_message(v) for v in resolved.unit_managers],
    )


def _needs(mask: Sequence[str], name: str) -> bool:
    return not mask or name in mask
