"""What the mirror may show of a person: the sections the caller's grant covers, as each district's agreement
allows, field by field, with what was left out and why.

Paraply has no access boundary of its own (an officer sees everything or nothing), so this is where the limit
is drawn. Each district board is the controller of its data and the contact center its processor, under a
written agreement that says what the contact center may show; a district without an agreement in force
shows nothing. A person with protected identity never has name or address shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from services.mirror.model.records import Decision, FeeBasis, InvoiceRecord, Officer, PersonRecord, Provider


class Section(StrEnum):
    IDENTITY = "identity"
    DECISIONS = "decisions"
    FEE_BASIS = "fee_basis"
    PROVIDERS = "providers"
    OFFICER = "officer"
    INVOICES = "invoices"
    OTHER_FACTS = "other_facts"


# The grant scope each section needs (the scopes of services.case GrantScope). Identity goes with any
# grant: the agent already knows whom they speak to, and the grant names the person.
SCOPE_OF: Mapping[Section, str | None] = {
    Section.IDENTITY: None,
    Section.DECISIONS: "decisions",
    Section.FEE_BASIS: "fees",
    Section.PROVIDERS: "providers",
    Section.OFFICER: "officer",
    Section.INVOICES: "invoices",
    Section.OTHER_FACTS: "decisions",
}
PERSON_SECTIONS = tuple(s for s in Section if s is not Section.INVOICES)

# Fields an agreement may leave out of a section it otherwise allows.
FIELDS: frozenset[str] = frozenset(
    {
        "identity.street_address",
        "identity.postal_code",
        "decisions.scope",
        "fee_basis.incomes",
        "fee_basis.partner_incomes",
        "fee_basis.housing_cost",
        "fee_basis.invoice_recipient",
        "providers.phone",
        "providers.email",
        "other_facts.dagverksamhet_queue",
        "other_facts.kbf",
        "other_facts.hemvardsbidrag",
    }
)


class WithheldReason(StrEnum):
    NOT_IN_AGREEMENT = "NOT_IN_AGREEMENT"
    FIELD_NOT_IN_AGREEMENT = "FIELD_NOT_IN_AGREEMENT"
    NO_VALID_AGREEMENT = "NO_VALID_AGREEMENT"
    SCOPE_NOT_GRANTED = "SCOPE_NOT_GRANTED"
    PROTECTED_IDENTITY = "PROTECTED_IDENTITY"


_DESCRIPTIONS = {
    WithheldReason.NOT_IN_AGREEMENT: "the district's agreement with Äldre direkt does not cover it",
    WithheldReason.FIELD_NOT_IN_AGREEMENT: "the district's agreement with Äldre direkt leaves this field out",
    WithheldReason.NO_VALID_AGREEMENT: "Äldre direkt has no agreement in force with the district",
    WithheldReason.SCOPE_NOT_GRANTED: "the person's consent does not cover it",
    WithheldReason.PROTECTED_IDENTITY: "the person has protected identity: name and address are never shown",
}


@dataclass(frozen=True)
class Agreement:
    district_id: str
    reference: str
    valid_from: date
    valid_to: date | None
    sections: frozenset[Section]
    withheld_fields: frozenset[str] = frozenset()

    def in_force(self, today: date) -> bool:
        return self.valid_from <= today and (self.valid_to is None or today <= self.valid_to)


@dataclass(frozen=True)
class Withheld:
    section: Section
    district_id: str
    reason: WithheldReason
    field: str = ""

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self.reason]


@dataclass(frozen=True)
class DistrictRecord:
    """A person's record in one district's Paraply."""

    district_id: str
    source: str
    record: PersonRecord


@dataclass(frozen=True)
class Identity:
    given_name: str = ""
    family_name: str = ""
    street: str = ""
    postal_code: str = ""
    city: str = ""
    protected: bool = False


@dataclass(frozen=True)
class Overview:
    person_number: str
    found: bool
    home_districts: tuple[str, ...]
    identity: Identity | None = None
    decisions: tuple[tuple[str, Decision], ...] = ()
    providers: tuple[tuple[str, Provider], ...] = ()
    fee_bases: tuple[tuple[str, FeeBasis], ...] = ()
    officer: tuple[str, Officer] | None = None
    other_facts: tuple[tuple[str, str, Mapping[str, str]], ...] = ()
    invoices: tuple[InvoiceRecord, ...] = ()
    withheld: tuple[Withheld, ...] = field(default=())

    @property
    def summary(self) -> str:
        if not self.found:
            return "Ingen uppgift i något stadsdelsområde: personen finns inte i Paraply eller Agresso."
        if self.home_districts:
            names = ", ".join(d.removeprefix("districts/") for d in self.home_districts)
            text = f"Personens uppgifter finns i Paraply hos: {names}."
            if self.withheld:
                text += " Det som inte visas här finns där."
            return text
        return "Personen finns bara i Agresso."


def home_districts(records: Sequence[DistrictRecord]) -> tuple[str, ...]:
    """The districts holding the person, those with a current decision first, most recently changed first."""
    ordered = sorted(
        records, key=lambda r: (not r.record.has_current_decision, -r.record.updated_at.timestamp())
    )
    return tuple(dict.fromkeys(r.district_id for r in ordered))


def allowed_sections(scopes: frozenset[str] | None) -> frozenset[Section]:
    """The sections a grant's scopes cover; None (a citizen reading their own) covers all."""
    if scopes is None:
        return frozenset(Section)
    return frozenset(s for s, needed in SCOPE_OF.items() if needed is None or needed in scopes)


def assemble(
    *,
    person_number: str,
    records: Sequence[DistrictRecord],
    invoices: Sequence[InvoiceRecord],
    wanted: frozenset[Section],
    granted: frozenset[Section],
    agreements: Mapping[str, Agreement],
    today: date,
) -> Overview:
    """What may be shown of the person, and what was withheld and why."""
    homes = home_districts(records)
    withheld: list[Withheld] = []
    for section in sorted(wanted - granted):
        withheld.append(Withheld(section, "", WithheldReason.SCOPE_NOT_GRANTED))
    shown = wanted & granted

    def permitted(section: Section, district_id: str) -> Agreement | None:
        """The agreement that lets the section of this district be shown, or None (withheld recorded)."""
        agreement = agreements.get(district_id)
        if agreement is None or not agreement.in_force(today):
            withheld.append(Withheld(section, district_id, WithheldReason.NO_VALID_AGREEMENT))
            return None
        if section not in agreement.sections:
            withheld.append(Withheld(section, district_id, WithheldReason.NOT_IN_AGREEMENT))
            return None
        return agreement

    def drops(agreement: Agreement, section: Section, district_id: str, name: str) -> bool:
        path = f"{section.value}.{name}"
        if path in agreement.withheld_fields:
            withheld.append(Withheld(section, district_id, WithheldReason.FIELD_NOT_IN_AGREEMENT, path))
            return True
        return False

    current = [r for r in records if r.record.has_current_decision] or list(records)
    latest = max(current, key=lambda r: r.record.updated_at) if current else None
    overview = Overview(person_number=person_number, found=bool(records or invoices), home_districts=homes)

    protected = any(r.record.protected_identity for r in records)
    if Section.IDENTITY in shown and latest is not None:
        if protected:
            withheld.append(Withheld(Section.IDENTITY, "", WithheldReason.PROTECTED_IDENTITY))
            overview = replace(overview, identity=Identity(protected=True))
        elif (agreement := permitted(Section.IDENTITY, latest.district_id)) is not None:
            record = latest.record
            street = (
                ""
                if drops(agreement, Section.IDENTITY, latest.district_id, "street_address")
                else record.street
            )
            postal = (
                ""
                if drops(agreement, Section.IDENTITY, latest.district_id, "postal_code")
                else record.postal_code
            )
            overview = replace(
                overview,
                identity=Identity(
                    record.given_name, record.family_name, street, postal, record.city if street else ""
                ),
            )

    decisions: list[tuple[str, Decision]] = []
    providers: list[tuple[str, Provider]] = []
    fee_bases: list[tuple[str, FeeBasis]] = []
    facts: list[tuple[str, str, Mapping[str, str]]] = []
    for district in records:
        d = district.district_id
        record = district.record
        if Section.DECISIONS in shown and record.decisions and (a := permitted(Section.DECISIONS, d)):
            no_scope = drops(a, Section.DECISIONS, d, "scope")
            decisions.extend(
                (d, replace(x, scope={}) if no_scope else x) for x in record.decisions if x.current
            )
        if Section.PROVIDERS in shown and record.providers and (a := permitted(Section.PROVIDERS, d)):
            no_phone = drops(a, Section.PROVIDERS, d, "phone")
            no_email = drops(a, Section.PROVIDERS, d, "email")
            in_use = {x.provider_id for x in record.decisions if x.current}
            providers.extend(
                (d, replace(p, phone="" if no_phone else p.phone, email="" if no_email else p.email))
                for p in record.providers
                if p.provider_id in in_use
            )
        if (
            Section.FEE_BASIS in shown
            and record.fee_basis is not None
            and (a := permitted(Section.FEE_BASIS, d))
        ):
            fee = record.fee_basis
            if drops(a, Section.FEE_BASIS, d, "incomes"):
                fee = replace(fee, incomes=())
            if drops(a, Section.FEE_BASIS, d, "partner_incomes"):
                fee = replace(fee, partner_incomes=())
            if drops(a, Section.FEE_BASIS, d, "housing_cost"):
                fee = replace(fee, housing_cost_ore=0)
            if drops(a, Section.FEE_BASIS, d, "invoice_recipient"):
                fee = replace(fee, invoice_recipient=None)
            fee_bases.append((d, fee))
        if Section.OTHER_FACTS in shown and record.other_facts and (a := permitted(Section.OTHER_FACTS, d)):
            for kind, details in sorted(record.other_facts.items()):
                if not drops(a, Section.OTHER_FACTS, d, kind):
                    facts.append((d, kind, details))
    officer = None
    if (
        Section.OFFICER in shown
        and latest is not None
        and latest.record.officer is not None
        and permitted(Section.OFFICER, latest.district_id) is not None
    ):
        officer = (latest.district_id, latest.record.officer)
    shown_invoices: tuple[InvoiceRecord, ...] = ()
    # Agresso is the city's: the district that holds the person now decides, if any does.
    if Section.INVOICES in shown and invoices and (not homes or permitted(Section.INVOICES, homes[0])):
        shown_invoices = tuple(sorted(invoices, key=lambda i: (i.due_date, i.invoice_number), reverse=True))
    return replace(
        overview,
        decisions=tuple(decisions),
        providers=tuple(providers),
        fee_bases=tuple(fee_bases),
        officer=officer,
        other_facts=tuple(facts),
        invoices=shown_invoices,
        withheld=tuple(dict.fromkeys(withheld)),
    )


@dataclass(frozen=True)
class Routing:
    """What forwarding needs of a person: their district, named officer and postal code, nothing more."""

    found: bool
    district_id: str = ""
    officer_id: str = ""
    team: str = ""
    postal_code: str = ""


def routing_of(records: Iterable[DistrictRecord]) -> Routing:
    current = [r for r in records if r.record.has_current_decision]
    if not current:
        return Routing(found=False)
    latest = max(current, key=lambda r: r.record.updated_at)
    officer = latest.record.officer
    return Routing(
        found=True,
        district_id=latest.district_id,
        officer_id=officer.officer_id if officer else "",
        team=officer.team if officer else "",
        postal_code="" if latest.record.protected_identity else latest.record.postal_code,
    )


@dataclass(frozen=True)
class Freshness:
    """How fresh one source's facts are, for an answer."""

    source: str
    district_id: str
    as_of: datetime | None
    age_seconds: float | None
    stale: bool
    state: str
    refreshed: bool = False
