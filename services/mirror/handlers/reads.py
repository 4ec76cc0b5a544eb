"""Reading a person from the mirror: the overview, invoices, a refresh from every source, the routing of a
forward. Each read checks the grant (a citizen reading their own needs none), shows what the grant and each
district's agreement allow, says how fresh every source is, and is logged before the answer leaves."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from services.common.auth import Caller, Role
from services.common.errors import InvalidArgument, PermissionDenied
from services.common.grants import MAX_PURPOSE, AccessGrant, read_purpose
from services.common.pagination import PageRequest
from services.mirror.clients import AGRESSO, SourceFailure
from services.mirror.handlers.mirror import Mirror, log_read
from services.mirror.model.overview import (
    DistrictRecord,
    Freshness,
    Overview,
    Routing,
    Section,
    allowed_sections,
    assemble,
    routing_of,
)
from services.mirror.model.records import (
    InvoiceRecord,
    MalformedRecord,
    PersonRecord,
    invoice_from_stored,
    parse_invoice,
    parse_person,
    person_from_stored,
)
from services.mirror.store import SourceRow

log = logging.getLogger("aldredirekt.mirror")


@dataclass(frozen=True)
class Answer:
    overview: Overview
    sources: list[Freshness]


async def _grant(mirror: Mirror, caller: Caller, token: str | None, person: str) -> AccessGrant | None:
    return await mirror.grants.grant_for(token, caller=caller, person_number=person)


async def _stored(
    mirror: Mirror, person: str, *, with_invoices: bool
) -> tuple[list[DistrictRecord], list[InvoiceRecord]]:
    async with mirror.uow(write=False) as uow:
        stored, invoices = await uow.mirror.person(person, with_invoices=with_invoices)
    records = [DistrictRecord(s.district_id, s.source, person_from_stored(s.text)) for s in stored]
    return records, [invoice_from_stored(text) for text in invoices]


def _action(name: str, overview: Overview, wanted: frozenset[Section]) -> str:
    shown = [
        s.value
        for s in Section
        if s in wanted and not any(w.section is s and not w.field for w in overview.withheld)
    ]
    action = f"{name}: {', '.join(shown) or 'nothing'}"
    if overview.identity is not None and overview.identity.protected:
        action += "; identity withheld (protected)"
    return action


async def person_overview(
    *,
    mirror: Mirror,
    caller: Caller,
    grant_token: str | None,
    person: str,
    sections: frozenset[Section],
    purpose: str,
    refreshed: frozenset[str] = frozenset(),
    action: str = "GetPersonOverview",
) -> Answer:
    grant = await _grant(mirror, caller, grant_token, person)
    why = read_purpose(purpose, grant, caller)
    granted = allowed_sections(None if grant is None else grant.scopes)
    # Asked for nothing in particular, the agent is shown all the grant covers and told what it does not.
    wanted = sections or frozenset(Section)
    snapshot = await mirror.current()
    records, invoices = await _stored(mirror, person, with_invoices=Section.INVOICES in (wanted & granted))
    today = mirror.today()
    districts = {r.district_id for r in records}
    if districts and not any(
        (agreement := snapshot.agreements.get(d)) is not None and agreement.in_force(today) for d in districts
    ):
        # Outside every agreement: the district boards have not let the contact center process this.
        await log_read(mirror, caller, person, f"{action}: refused, no agreement in force", why, grant)
        raise PermissionDenied(
            "Äldre direkt has no agreement in force with the districts holding this person",
            reason="NO_VALID_AGREEMENT",
        )
    overview = assemble(
        person_number=person,
        records=records,
        invoices=invoices,
        wanted=wanted,
        granted=granted,
        agreements=snapshot.agreements,
        today=today,
    )
    await log_read(mirror, caller, person, _action(action, overview, wanted), why, grant)
    return Answer(overview, mirror.freshness(snapshot.sources, refreshed=refreshed))


async def list_invoices(
    *, mirror: Mirror, caller: Caller, grant_token: str | None, person: str, page: PageRequest, purpose: str
) -> tuple[list[InvoiceRecord], str, Freshness | None]:
    grant = await mirror.grants.require(grant_token, caller=caller, person_number=person, scope="invoices")
    why = read_purpose(purpose, grant, caller)
    snapshot = await mirror.current()
    _, invoices = await _stored(mirror, person, with_invoices=True)
    start = page.after_int() or 0
    if start < 0:
        raise InvalidArgument.field("page_token", "is not a page token this service issued for this query")
    items = invoices[start : start + page.size]
    await log_read(mirror, caller, person, "ListInvoices", why, grant)
    more = start + page.size < len(invoices)
    return items, page.next_token(start + page.size, more=more), _agresso(mirror, snapshot.sources)


def _agresso(mirror: Mirror, rows: list[SourceRow]) -> Freshness | None:
    found = [f for f in mirror.freshness(rows) if f.source == AGRESSO]
    return found[0] if found else None


async def find_invoice(
    *,
    mirror: Mirror,
    caller: Caller,
    grant_token: str | None,
    invoice_number: str | None,
    ocr: str | None,
    purpose: str,
) -> tuple[InvoiceRecord, Freshness | None]:
    """One invoice, for a caller whose grant (or own person, for a citizen) covers its person. An
    invoice of anyone else and no invoice at all get the same refusal, which names nobody."""
    if caller.has_role(Role.CITIZEN) and not caller.has_role(Role.AGENT):
        grant: AccessGrant | None = None
        covered = caller.person_number or ""
    else:
        grant = await mirror.grants.valid_grant(grant_token, caller=caller)
        if "invoices" not in grant.scopes:
            raise PermissionDenied("the access grant does not cover invoices", reason="GRANT_SCOPE_MISSING")
        covered = grant.person_number
    why = read_purpose(purpose, grant, caller)
    async with mirror.uow(write=False) as uow:
        text = await uow.mirror.invoice_by(invoice_number=invoice_number, ocr=ocr)
    invoice = invoice_from_stored(text) if text is not None else None
    if invoice is None or invoice.person_number != covered:
        raise PermissionDenied(
            "the access grant covers no invoice with this number or reference", reason="INVOICE_NOT_COVERED"
        )
    snapshot = await mirror.current()
    await log_read(mirror, caller, invoice.person_number, "FindInvoice", why, grant)
    return invoice, _agresso(mirror, snapshot.sources)


async def refresh_person(
    *,
    mirror: Mirror,
    caller: Caller,
    grant_token: str | None,
    person: str,
    purpose: str,
    deadline_seconds: float,
) -> Answer:
    """Reads the person from every source at once within `deadline_seconds`, stores what came back, and
    answers the overview: fresh where a source answered in time, stored and marked where not."""
    await _grant(mirror, caller, grant_token, person)  # refused before any source is asked
    # A quarter of the deadline and 50 ms are left for storing and assembling the answer: on a busy machine
    # that took up to 170 ms, more than the 15 % left before.
    budget = max(0.05, deadline_seconds * 0.75 - 0.05)

    async def read(name: str) -> list[PersonRecord | InvoiceRecord] | None:
        client = mirror.clients[name]
        try:
            raw = await asyncio.wait_for(client.of_person(person, wait=budget), timeout=budget)
        except (SourceFailure, TimeoutError):
            return None
        try:
            return [parse_invoice(i) if client.config.kind == AGRESSO else parse_person(i) for i in raw]
        except MalformedRecord:
            return None  # what the source holds could not be read: keep what is stored

    names = list(mirror.clients)
    answers = dict(zip(names, await asyncio.gather(*(read(name) for name in names)), strict=True))
    refreshed = {name for name, records in answers.items() if records is not None}
    if refreshed:
        now = mirror.clock()
        # One transaction for every source that answered: one commit, not one per source.
        async with mirror.uow() as uow:
            for name in sorted(refreshed):
                records = answers[name] or []
                config = mirror.clients[name].config
                if config.kind == AGRESSO:
                    await uow.mirror.store_invoices(
                        name, [r for r in records if isinstance(r, InvoiceRecord)], now
                    )
                else:
                    people = [r for r in records if isinstance(r, PersonRecord)]
                    await uow.mirror.store_people(name, config.district_id, people, now)
                await uow.mirror.remove_person_except(name, person, [r.record_id for r in records])
            await uow.commit()
    return await person_overview(
        mirror=mirror,
        caller=caller,
        grant_token=grant_token,
        person=person,
        sections=frozenset(),
        purpose=purpose,
        refreshed=frozenset(refreshed),
        action="RefreshPerson",
    )


async def routing(
    *, mirror: Mirror, caller: Caller, person: str, purpose: str
) -> tuple[Routing, Freshness | None]:
    """Where a forward goes, for an agent forwarding a case: no grant, and nothing but district, officer and
    postal code."""
    if not purpose.strip():
        raise InvalidArgument.field("purpose", "is required: say why, e.g. the case, for the access log")
    if len(purpose) > MAX_PURPOSE:
        raise InvalidArgument.field("purpose", f"must be at most {MAX_PURPOSE} characters")
    records, _ = await _stored(mirror, person, with_invoices=False)
    found = routing_of(records)
    snapshot = await mirror.current()
    await log_read(mirror, caller, person, "GetRouting: district, officer, postal code", purpose.strip())
    source = None
    if found.found:
        rows = [r for r in snapshot.sources if r.district_id == found.district_id]
        fresh = mirror.freshness(rows)
        source = fresh[0] if fresh else None
    return found, source
