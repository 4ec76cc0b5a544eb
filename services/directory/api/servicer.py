"""The DirectoryService servicer: who may call each RPC, the request parsed, a use case called, the answer
built. Nothing else happens here."""

from __future__ import annotations

from typing import Any

import grpc
from aldredirekt.directory.v1 import directory_pb2 as pb
from aldredirekt.directory.v1 import directory_pb2_grpc

from services.common.commands import run_command
from services.common.errors import InvalidArgument, quoted
from services.common.names import resource_id, resource_ids
from services.common.pagination import PageTokens
from services.common.personnummer import parse_person_number
from services.common.protoconv import from_timestamp
from services.common.server import allow, current_caller
from services.directory import handlers
from services.directory.api.mapping import (
    absence_message,
    district_message,
    needs,
    officer_from_message,
    officer_message,
    resolved_message,
    role_of,
    rule_set_from_message,
    rule_set_message,
    specialty_of,
    unit_from_message,
    unit_message,
)
from services.directory.handlers import ADMINS, PUBLIC, ROUTERS, STAFF, Directory, ResolveQuery
from services.directory.model import Absence
from services.directory.store import OfficerQuery

Context = grpc.aio.ServicerContext[Any, Any]


def _optional_id(raw: str, collection: str, field: str) -> str | None:
    return resource_id(raw, collection, field) if raw else None


def _postal_code(raw: str) -> str | None:
    # Checked with the rest of the question (handlers.resolve_responsible), so that every bad field of a
    # request is named in one answer.
    return raw.replace(" ", "") or None


def _mask(request: Any) -> list[str]:
    return list(request.update_mask.paths) if request.HasField("update_mask") else []


class DirectoryServicer(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self, directory: Directory, pages: PageTokens):
        self.directory = directory
        self.pages = pages

    @allow(*PUBLIC)
    async def GetDistrict(self, request: pb.GetDistrictRequest, context: Context) -> pb.GetDistrictResponse:
        district, current = await handlers.get_district(
            directory=self.directory, district_id=resource_id(request.name, "districts", "name")
        )
        today = self.directory.clock().date()
        return pb.GetDistrictResponse(
            district=district_message(district, today), current_district=district_message(current, today)
        )

    @allow(*PUBLIC)
    async def ListDistricts(
        self, request: pb.ListDistrictsRequest, context: Context
    ) -> pb.ListDistrictsResponse:
        page = self.pages.request(request, {"retired": request.include_retired}, owner=None)
        items, token = await handlers.list_districts(
            directory=self.directory, page=page, include_retired=request.include_retired
        )
        today = self.directory.clock().date()
        return pb.ListDistrictsResponse(
            districts=[district_message(d, today) for d in items], next_page_token=token
        )

    @allow(*PUBLIC)
    async def GetUnit(self, request: pb.GetUnitRequest, context: Context) -> pb.GetUnitResponse:
        view = await handlers.get_unit(
            directory=self.directory,
            caller=current_caller(),
            unit_id=resource_id(request.name, "units", "name"),
        )
        return pb.GetUnitResponse(unit=unit_message(view))

    @allow(*PUBLIC)
    async def ListUnits(self, request: pb.ListUnitsRequest, context: Context) -> pb.ListUnitsResponse:
        district_id = _optional_id(request.district, "districts", "district")
        page = self.pages.request(request, {"district": district_id}, owner=None)
        items, token = await handlers.list_units(
            directory=self.directory, caller=current_caller(), page=page, district_id=district_id
        )
        return pb.ListUnitsResponse(units=[unit_message(v) for v in items], next_page_token=token)

    @allow(*ADMINS)
    async def CreateUnit(self, request: pb.CreateUnitRequest, context: Context) -> pb.CreateUnitResponse:
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

    @allow(*ADMINS)
    async def UpdateUnit(self, request: pb.UpdateUnitRequest, context: Context) -> pb.UpdateUnitResponse:
        unit_id = resource_id(request.unit.name, "units", "unit.name")
        mask = _mask(request)
        unit = unit_from_message(request.unit, unit_id, "unit", policy_required=needs(mask, "contact_policy"))
        view = await handlers.update_unit(
            directory=self.directory,
            caller=current_caller(),
            unit=unit,
            etag=request.unit.etag,
            update_mask=mask,
        )
        return pb.UpdateUnitResponse(unit=unit_message(view))

    @allow(*STAFF)
    async def GetOfficer(self, request: pb.GetOfficerRequest, context: Context) -> pb.GetOfficerResponse:
        view = await handlers.get_officer(
            directory=self.directory,
            caller=current_caller(),
            officer_id=resource_id(request.name, "officers", "name"),
        )
        return pb.GetOfficerResponse(officer=officer_message(view))

    @allow(*STAFF)
    async def ListOfficers(
        self, request: pb.ListOfficersRequest, context: Context
    ) -> pb.ListOfficersResponse:
        query = OfficerQuery(
            unit_id=_optional_id(request.unit, "units", "unit"), include_inactive=request.include_inactive
        )
        page = self.pages.request(request, {"list": query.__dict__}, owner=None)
        items, token = await handlers.search_officers(
            directory=self.directory, caller=current_caller(), page=page, query=query
        )
        return pb.ListOfficersResponse(officers=[officer_message(v) for v in items], next_page_token=token)

    @allow(*STAFF)
    async def SearchOfficers(
        self, request: pb.SearchOfficersRequest, context: Context
    ) -> pb.SearchOfficersResponse:
        language = request.language.strip().lower()
        if language and not (2 <= len(language) <= 3 and language.isalpha() and language.isascii()):
            raise InvalidArgument.field("language", "must be an ISO 639 code such as sv, fi or ar")
        if len(request.name_prefix) > 200:
            raise InvalidArgument.field("name_prefix", "must be at most 200 characters")
        query = OfficerQuery(
            unit_id=_optional_id(request.unit, "units", "unit"),
            district_id=_optional_id(request.district, "districts", "district"),
            name_prefix=request.name_prefix.strip() or None,
            language=language or None,
            specialty=specialty_of(request.specialty, "specialty"),
            role=role_of(request.role, "role"),
            include_inactive=request.include_inactive,
        )
        page = self.pages.request(request, {"search": query.__dict__}, owner=None)
        items, token = await handlers.search_officers(
            directory=self.directory, caller=current_caller(), page=page, query=query
        )
        return pb.SearchOfficersResponse(officers=[officer_message(v) for v in items], next_page_token=token)

    @allow(*ADMINS)
    async def CreateOfficer(
        self, request: pb.CreateOfficerRequest, context: Context
    ) -> pb.CreateOfficerResponse:
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

    @allow(*ADMINS)
    async def UpdateOfficer(
        self, request: pb.UpdateOfficerRequest, context: Context
    ) -> pb.UpdateOfficerResponse:
        officer_id = resource_id(request.officer.name, "officers", "officer.name")
        mask = _mask(request)
        officer = officer_from_message(
            request.officer, officer_id, "officer", role_required=needs(mask, "role")
        )
        view = await handlers.update_officer(
            directory=self.directory,
            caller=current_caller(),
            officer=officer,
            etag=request.officer.etag,
            update_mask=mask,
        )
        return pb.UpdateOfficerResponse(officer=officer_message(view))

    @allow(*ADMINS)
    async def CreateAbsence(
        self, request: pb.CreateAbsenceRequest, context: Context
    ) -> pb.CreateAbsenceResponse:
        officer_id = resource_id(request.parent, "officers", "parent")
        start = from_timestamp(request.absence.start_time, "absence.start_time")
        end = from_timestamp(request.absence.end_time, "absence.end_time")
        assert start is not None
        assert end is not None
        substitute = _optional_id(request.absence.substitute, "officers", "absence.substitute") or ""
        absence_id = ""
        if request.absence.name:
            absence_id = resource_ids(request.absence.name, ("officers", "absences"), "absence.name")[1]
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
                directory=self.directory, absence=absence, idempotency=idempotency
            ),
            lambda stored: pb.CreateAbsenceResponse(absence=absence_message(stored)),
        )

    @allow(*STAFF)
    async def ListAbsences(
        self, request: pb.ListAbsencesRequest, context: Context
    ) -> pb.ListAbsencesResponse:
        officer_id = resource_id(request.parent, "officers", "parent")
        page = self.pages.request(request, {"parent": officer_id}, owner=None)
        items, token = await handlers.list_absences(
            directory=self.directory, officer_id=officer_id, page=page
        )
        return pb.ListAbsencesResponse(absences=[absence_message(a) for a in items], next_page_token=token)

    @allow(*ADMINS)
    async def DeleteAbsence(
        self, request: pb.DeleteAbsenceRequest, context: Context
    ) -> pb.DeleteAbsenceResponse:
        officer_id, absence_id = resource_ids(request.name, ("officers", "absences"), "name")
        await handlers.delete_absence(directory=self.directory, officer_id=officer_id, absence_id=absence_id)
        return pb.DeleteAbsenceResponse()

    @allow(*STAFF)
    async def GetAssignmentRules(
        self, request: pb.GetAssignmentRulesRequest, context: Context
    ) -> pb.GetAssignmentRulesResponse:
        rule_set = await handlers.get_assignment_rules(
            directory=self.directory, unit_id=resource_id(request.unit, "units", "unit")
        )
        return pb.GetAssignmentRulesResponse(rule_set=rule_set_message(rule_set))

    @allow(*ADMINS)
    async def ReplaceAssignmentRules(
        self, request: pb.ReplaceAssignmentRulesRequest, context: Context
    ) -> pb.ReplaceAssignmentRulesResponse:
        rule_set = rule_set_from_message(request.rule_set)
        return await run_command(
            "directory.ReplaceAssignmentRules",
            request,
            pb.ReplaceAssignmentRulesResponse,
            lambda idempotency: handlers.replace_assignment_rules(
                directory=self.directory,
                rule_set=rule_set,
                etag=request.rule_set.etag,
                idempotency=idempotency,
            ),
            lambda stored: pb.ReplaceAssignmentRulesResponse(rule_set=rule_set_message(stored)),
        )

    @allow(*ROUTERS)
    async def ResolveResponsible(
        self, request: pb.ResolveResponsibleRequest, context: Context
    ) -> pb.ResolveResponsibleResponse:
        query = ResolveQuery(
            person=parse_person_number(request.person_number, field="person_number")
            if request.person_number
            else None,
            district_id=_optional_id(request.district, "districts", "district"),
            postal_code=_postal_code(request.postal_code),
            need_role=role_of(request.need_role, "need_role"),
            need_specialty=specialty_of(request.need_specialty, "need_specialty"),
            named_id=_optional_id(request.named_officer, "officers", "named_officer"),
            at=from_timestamp(request.at_time, "at_time", required=False),
            purpose=request.purpose,
        )
        resolved = await handlers.resolve_responsible(
            directory=self.directory, caller=current_caller(), query=query
        )
        return resolved_message(resolved, self.directory.clock().date())

    @allow(*ADMINS)
    async def ExportDirectory(
        self, request: pb.ExportDirectoryRequest, context: Context
    ) -> pb.ExportDirectoryResponse:
        # The export holds every direct number, so it is for the directory's administrators only.
        files = await handlers.export_directory(directory=self.directory)
        return pb.ExportDirectoryResponse(
            files=[pb.CsvFile(file_name=name, content=content) for name, content in files.items()]
        )

    @allow(*ADMINS)
    async def ImportDirectory(
        self, request: pb.ImportDirectoryRequest, context: Context
    ) -> pb.ImportDirectoryResponse:
        files: dict[str, str] = {}
        for index, item in enumerate(request.files):
            if item.file_name in files:
                raise InvalidArgument.field(
                    f"files[{index}].file_name", f"{quoted(item.file_name)} is given twice"
                )
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
                files=files,
                validate_only=request.validate_only,
                idempotency=idempotency,
            ),
            respond,
        )
