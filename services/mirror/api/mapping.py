"""Protobuf ⇄ domain for the mirror."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from aldredirekt.common.v1 import common_pb2
from aldredirekt.mirror.v1 import mirror_pb2 as pb
from google.protobuf.duration_pb2 import Duration

from services.common.errors import InvalidArgument
from services.common.protoconv import date_message, timestamp
from services.mirror.handlers.operations import SourceStatus
from services.mirror.model.overview import Agreement, Freshness, Overview, Section
from services.mirror.model.records import FeeBasis, Income, InvoiceRecord
from services.mirror.store import Quarantined

SECTIONS: dict[pb.Section.ValueType, Section] = {
    pb.SECTION_IDENTITY: Section.IDENTITY,
    pb.SECTION_DECISIONS: Section.DECISIONS,
    pb.SECTION_FEE_BASIS: Section.FEE_BASIS,
    pb.SECTION_PROVIDERS: Section.PROVIDERS,
    pb.SECTION_OFFICER: Section.OFFICER,
    pb.SECTION_INVOICES: Section.INVOICES,
    pb.SECTION_OTHER_FACTS: Section.OTHER_FACTS,
}
SECTION_NUMBERS = {section: number for number, section in SECTIONS.items()}
STATES = {
    "ok": pb.SOURCE_STATE_OK,
    "degraded": pb.SOURCE_STATE_DEGRADED,
    "down": pb.SOURCE_STATE_DOWN,
    "credentials_refused": pb.SOURCE_STATE_CREDENTIALS_REFUSED,
    "never_synced": pb.SOURCE_STATE_NEVER_SYNCED,
}
INVOICE_STATUSES = {
    "paid": pb.INVOICE_STATUS_PAID,
    "partly_paid": pb.INVOICE_STATUS_PARTLY_PAID,
    "unpaid": pb.INVOICE_STATUS_UNPAID,
    "overdue": pb.INVOICE_STATUS_OVERDUE,
}


def sections_of(values: Iterable[pb.Section.ValueType]) -> frozenset[Section]:
    found = []
    for index, value in enumerate(values):
        section = SECTIONS.get(value)
        if section is None:
            raise InvalidArgument.field(f"sections[{index}]", "must be a section, not unspecified or unknown")
        found.append(section)
    return frozenset(found)


def money(ore: int) -> common_pb2.Money:
    return common_pb2.Money(ore=ore)


def district_name(district_id: str) -> str:
    return f"districts/{district_id}" if district_id else ""


def duration(seconds: float | None) -> Duration | None:
    if seconds is None:
        return None
    value = Duration()
    value.FromTimedelta(timedelta(seconds=seconds))
    return value


def freshness_message(fresh: Freshness) -> pb.SourceFreshness:
    return pb.SourceFreshness(
        source=fresh.source,
        district=district_name(fresh.district_id),
        as_of=timestamp(fresh.as_of),
        age=duration(fresh.age_seconds),
        stale=fresh.stale,
        state=STATES.get(fresh.state, pb.SOURCE_STATE_UNSPECIFIED),
        refreshed=fresh.refreshed,
    )


def _incomes(items: tuple[Income, ...]) -> list[pb.Income]:
    return [pb.Income(kind=i.kind, monthly=money(i.monthly_ore)) for i in items]


def _fee_basis(district_id: str, fee: FeeBasis) -> pb.FeeBasis:
    recipient = fee.invoice_recipient
    return pb.FeeBasis(
        district=district_name(district_id),
        incomes=_incomes(fee.incomes),
        housing_cost=money(fee.housing_cost_ore),
        household=fee.household,
        partner_incomes=_incomes(fee.partner_incomes),
        decided_fee=money(fee.decided_fee_ore),
        decided_from=date_message(fee.decided_from),
        invoice_recipient=None
        if recipient is None
        else pb.InvoiceRecipient(
            name=recipient.name,
            street_address=recipient.street,
            postal_code=recipient.postal_code,
            postal_town=recipient.city,
        ),
    )


def invoice_message(invoice: InvoiceRecord) -> pb.Invoice:
    return pb.Invoice(
        name=f"invoices/{invoice.invoice_number}",
        invoice_number=invoice.invoice_number,
        ocr=invoice.ocr,
        care_fee=invoice.care_fee,
        period=invoice.period,
        amount=money(invoice.amount_ore),
        remaining=money(invoice.remaining_ore),
        due_date=date_message(invoice.due_date),
        status=INVOICE_STATUSES[invoice.status],
        paid=invoice.paid,
        customer_id=invoice.customer_id,
        voucher_number=invoice.voucher_number,
        person_number=invoice.person_number,
    )


def overview_message(overview: Overview, sources: list[Freshness]) -> pb.PersonOverview:
    message = pb.PersonOverview(
        person_number=overview.person_number,
        found=overview.found,
        home_districts=[district_name(d) for d in overview.home_districts],
        decisions=[
            pb.Decision(
                district=district_name(d),
                decision_id=x.decision_id,
                service=x.service,
                law=x.law,
                scope=dict(x.scope),
                valid_from=date_message(x.valid_from),
                valid_to=date_message(x.valid_to),
                current=x.current,
                provider_id=x.provider_id,
            )
            for d, x in overview.decisions
        ],
        providers=[
            pb.Provider(
                district=district_name(d),
                provider_id=p.provider_id,
                display_name=p.name,
                kind=p.kind,
                phone=p.phone,
                email=p.email,
            )
            for d, p in overview.providers
        ],
        fee_bases=[_fee_basis(d, fee) for d, fee in overview.fee_bases],
        other_facts=[
            pb.OtherFact(district=district_name(d), kind=kind, details=dict(details))
            for d, kind, details in overview.other_facts
        ],
        invoices=[invoice_message(i) for i in overview.invoices],
        withheld=[
            pb.Withheld(
                section=SECTION_NUMBERS[w.section],
                district=district_name(w.district_id),
                reason=w.reason.value,
                description=w.description,
                field=w.field,
            )
            for w in overview.withheld
        ],
        sources=[freshness_message(f) for f in sources],
        summary=overview.summary,
    )
    if overview.identity is not None:
        i = overview.identity
        message.identity.CopyFrom(
            pb.Identity(
                given_name=i.given_name,
                family_name=i.family_name,
                street_address=i.street,
                postal_code=i.postal_code,
                postal_town=i.city,
                protected_identity=i.protected,
            )
        )
    if overview.officer is not None:
        district, officer = overview.officer
        message.responsible_officer.CopyFrom(
            pb.ResponsibleOfficer(
                officer=f"officers/{officer.officer_id}" if officer.officer_id else "",
                team=officer.team,
                district=district_name(district),
                since=date_message(officer.since),
            )
        )
    return message


def source_message(status: SourceStatus, fresh: Freshness | None) -> pb.Source:
    row = status.row
    return pb.Source(
        name=f"sources/{row.name}",
        district=district_name(row.district_id),
        state=STATES.get(fresh.state if fresh else row.state, pb.SOURCE_STATE_UNSPECIFIED),
        last_success_time=timestamp(row.last_success_time),
        synced_through=timestamp(row.synced_through),
        lag=duration(fresh.age_seconds if fresh else None),
        records=status.records,
        quarantined=status.quarantined,
        circuit=row.circuit,
        lease_holder=status.lease_holder,
        last_error=row.last_error,
        last_reconciliation_time=timestamp(row.last_reconciliation_time),
        held_sweeps=[f"sources/{row.name}/sweeps/{i}" for i in status.held_sweeps],
    )


def quarantined_message(record: Quarantined) -> pb.QuarantinedRecord:
    return pb.QuarantinedRecord(
        name=f"sources/{record.source}/quarantine/{record.record_id}",
        reason=record.reason,
        payload_hash=record.payload_hash,
        first_seen_time=timestamp(record.first_seen_time),
        last_seen_time=timestamp(record.last_seen_time),
        attempts=record.attempts,
    )


def agreement_message(agreement: Agreement, *, in_force: bool) -> pb.Agreement:
    return pb.Agreement(
        district=district_name(agreement.district_id),
        reference=agreement.reference,
        valid_from=date_message(agreement.valid_from),
        valid_to=date_message(agreement.valid_to),
        sections=sorted(SECTION_NUMBERS[s] for s in agreement.sections),
        in_force=in_force,
        withheld_fields=sorted(agreement.withheld_fields),
    )
