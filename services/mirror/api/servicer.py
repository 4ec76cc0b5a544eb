"""The MirrorService servicer: who may call each RPC, the request parsed, a use case called, the answer
built."""

from __future__ import annotations

from typing import Any

import grpc
from aldredirekt.mirror.v1 import mirror_pb2 as pb
from aldredirekt.mirror.v1 import mirror_pb2_grpc

from services.common.auth import Role
from services.common.errors import InvalidArgument
from services.common.grants import grant_from_metadata
from services.common.names import resource_id, resource_ids
from services.common.ocr import OcrControl, parse_ocr
from services.common.pagination import PageTokens
from services.common.personnummer import parse_person_number
from services.common.server import allow, current_caller
from services.mirror.api.mapping import (
    agreement_message,
    freshness_message,
    invoice_message,
    overview_message,
    quarantined_message,
    sections_of,
    source_message,
)
from services.mirror.handlers import operations, reads
from services.mirror.handlers.mirror import Mirror

Context = grpc.aio.ServicerContext[Any, Any]
READERS = (Role.AGENT, Role.CITIZEN)
OPERATORS = (Role.OPERATOR,)
# How long RefreshPerson waits for the sources when the caller set no deadline, and at most.
DEFAULT_REFRESH_SECONDS = 2.0
MAX_REFRESH_SECONDS = 10.0


def _person(raw: str) -> str:
    if not raw:
        raise InvalidArgument.field("person_number", "is required")
    return str(parse_person_number(raw, field="person_number"))


def _grant(context: Context) -> str | None:
    return grant_from_metadata(context.invocation_metadata())


def _source(raw: str, field: str) -> str:
    return resource_id(raw, "sources", field)


class MirrorServicer(mirror_pb2_grpc.MirrorServiceServicer):
    def __init__(self, mirror: Mirror, pages: PageTokens):
        self.mirror = mirror
        self.pages = pages

    @allow(*READERS)
    async def GetPersonOverview(
        self, request: pb.GetPersonOverviewRequest, context: Context
    ) -> pb.GetPersonOverviewResponse:
        answer = await reads.person_overview(
            mirror=self.mirror,
            caller=current_caller(),
            grant_token=_grant(context),
            person=_person(request.person_number),
            sections=sections_of(request.sections),
            purpose=request.purpose,
        )
        return pb.GetPersonOverviewResponse(overview=overview_message(answer.overview, answer.sources))

    @allow(*READERS)
    async def ListInvoices(
        self, request: pb.ListInvoicesRequest, context: Context
    ) -> pb.ListInvoicesResponse:
        person = _person(request.person_number)
        caller = current_caller()
        page = self.pages.request(request, {"invoices": person}, owner=caller)
        items, token, source = await reads.list_invoices(
            mirror=self.mirror,
            caller=caller,
            grant_token=_grant(context),
            person=person,
            page=page,
            purpose=request.purpose,
        )
        return pb.ListInvoicesResponse(
            invoices=[invoice_message(i) for i in items],
            next_page_token=token,
            source=freshness_message(source) if source else None,
        )

    @allow(*READERS)
    async def FindInvoice(self, request: pb.FindInvoiceRequest, context: Context) -> pb.FindInvoiceResponse:
        which = request.WhichOneof("key")
        number = ocr = None
        if which == "invoice_number":
            number = request.invoice_number.strip()
            if not number or len(number) > 100:
                raise InvalidArgument.field("invoice_number", "must be 1 to 100 characters")
        elif which == "ocr":
            ocr = parse_ocr(request.ocr, field="ocr", control=OcrControl.HARD)
        else:
            raise InvalidArgument.field("invoice_number", "give the invoice number or the OCR reference")
        invoice, source = await reads.find_invoice(
            mirror=self.mirror,
            caller=current_caller(),
            grant_token=_grant(context),
            invoice_number=number,
            ocr=ocr,
            purpose=request.purpose,
        )
        return pb.FindInvoiceResponse(
            invoice=invoice_message(invoice), source=freshness_message(source) if source else None
        )

    @allow(*READERS)
    async def RefreshPerson(
        self, request: pb.RefreshPersonRequest, context: Context
    ) -> pb.RefreshPersonResponse:
        remaining = context.time_remaining()
        deadline = DEFAULT_REFRESH_SECONDS if remaining is None else min(remaining, MAX_REFRESH_SECONDS)
        answer = await reads.refresh_person(
            mirror=self.mirror,
            caller=current_caller(),
            grant_token=_grant(context),
            person=_person(request.person_number),
            purpose=request.purpose,
            deadline_seconds=deadline,
        )
        return pb.RefreshPersonResponse(overview=overview_message(answer.overview, answer.sources))

    @allow(Role.AGENT)
    async def GetRouting(self, request: pb.GetRoutingRequest, context: Context) -> pb.GetRoutingResponse:
        found, source = await reads.routing(
            mirror=self.mirror,
            caller=current_caller(),
            person=_person(request.person_number),
            purpose=request.purpose,
        )
        return pb.GetRoutingResponse(
            found=found.found,
            district=f"districts/{found.district_id}" if found.district_id else "",
            named_officer=f"officers/{found.officer_id}" if found.officer_id else "",
            team=found.team,
            postal_code=found.postal_code,
            source=freshness_message(source) if source else None,
        )

    @allow(*OPERATORS)
    async def ListSources(self, request: pb.ListSourcesRequest, context: Context) -> pb.ListSourcesResponse:
        statuses, fresh = await operations.list_sources(mirror=self.mirror)
        by_name = {f.source: f for f in fresh}
        return pb.ListSourcesResponse(sources=[source_message(s, by_name.get(s.row.name)) for s in statuses])

    @allow(*OPERATORS)
    async def ListQuarantinedRecords(
        self, request: pb.ListQuarantinedRecordsRequest, context: Context
    ) -> pb.ListQuarantinedRecordsResponse:
        source = _source(request.source, "source") if request.source else None
        page = self.pages.request(request, {"quarantine": source}, owner=current_caller())
        items, token = await operations.list_quarantine(mirror=self.mirror, source=source, page=page)
        return pb.ListQuarantinedRecordsResponse(
            records=[quarantined_message(r) for r in items], next_page_token=token
        )

    @allow(*OPERATORS)
    async def RetryQuarantinedRecord(
        self, request: pb.RetryQuarantinedRecordRequest, context: Context
    ) -> pb.RetryQuarantinedRecordResponse:
        source, record_id = resource_ids(request.name, ("sources", "quarantine"), "name")
        released, record = await operations.retry_quarantined(
            mirror=self.mirror, source=source, record_id=record_id
        )
        return pb.RetryQuarantinedRecordResponse(
            released=released, record=quarantined_message(record) if record else None
        )

    @allow(*OPERATORS)
    async def ReconcileSource(
        self, request: pb.ReconcileSourceRequest, context: Context
    ) -> pb.ReconcileSourceResponse:
        source = _source(request.source, "source")
        outcome = await operations.reconcile_source(mirror=self.mirror, source=source)
        return pb.ReconcileSourceResponse(
            listed=outcome.listed,
            removed=outcome.removed,
            added=outcome.added,
            held_sweep=f"sources/{source}/sweeps/{outcome.held_sweep}" if outcome.held_sweep else "",
        )

    @allow(*OPERATORS)
    async def ResolveHeldSweep(
        self, request: pb.ResolveHeldSweepRequest, context: Context
    ) -> pb.ResolveHeldSweepResponse:
        source, sweep = resource_ids(request.name, ("sources", "sweeps"), "name")
        if not sweep.isdigit() or len(sweep) > 18:
            raise InvalidArgument.field("name", "is not a held sweep's name")
        removed = await operations.resolve_held_sweep(
            mirror=self.mirror,
            caller=current_caller(),
            source=source,
            sweep_id=int(sweep),
            apply=request.apply,
        )
        return pb.ResolveHeldSweepResponse(removed=removed)

    @allow(Role.OPERATOR, Role.AUDITOR, Role.AGENT)
    async def ListAgreements(
        self, request: pb.ListAgreementsRequest, context: Context
    ) -> pb.ListAgreementsResponse:
        today = self.mirror.today()
        found = await operations.list_agreements(mirror=self.mirror)
        return pb.ListAgreementsResponse(
            agreements=[agreement_message(a, in_force=a.in_force(today)) for a in found]
        )
