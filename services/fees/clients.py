"""The fees service's adapters to other services, over gRPC, behind Protocols.

- The mirror, for a person's fee basis and decisions and for one invoice: with the caller's own token and
  access grant passed on, so that the mirror authorises and logs the agent (or citizen), not this service.
- The case service, for a month's billable contacts: with this service's own token (role `service`), since
  a billing run reads no one's personal data.

Their refusals become our domain errors in one place (services.common.remote); a service that does not
answer is UNAVAILABLE to our caller.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date
from typing import Protocol

import grpc
from aldredirekt.case.v1 import case_pb2, case_pb2_grpc
from aldredirekt.mirror.v1 import mirror_pb2, mirror_pb2_grpc
from google.type import date_pb2

from services.common.auth import Caller
from services.common.errors import FailedPrecondition
from services.common.grants import GRANT_METADATA_KEY
from services.common.remote import domain_error
from services.common.service_tokens import ServiceTokens
from services.fees.model.basis import (
    DecisionFact,
    FeeBasisFact,
    IncomeFact,
    PersonFees,
    SourceFact,
    WithheldFact,
)
from services.fees.model.deferral import InvoiceFacts
from services.fees.model.issuing import BillableRow

_SECTION_NAMES = {
    mirror_pb2.SECTION_IDENTITY: "identity",
    mirror_pb2.SECTION_DECISIONS: "decisions",
    mirror_pb2.SECTION_FEE_BASIS: "fee_basis",
    mirror_pb2.SECTION_PROVIDERS: "providers",
    mirror_pb2.SECTION_OFFICER: "officer",
    mirror_pb2.SECTION_INVOICES: "invoices",
    mirror_pb2.SECTION_OTHER_FACTS: "other_facts",
}


class Mirror(Protocol):
    async def person_fees(
        self, caller: Caller, *, grant_token: str | None, person_number: str, purpose: str
    ) -> PersonFees:
        """The person's fee bases and current decisions, as far as the grant and the agreements allow."""
        ...

    async def invoice(
        self, caller: Caller, *, grant_token: str | None, invoice_number: str, purpose: str
    ) -> InvoiceFacts:
        """One invoice, when the grant covers its person; PERMISSION_DENIED otherwise, whether it exists or
        not."""
        ...


class CaseCounts(Protocol):
    async def billable_contacts(self, month: date) -> list[BillableRow]: ...


def _district(name: str) -> str:
    return name.removeprefix("districts/")


def _day(message: date_pb2.Date) -> date | None:
    if not message.year:
        return None
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        return None


def _incomes(items: object) -> tuple[IncomeFact, ...]:
    return tuple(IncomeFact(kind=i.kind, monthly_ore=int(i.monthly.ore)) for i in items)  # type: ignore[attr-defined]


def person_fees_of(overview: mirror_pb2.PersonOverview) -> PersonFees:
    """The mirror's overview, as the fee calculation reads it."""
    return PersonFees(
        found=overview.found,
        home_districts=tuple(_district(d) for d in overview.home_districts),
        fee_bases=tuple(
            FeeBasisFact(
                district_id=_district(b.district),
                incomes=_incomes(b.incomes),
                housing_cost_ore=int(b.housing_cost.ore),
                household=b.household,
                partner_incomes=_incomes(b.partner_incomes),
                decided_fee_ore=int(b.decided_fee.ore),
                decided_from=_day(b.decided_from),
            )
            for b in overview.fee_bases
        ),
        decisions=tuple(
            DecisionFact(
                district_id=_district(d.district),
                decision_id=d.decision_id,
                service=d.service,
                law=d.law,
                scope=dict(d.scope),
                valid_from=_day(d.valid_from) if d.HasField("valid_from") else None,
                valid_to=_day(d.valid_to) if d.HasField("valid_to") else None,
            )
            for d in overview.decisions
            if d.current
        ),
        withheld=tuple(
            WithheldFact(
                section=_SECTION_NAMES.get(w.section, ""),
                district_id=_district(w.district),
                reason=w.reason,
                field=w.field,
            )
            for w in overview.withheld
        ),
        sources=tuple(
            SourceFact(
                source=s.source,
                district_id=_district(s.district),
                as_of=s.as_of.ToDatetime(tzinfo=UTC) if s.HasField("as_of") else None,
                stale=s.stale,
            )
            for s in overview.sources
        ),
    )


def _caller_metadata(caller: Caller, grant_token: str | None) -> tuple[tuple[str, str], ...]:
    metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {caller.token}"),)
    if grant_token:
        metadata += ((GRANT_METADATA_KEY, grant_token),)
    return metadata


@dataclass
class GrpcMirror:
    channel: grpc.aio.Channel
    timeout: float = 3.0

    @functools.cached_property
    def stub(self) -> mirror_pb2_grpc.MirrorServiceAsyncStub:
        # Made once: a stub builds a callable for each of the mirror's methods, and made anew for every
        # call that was a fifth of the time this service spent calling the mirror.
        return mirror_pb2_grpc.MirrorServiceStub(self.channel)  # type: ignore[no-untyped-call]

    async def person_fees(
        self, caller: Caller, *, grant_token: str | None, person_number: str, purpose: str
    ) -> PersonFees:
        try:
            answer = await self.stub.GetPersonOverview(
                mirror_pb2.GetPersonOverviewRequest(
                    person_number=person_number,
                    sections=[mirror_pb2.SECTION_FEE_BASIS, mirror_pb2.SECTION_DECISIONS],
                    purpose=purpose,
                ),
                metadata=_caller_metadata(caller, grant_token),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise domain_error(error, service="mirror", field_of={"purpose": "purpose"}) from None
        return person_fees_of(answer.overview)

    async def invoice(
        self, caller: Caller, *, grant_token: str | None, invoice_number: str, purpose: str
    ) -> InvoiceFacts:
        try:
            answer = await self.stub.FindInvoice(
                mirror_pb2.FindInvoiceRequest(invoice_number=invoice_number, purpose=purpose),
                metadata=_caller_metadata(caller, grant_token),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise domain_error(
                error, service="mirror", field_of={"invoice_number": "deferral.invoice"}
            ) from None
        invoice = answer.invoice
        due = _day(invoice.due_date)
        if due is None:
            raise FailedPrecondition(
                f"{invoice.name} has no due date in the mirror", reason="INVOICE_UNREADABLE"
            )
        return InvoiceFacts(
            invoice_number=invoice.invoice_number,
            person_number=invoice.person_number,
            care_fee=invoice.care_fee,
            amount_ore=int(invoice.amount.ore),
            remaining_ore=int(invoice.remaining.ore),
            due_date=due,
        )


@dataclass
class GrpcCaseCounts:
    """CountBillableContacts with this service's own token; a token the case service refuses is dropped
    and the call made once more with a fresh one."""

    channel: grpc.aio.Channel
    tokens: ServiceTokens
    timeout: float = 10.0

    async def billable_contacts(self, month: date) -> list[BillableRow]:
        stub = case_pb2_grpc.CaseServiceStub(self.channel)  # type: ignore[no-untyped-call]
        request = case_pb2.CountBillableContactsRequest(month=f"{month:%Y-%m}")
        for attempt in range(2):
            token = await self.tokens.token()
            try:
                answer = await stub.CountBillableContacts(
                    request, metadata=(("authorization", f"Bearer {token}"),), timeout=self.timeout
                )
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNAUTHENTICATED and attempt == 0:
                    self.tokens.forget(token)
                    continue
                raise domain_error(error, service="case") from None
            return [
                BillableRow(
                    district_id=_district(row.district),
                    unit_id=row.unit.removeprefix("units/"),
                    contacts=int(row.contacts),
                )
                for row in answer.counts
            ]
        raise AssertionError("unreachable: the second attempt returns or raises")
