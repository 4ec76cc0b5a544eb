"""What the city's systems hold about each care recipient: the record in their district's Paraply and
their invoices in Agresso.

A Paraply record carries what Äldre direkt may read [001, 003, 000]: the current (and some ended)
decisions with their insats, law, scope, validity and provider; the providers; the responsible officer
(the one `synthcity.people` assigns); the fee basis with incomes, housing supplement and housing cost,
the decided fee and sometimes another invoice recipient; and an open-ended `extra` with the queue for
day activities, KBF and hemvårdsbidrag for a few. About 1 % have protected identity. About 2 % moved
from another district: the old district's record keeps their ended decisions, the new one the current.

The fee follows ch. 32 of the Social Services Act (SFS 2025:400), which keeps the fractions of the old
ch. 8: the avgiftsunderlag (income after tax, housing supplement included; half the couple's income for
each of a couple) less the förbehållsbelopp (minimibelopp plus housing cost) is the room for a fee, the
fee is the tariff or that room if smaller, never below zero nor above the cap. The tariff is a made-up
one in the shape of Stockholm's (levels by hours of home help a month).

Agresso holds twelve monthly care-fee invoices (the twelve months before the city's month) for everyone
whose decided fee is above zero, invoices for delivered meals, and a few one-off ones; most are paid,
some partly paid, unpaid or overdue. OCR references have the length digit and the check digit.

Everything is drawn from one `random.Random`, in a fixed order, so a seed gives the same records. The
records' times end at `CareCity.as_of`, early on the city's day.
"""

from __future__ import annotations

import contextlib
import gc
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from services.common.ocr import generate_ocr
from synthcity.city import DISTRICTS, City, Role, generate_city
from synthcity.names import ORIGINS, ascii_slug
from synthcity.people import Person, generate_people

__all__ = [
    "FEE_YEARS",
    "MOVED_SHARE",
    "PROTECTED_SHARE",
    "CareCity",
    "CareRecord",
    "Decision",
    "DecisionStatus",
    "Drafter",
    "FeeBasis",
    "FeeYear",
    "Household",
    "Income",
    "IncomeKind",
    "Insats",
    "Invoice",
    "InvoiceKind",
    "InvoiceNumbering",
    "InvoiceRecipient",
    "InvoiceStatus",
    "Law",
    "Provider",
    "ResponsibleOfficer",
    "decided_fee",
    "from_microseconds",
    "generate_care",
    "generate_care_city",
    "invoice_status",
    "paused_collection",
    "tariff",
    "to_microseconds",
]

PROTECTED_SHARE = 0.01
MOVED_SHARE = 0.02
INVOICE_MONTHS = 12


class Insats(StrEnum):
    HEMTJANST = "hemtjanst"
    SARSKILT_BOENDE = "sarskilt_boende"
    DAGVERKSAMHET = "dagverksamhet"
    TRYGGHETSLARM = "trygghetslarm"
    LEDSAGNING = "ledsagning"
    AVLOSNING = "avlosning"
    KORTTIDSVARD = "korttidsvard"
    MATDISTRIBUTION = "matdistribution"


# The insatser whose decision makes the person a fee payer with a fee basis.
FEE_BEARING = frozenset({Insats.HEMTJANST, Insats.SARSKILT_BOENDE})


class Law(StrEnum):
    SOL = "SoL"
    LSS = "LSS"


class DecisionStatus(StrEnum):
    CURRENT = "current"
    ENDED = "ended"


class IncomeKind(StrEnum):
    PENSION = "pension"
    BOSTADSTILLAGG = "bostadstillagg"
    TJANSTEPENSION = "tjanstepension"
    ARBETSINKOMST = "arbetsinkomst"
    KAPITAL = "kapital"
    OVRIGT = "ovrigt"


class Household(StrEnum):
    SINGLE = "single"
    COHABITING = "cohabiting"


class InvoiceKind(StrEnum):
    CARE_FEE = "care_fee"
    OTHER = "other"


class InvoiceStatus(StrEnum):
    PAID = "paid"
    PARTLY_PAID = "partly_paid"
    UNPAID = "unpaid"
    OVERDUE = "overdue"


@dataclass(frozen=True, slots=True)
class Provider:
    provider_id: str
    name: str
    kind: Insats
    phone: str
    email: str


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    insats: Insats
    law: Law
    # hours_per_month for hemtjanst, days_per_week for dagverksamhet, nights for korttidsvard.
    scope: Mapping[str, int]
    valid_from: date
    valid_to: date | None
    status: DecisionStatus
    provider_id: str


@dataclass(frozen=True, slots=True)
class ResponsibleOfficer:
    # Empty when a team is responsible.
    officer_id: str
    # Set instead of the officer on the team-model unit.
    team: str
    since: date


@dataclass(frozen=True, slots=True)
class Income:
    kind: IncomeKind
    # A month's income after tax, as the fee is reckoned from.
    monthly_ore: int


@dataclass(frozen=True, slots=True)
class InvoiceRecipient:
    """Someone else who gets the invoices: a god man or a relative."""

    name: str
    street: str
    postal_code: str
    city: str


@dataclass(frozen=True, slots=True)
class FeeBasis:
    incomes: tuple[Income, ...]
    housing_cost_ore: int
    household: Household
    partner_incomes: tuple[Income, ...]
    decided_fee_ore: int
    decided_from: date
    invoice_recipient: InvoiceRecipient | None


@dataclass(frozen=True, slots=True)
class CareRecord:
    """One district's Paraply record of a person."""

    record_id: str
    updated_at: datetime
    district_id: str
    person_number: str
    given_name: str
    family_name: str
    street: str
    postal_code: str
    postal_town: str
    protected_identity: bool
    responsible_officer: ResponsibleOfficer
    decisions: tuple[Decision, ...]
    providers: tuple[Provider, ...]
    fee_basis: FeeBasis | None
    # Open-ended facts agreed per district; each value an object of simple values (dates as text), or None.
    extra: Mapping[str, Mapping[str, str | int] | None]

    @property
    def current_decisions(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.status is DecisionStatus.CURRENT)


# Not frozen, unlike the other records: a frozen dataclass costs six times as much to make, and the city has
# a quarter of a million invoices. Never change one in place; make a new one with dataclasses.replace.
@dataclass(slots=True)
class Invoice:
    """One of Agresso's invoice records."""

    record_id: str
    updated_at: datetime
    customer_id: str
    person_number: str
    voucher_no: str
    invoice_ref: str
    ocr: str
    kind: InvoiceKind
    # The month the invoice is for, YYYY-MM.
    period: str
    amount_ore: int
    remaining_ore: int
    due_date: date
    status: InvoiceStatus


# ---------------------------------------------------------------------------------------------------------
# Fees
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeeYear:
    """A year's figures for care fees: they change by law and by the price base amount, so they are data."""

    year: int
    prisbasbelopp_sek: int
    # Of the price base amount, a year's cap on fees for home care and day activities (32:6 p. 1).
    cap_share: float
    # Of the price base amount, a year's minimibelopp (32:7–8).
    minimum_single_share: float
    minimum_cohabiting_share: float
    source: str

    @property
    def cap_ore(self) -> int:
        # Published in whole kronor, rounded to nearest.
        return round(self.prisbasbelopp_sek * self.cap_share / 12) * 100

    def minimum_ore(self, household: Household) -> int:
        share = self.minimum_single_share if household is Household.SINGLE else self.minimum_cohabiting_share
        return round(self.prisbasbelopp_sek * share / 12 * 100)


_FEE_SOURCE = "SFS 2025:400 32 kap. 6–8 §§; prisbasbelopp by the government's yearly decision"
FEE_YEARS: Mapping[int, FeeYear] = {
    2025: FeeYear(2025, 58_800, 0.5392, 1.4789, 1.2066, _FEE_SOURCE),
    2026: FeeYear(2026, 59_200, 0.5392, 1.4789, 1.2066, _FEE_SOURCE),
}

# Made up, in the shape of Stockholm's tariff: a share of the cap by hours of home help a month.
_HOME_CARE_STEPS: tuple[tuple[int, float], ...] = (
    (3, 0.15),
    (7, 0.30),
    (12, 0.45),
    (18, 0.60),
    (25, 0.75),
    (35, 0.90),
)
_ALARM_SHARE = 0.13
_DAY_ACTIVITY_SHARE = 0.20


def _fee_year(year: int) -> FeeYear:
    # A year not yet in the table is reckoned with the latest figures known.
    return FEE_YEARS.get(year) or FEE_YEARS[max(FEE_YEARS)]


def tariff(decisions: Iterable[Decision], year: int) -> int:
    """The month's fee by the tariff for the current decisions, before the room for a fee is considered."""
    fee_year = _fee_year(year)
    cap = fee_year.cap_ore
    share = 0.0
    for decision in decisions:
        if decision.status is not DecisionStatus.CURRENT:
            continue
        if decision.insats is Insats.SARSKILT_BOENDE:
            share += 1.0
        elif decision.insats is Insats.HEMTJANST:
            hours = decision.scope.get("hours_per_month", 0)
            share += next((s for limit, s in _HOME_CARE_STEPS if hours <= limit), 1.0)
        elif decision.insats is Insats.TRYGGHETSLARM:
            share += _ALARM_SHARE
        elif decision.insats is Insats.DAGVERKSAMHET:
            share += _DAY_ACTIVITY_SHARE
    return min(cap, round(cap * share / 100) * 100)


def decided_fee(
    *,
    incomes: Iterable[Income],
    partner_incomes: Iterable[Income],
    household: Household,
    housing_cost_ore: int,
    tariff_ore: int,
    year: int,
) -> int:
    """The month's fee in öre, in whole kronor: the tariff, or the room for a fee when that is smaller."""
    fee_year = _fee_year(year)
    own = sum(income.monthly_ore for income in incomes)
    if household is Household.COHABITING:
        # Each of a couple is reckoned with half their combined income and half the housing cost.
        basis = (own + sum(income.monthly_ore for income in partner_incomes)) // 2
        reserved = fee_year.minimum_ore(household) + housing_cost_ore // 2
    else:
        basis = own
        reserved = fee_year.minimum_ore(household) + housing_cost_ore
    room = max(0, basis - reserved)
    return min(tariff_ore, fee_year.cap_ore, room // 100 * 100)


def invoice_status(*, amount_ore: int, remaining_ore: int, due_date: date, today: date) -> InvoiceStatus:
    if remaining_ore <= 0:
        return InvoiceStatus.PAID
    if remaining_ore < amount_ore:
        return InvoiceStatus.PARTLY_PAID
    return InvoiceStatus.OVERDUE if due_date < today else InvoiceStatus.UNPAID


# ---------------------------------------------------------------------------------------------------------
# The whole city's care
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceNumbering:
    """Where Agresso's numbers stand after the generated invoices, for whoever issues the next ones."""

    # The last invoice serial (t-0000123 is 123) and how many customers have a number.
    serial: int
    customers: int
    # The last voucher number of each month (YYYYMM) and the last invoice reference of each year.
    vouchers: Mapping[str, int]
    references: Mapping[int, int]


@dataclass(frozen=True)
class CareCity:
    city: City
    seed: int
    # The moment the records are as of: every updated_at is at or before it.
    as_of: datetime
    people: tuple[Person, ...]
    # Every Paraply record of every district; a person who moved has two.
    records: tuple[CareRecord, ...]
    invoices: tuple[Invoice, ...]
    providers: Mapping[str, tuple[Provider, ...]]
    # Person number → the district they moved from, for those who moved.
    moved_from: Mapping[str, str]
    numbering: InvoiceNumbering
    _by_district: dict[str, tuple[CareRecord, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        grouped: dict[str, list[CareRecord]] = {district.district_id: [] for district in DISTRICTS}
        for record in self.records:
            grouped[record.district_id].append(record)
        object.__setattr__(self, "_by_district", {k: tuple(v) for k, v in grouped.items()})

    def records_of(self, district_id: str) -> tuple[CareRecord, ...]:
        return self._by_district[district_id]


def generate_care_city(seed: int = 2026, people: int = 30_000, officers: int = 400) -> CareCity:
    """The city of `generate_city(seed, officers)`, its `people` care recipients and their care."""
    city = generate_city(seed, officers)
    return generate_care(city, generate_people(city, people, seed=seed), seed=seed)


@contextlib.contextmanager
def paused_collection() -> Iterator[None]:
    """The cyclic garbage collector paused, while hundreds of thousands of records are made.

    Records are trees without cycles, so the collector would only walk the growing heap again and again:
    a sixth of the time to generate the whole city, more than half of the time to load it into stores.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def generate_care(city: City, people: Iterable[Person], *, seed: int = 2026) -> CareCity:
    """Every person's Paraply record (two for those who moved) and Agresso invoices."""
    with paused_collection():
        return _generate_care(city, tuple(people), seed)


def _generate_care(city: City, everyone: tuple[Person, ...], seed: int) -> CareCity:
    rng = random.Random(f"care:{seed}")
    drafter = Drafter(city, rng, providers=_make_providers(rng, city))
    billing = _Billing(rng, drafter.today, drafter.as_of)
    records: list[CareRecord] = []
    moved_from: dict[str, str] = {}
    for person in everyone:
        protected = rng.random() < PROTECTED_SHARE
        if rng.random() < MOVED_SHARE:
            old_district = rng.choice(_other_districts(person.district_id))
            moved_on = drafter.today - timedelta(days=rng.randint(400, 1100))
            current = drafter.record(person, protected=protected, since=moved_on)
            old = drafter.record_before_move(person, old_district, moved_on, current, protected=protected)
            records += (current, old)
            moved_from[person.person_number] = old_district
        else:
            current = drafter.record(person, protected=protected)
            records.append(current)
        billing.bill(current)
    return CareCity(
        city=city,
        seed=seed,
        as_of=drafter.as_of,
        people=everyone,
        records=tuple(records),
        invoices=tuple(billing.invoices),
        providers=drafter.providers,
        moved_from=moved_from,
        numbering=billing.numbering(),
    )


def _other_districts(district_id: str) -> list[str]:
    return [district.district_id for district in DISTRICTS if district.district_id != district_id]


# ---------------------------------------------------------------------------------------------------------
# Providers
# ---------------------------------------------------------------------------------------------------------

# How many providers of each kind a district contracts, fewest and most.
_PROVIDER_COUNTS: tuple[tuple[Insats, int, int], ...] = (
    (Insats.HEMTJANST, 5, 9),
    (Insats.SARSKILT_BOENDE, 3, 6),
    (Insats.DAGVERKSAMHET, 1, 3),
    (Insats.TRYGGHETSLARM, 1, 1),
    (Insats.LEDSAGNING, 1, 2),
    (Insats.AVLOSNING, 1, 2),
    (Insats.KORTTIDSVARD, 1, 2),
    (Insats.MATDISTRIBUTION, 1, 1),
)
# Invented names: none is meant to be a real company.
_COMPANY_WORDS = (
    "Omsorgshuset",
    "Vårdkraft",
    "Hemma Trygg",
    "Lindens omsorg",
    "Solrosen",
    "Kompassen",
    "Trygga händer",
    "Nära vård",
    "Gläntan",
    "Ljusglimten",
    "Vardagsstöd",
    "Hjärtat",
    "Omtanken",
    "Vårdbryggan",
    "Stödet",
    "Kastanjen",
)
_KIND_WORDS: dict[Insats, str] = {
    Insats.HEMTJANST: "hemtjänst",
    Insats.SARSKILT_BOENDE: "vård- och omsorgsboende",
    Insats.DAGVERKSAMHET: "dagverksamhet",
    Insats.TRYGGHETSLARM: "trygghetslarm",
    Insats.LEDSAGNING: "ledsagning",
    Insats.AVLOSNING: "avlösning",
    Insats.KORTTIDSVARD: "korttidsboende",
    Insats.MATDISTRIBUTION: "matdistribution",
}


def _make_providers(rng: random.Random, city: City) -> dict[str, tuple[Provider, ...]]:
    providers: dict[str, tuple[Provider, ...]] = {}
    for district in DISTRICTS:
        made: list[Provider] = []
        hoods = [hood.name for hood in district.neighbourhoods]
        for kind, fewest, most in _PROVIDER_COUNTS:
            for index in range(rng.randint(fewest, most)):
                if kind is Insats.SARSKILT_BOENDE:
                    name = f"{rng.choice(hoods)}s {_KIND_WORDS[kind]}"
                elif index == 0:
                    # The district runs one of each kind itself; the rest are contracted.
                    name = f"Stockholms stad {_KIND_WORDS[kind]} {district.display_name}"
                else:
                    name = f"{rng.choice(_COMPANY_WORDS)} {_KIND_WORDS[kind]} AB"
                # The city's own providers answer in its 08-508 series; the numbers are drawn, not looked up.
                if name.startswith("Stockholms stad"):
                    phone = f"08-508 {rng.randint(10, 99)} {rng.randint(0, 999):03d}"
                else:
                    phone = f"08-{rng.randint(400, 799)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
                made.append(
                    Provider(
                        provider_id=f"prov-{district.district_id}-{len(made) + 1:02d}",
                        name=name,
                        kind=kind,
                        phone=phone,
                        # RFC 2606 keeps .example for examples: no message can reach a real mailbox.
                        email=f"kontakt@{ascii_slug(name)}.example",
                    )
                )
        providers[district.district_id] = tuple(made)
    return providers


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------

# Shares of people outside special housing with a current decision of each insats.
_ORDINARY_SHARES: tuple[tuple[Insats, float], ...] = (
    (Insats.HEMTJANST, 0.78),
    (Insats.TRYGGHETSLARM, 0.50),
    (Insats.MATDISTRIBUTION, 0.12),
    (Insats.DAGVERKSAMHET, 0.06),
    (Insats.LEDSAGNING, 0.05),
    (Insats.AVLOSNING, 0.04),
    (Insats.KORTTIDSVARD, 0.03),
)
# Insatser a person may have kept under LSS from before they turned 65.
_LSS_CAPABLE = frozenset({Insats.LEDSAGNING, Insats.AVLOSNING, Insats.KORTTIDSVARD})
_LSS_SHARE = 0.25
_STREETS = (
    "Storgatan",
    "Drottninggatan",
    "Kungsvägen",
    "Prästgårdsgatan",
    "Ringvägen",
    "Skogsvägen",
    "Strandvägen",
    "Malmvägen",
    "Hamngatan",
    "Bruksvägen",
    "Furuvägen",
    "Videvägen",
)
# Where a god man or a relative may live: Stockholm or a neighbouring municipality.
_RECIPIENT_TOWNS = (
    ("Stockholm", "11"),
    ("Solna", "169"),
    ("Nacka", "131"),
    ("Sundbyberg", "172"),
    ("Huddinge", "141"),
    ("Täby", "183"),
    ("Uppsala", "753"),
)
_US_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Office hours in UTC, roughly 08:00–16:30 in Stockholm.
_OFFICE_START_US = 7 * 3_600_000_000
_OFFICE_SPAN_US = int(8.5 * 3_600_000_000)
_HOUSING_COST_BY_DISTRICT = {
    "norra-innerstaden": 1.35,
    "kungsholmen": 1.3,
    "sodermalm": 1.25,
    "bromma": 1.15,
}


def _randint(rng: random.Random, first: int, last: int) -> int:
    """As rng.randint, at a fraction of its cost: the city draws a few million of these."""
    return first + int(rng.random() * (last - first + 1))


def to_microseconds(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def from_microseconds(microseconds: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=microseconds)


class Drafter:
    """Drafts records the way the districts' officers would have written them: used to generate the city's
    records, and by the upstream stand-ins to change them while they run."""

    def __init__(self, city: City, rng: random.Random, *, providers: Mapping[str, tuple[Provider, ...]]):
        self.city = city
        self.rng = rng
        self.today = city.today
        self.as_of = datetime.combine(city.today, time(5, 0), tzinfo=UTC)
        self.as_of_us = to_microseconds(self.as_of)
        self.providers = providers
        self._by_kind = {
            (district_id, kind): [p for p in listed if p.kind is kind]
            for district_id, listed in providers.items()
            for kind in Insats
        }
        self._provider_by_id = {p.provider_id: p for listed in providers.values() for p in listed}
        self._serials = dict.fromkeys((d.district_id for d in DISTRICTS), 0)
        self._areas = {unit.district_id: city.areas_of(unit.unit_id) for unit in city.units}

    # ---- ids and times ----

    def follow(self, district_id: str, record_ids: Iterable[str]) -> None:
        """Numbers the district's new records after these."""
        for record_id in record_ids:
            number = record_id.rsplit("-", 1)[-1]
            if number.isdigit():
                self._serials[district_id] = max(self._serials[district_id], int(number))

    def next_record_id(self, district_id: str) -> str:
        self._serials[district_id] += 1
        return f"p-{district_id}-{self._serials[district_id]:06d}"

    def provider(self, provider_id: str) -> Provider | None:
        return self._provider_by_id.get(provider_id)

    def providers_of(self, district_id: str, kind: Insats) -> list[Provider]:
        return self._by_kind[(district_id, kind)]

    def _moment_after(self, day: date) -> datetime:
        """A time in office hours on a day after `day`, leaning towards `day`, never after `as_of`."""
        rng = self.rng
        first = day.toordinal() - _EPOCH_ORDINAL
        last = self.today.toordinal() - _EPOCH_ORDINAL
        offset = int((last - first) * rng.random() ** 3) if last > first else 0
        microseconds = (first + offset) * _US_PER_DAY + _OFFICE_START_US + int(rng.random() * _OFFICE_SPAN_US)
        return from_microseconds(min(microseconds, self.as_of_us - int(rng.random() * 3_600_000_000)))

    def _day_between(self, first: date, last: date) -> date:
        if last <= first:
            return first
        return date.fromordinal(_randint(self.rng, first.toordinal(), last.toordinal()))

    # ---- decisions ----

    def decision(
        self,
        record_id: str,
        number: int,
        district_id: str,
        insats: Insats,
        *,
        valid_from: date,
        valid_to: date | None = None,
        ended: bool = False,
        law: Law | None = None,
        scope: Mapping[str, int] | None = None,
    ) -> Decision:
        rng = self.rng
        if law is None:
            law = Law.LSS if insats in _LSS_CAPABLE and rng.random() < _LSS_SHARE else Law.SOL
        return Decision(
            decision_id=f"d{record_id[1:]}-{number}",
            insats=insats,
            law=law,
            scope=self._scope(insats) if scope is None else scope,
            valid_from=valid_from,
            valid_to=valid_to,
            status=DecisionStatus.ENDED if ended else DecisionStatus.CURRENT,
            provider_id=rng.choice(self._by_kind[(district_id, insats)]).provider_id,
        )

    def _scope(self, insats: Insats) -> dict[str, int]:
        rng = self.rng
        if insats is Insats.HEMTJANST:
            # Most get a few hours a month, some daily visits, a few round-the-clock care at home.
            return {"hours_per_month": max(1, min(220, round(rng.lognormvariate(2.5, 0.9))))}
        if insats is Insats.DAGVERKSAMHET:
            return {"days_per_week": _randint(rng, 1, 5)}
        if insats is Insats.KORTTIDSVARD:
            return {"nights": rng.choice((7, 10, 14, 21, 28))}
        return {}

    def _current_decisions(self, record_id: str, person: Person, earliest: date) -> list[Decision]:
        rng = self.rng
        district_id = person.district_id
        today = self.today
        # A fee-bearing decision began before the invoiced year, so that every invoice has its decision.
        settled = today - timedelta(days=400)
        decisions: list[Decision] = []

        def grant(insats: Insats, first: date, last: date, valid_to: date | None = None) -> None:
            start = self._day_between(first, last)
            decisions.append(
                self.decision(
                    record_id, len(decisions) + 1, district_id, insats, valid_from=start, valid_to=valid_to
                )
            )

        if person.responsible_role is Role.SPECIAL_HOUSING:
            grant(Insats.SARSKILT_BOENDE, earliest, settled)
            if rng.random() < 0.1:
                grant(Insats.LEDSAGNING, earliest, today)
            return decisions
        for insats, share in _ORDINARY_SHARES:
            if rng.random() >= share:
                continue
            if insats is Insats.HEMTJANST:
                grant(insats, earliest, settled)
            elif insats is Insats.KORTTIDSVARD:
                grant(insats, today - timedelta(days=20), today, today + timedelta(days=_randint(rng, 3, 40)))
            elif insats in (Insats.LEDSAGNING, Insats.AVLOSNING) and rng.random() < 0.4:
                grant(
                    insats, today - timedelta(days=330), today, today + timedelta(days=_randint(rng, 20, 360))
                )
            else:
                grant(insats, earliest, today)
        if not decisions:
            grant(Insats.TRYGGHETSLARM, earliest, today)
        return decisions

    def _ended_decisions(
        self, record_id: str, district_id: str, current: Sequence[Decision], earliest: date
    ) -> list[Decision]:
        """Earlier decisions that ended when the current ones began: less home help, a short stay."""
        rng = self.rng
        ended: list[Decision] = []
        number = len(current)
        for decision in current:
            chance = 0.6 if decision.insats is Insats.SARSKILT_BOENDE else 0.2
            if decision.insats not in FEE_BEARING or rng.random() >= chance:
                continue
            end = decision.valid_from - timedelta(days=1)
            start = end - timedelta(days=_randint(rng, 60, 1500))
            if start < earliest:
                continue
            number += 1
            ended.append(
                self.decision(
                    record_id,
                    number,
                    district_id,
                    Insats.HEMTJANST,
                    valid_from=start,
                    valid_to=end,
                    ended=True,
                )
            )
        if rng.random() < 0.05:
            end = self.today - timedelta(days=_randint(rng, 30, 700))
            start = end - timedelta(days=_randint(rng, 7, 28))
            if start >= earliest:
                number += 1
                ended.append(
                    self.decision(
                        record_id,
                        number,
                        district_id,
                        Insats.KORTTIDSVARD,
                        valid_from=start,
                        valid_to=end,
                        ended=True,
                    )
                )
        return ended

    def current_providers(self, decisions: Iterable[Decision]) -> tuple[Provider, ...]:
        seen: dict[str, Provider] = {}
        for decision in decisions:
            if decision.status is DecisionStatus.CURRENT and decision.provider_id not in seen:
                provider = self._provider_by_id.get(decision.provider_id)
                if provider is not None:
                    seen[decision.provider_id] = provider
        return tuple(seen.values())

    # ---- fees ----

    def fee_basis(
        self, person_number: str, district_id: str, decisions: Sequence[Decision]
    ) -> FeeBasis | None:
        """A fee basis when a current decision bears a fee; None otherwise."""
        if not any(d.status is DecisionStatus.CURRENT and d.insats in FEE_BEARING for d in decisions):
            return None
        rng = self.rng
        special = any(
            d.insats is Insats.SARSKILT_BOENDE and d.status is DecisionStatus.CURRENT for d in decisions
        )
        # The birth number is odd for men; more of the men still live with a wife.
        male = int(person_number[10]) % 2 == 1
        cohabiting_share = 0.08 if special else (0.45 if male else 0.2)
        household = Household.COHABITING if rng.random() < cohabiting_share else Household.SINGLE
        if special:
            # The room's rent in a care home.
            housing = _randint(rng, 55, 85) * 10_000
        else:
            factor = _HOUSING_COST_BY_DISTRICT.get(district_id, 1.0)
            housing = round(rng.uniform(4_200, 10_500) * factor) * 100
        # Birth numbers 93–99 were given to those born abroad.
        incomes = self._incomes(housing, born_abroad=person_number[8:10] >= "93")
        partner = self._incomes(housing, born_abroad=False) if household is Household.COHABITING else ()
        # Fees are decided anew each January with the year's figures, or from a month after a change.
        year_start = date(self.today.year, 1, 1)
        decided_from = year_start
        if rng.random() < 0.15:
            decided_from = date(self.today.year, _randint(rng, 2, self.today.month), 1)
        fee = decided_fee(
            incomes=incomes,
            partner_incomes=partner,
            household=household,
            housing_cost_ore=housing,
            tariff_ore=tariff(decisions, decided_from.year),
            year=decided_from.year,
        )
        recipient = self._invoice_recipient() if rng.random() < 0.04 else None
        return FeeBasis(
            incomes=incomes,
            housing_cost_ore=housing,
            household=household,
            partner_incomes=partner,
            decided_fee_ore=fee,
            decided_from=decided_from,
            invoice_recipient=recipient,
        )

    def _incomes(self, housing_ore: int, *, born_abroad: bool) -> tuple[Income, ...]:
        """A month's incomes after tax: the public pension, often an occupational one, and for those with
        little the housing supplement."""
        rng = self.rng
        # Many who came late in life or worked part time live on the guarantee pension (about 10,000 net).
        if rng.random() < (0.45 if born_abroad else 0.22):
            pension = _randint(rng, 9_300, 11_200)
            occupational = _randint(rng, 0, 1_500) if rng.random() < 0.3 else 0
        else:
            pension = _randint(rng, 11_000, 19_000)
            occupational = round(rng.lognormvariate(8.3, 0.8)) if rng.random() < 0.75 else 0
        incomes = [Income(IncomeKind.PENSION, pension * 100)]
        if occupational:
            incomes.append(Income(IncomeKind.TJANSTEPENSION, min(occupational, 60_000) * 100))
        if pension + occupational < 16_500 and rng.random() < 0.7:
            # Bostadstillägg covers most of the housing cost, up to its ceiling.
            supplement = min(7_000, round(housing_ore / 100 * rng.uniform(0.4, 0.9)))
            incomes.append(Income(IncomeKind.BOSTADSTILLAGG, supplement * 100))
        if rng.random() < 0.25:
            incomes.append(Income(IncomeKind.KAPITAL, _randint(rng, 50, 4_000) * 100))
        if rng.random() < 0.03:
            incomes.append(Income(IncomeKind.ARBETSINKOMST, _randint(rng, 2_000, 15_000) * 100))
        if rng.random() < 0.02:
            incomes.append(Income(IncomeKind.OVRIGT, _randint(rng, 200, 2_500) * 100))
        return tuple(incomes)

    def _invoice_recipient(self) -> InvoiceRecipient:
        rng = self.rng
        origin = ORIGINS["sv"]
        female = rng.random() < 0.5
        given = rng.choice(origin.given_names(female=female, older=False))
        masculine, feminine = rng.choice(origin.family)
        town, prefix = rng.choice(_RECIPIENT_TOWNS)
        postal_code = prefix + "".join(str(_randint(rng, 0, 9)) for _ in range(5 - len(prefix)))
        # A god man is often an association's; the rest are relatives.
        name = f"{given} {feminine if female else masculine}"
        if rng.random() < 0.4:
            name = f"{name} (god man)"
        return InvoiceRecipient(
            name=name,
            street=f"{rng.choice(_STREETS)} {_randint(rng, 1, 80)}",
            postal_code=postal_code,
            city=town,
        )

    # ---- the rest ----

    def _extra(
        self, special: bool, decisions: Sequence[Decision]
    ) -> dict[str, Mapping[str, str | int] | None]:
        rng = self.rng
        today = self.today
        queue: dict[str, str | int] | None = None
        has_day_activity = any(d.insats is Insats.DAGVERKSAMHET for d in decisions)
        if not special and not has_day_activity and rng.random() < 0.03:
            queue = {
                "position": _randint(rng, 1, 30),
                "since": (today - timedelta(days=_randint(rng, 3, 200))).isoformat(),
            }
        kbf: dict[str, str | int] | None = None
        if rng.random() < 0.02:
            kbf = {
                "monthly_ore": _randint(rng, 5, 30) * 10_000,
                "since": date(today.year - _randint(rng, 0, 4), _randint(rng, 1, 12), 1).isoformat(),
            }
        allowance: dict[str, str | int] | None = None
        if not special and rng.random() < 0.01:
            allowance = {
                "monthly_ore": _randint(rng, 15, 45) * 10_000,
                "since": date(today.year - _randint(rng, 0, 3), _randint(rng, 1, 12), 1).isoformat(),
            }
        return {"dagverksamhet_queue": queue, "kbf": kbf, "hemvardsbidrag": allowance}

    def record(
        self, person: Person, *, protected: bool, since: date | None = None, record_id: str | None = None
    ) -> CareRecord:
        """The person's record in their own district; `since` is the day their decisions there may begin."""
        rng = self.rng
        district_id = person.district_id
        record_id = record_id or self.next_record_id(district_id)
        earliest = since or self.today - timedelta(days=_randint(rng, 420, 3000))
        current = self._current_decisions(record_id, person, earliest)
        decisions = current + self._ended_decisions(record_id, district_id, current, earliest)
        fee_basis = self.fee_basis(person.person_number, district_id, decisions)
        first_day = min(d.valid_from for d in decisions)
        officer_since = since or self._day_between(first_day, self.today - timedelta(days=1))
        extra = self._extra(person.responsible_role is Role.SPECIAL_HOUSING, decisions)
        latest = max(
            officer_since,
            max(d.valid_to if d.valid_to and d.valid_to < self.today else d.valid_from for d in decisions),
            fee_basis.decided_from if fee_basis else first_day,
        )
        return CareRecord(
            record_id=record_id,
            updated_at=self._moment_after(latest),
            district_id=district_id,
            person_number=person.person_number,
            given_name=person.given_name,
            family_name=person.family_name,
            street=person.street_address,
            postal_code=person.postal_code,
            postal_town=person.postal_town,
            protected_identity=protected,
            responsible_officer=ResponsibleOfficer(person.officer_id, person.team, officer_since),
            decisions=tuple(decisions),
            providers=self.current_providers(decisions),
            fee_basis=fee_basis,
            extra=extra,
        )

    def record_before_move(
        self, person: Person, old_district: str, moved_on: date, current: CareRecord, *, protected: bool
    ) -> CareRecord:
        """The old district's record of someone who moved: the same insatser, ended the day before."""
        rng = self.rng
        before = self.relocate(person, old_district)
        record_id = self.next_record_id(old_district)
        end = moved_on - timedelta(days=1)
        decisions = tuple(
            self.decision(
                record_id,
                number,
                old_district,
                decision.insats,
                valid_from=end - timedelta(days=_randint(rng, 60, 2000)),
                valid_to=end,
                ended=True,
                law=decision.law,
            )
            for number, decision in enumerate(current.current_decisions, start=1)
        )
        return CareRecord(
            record_id=record_id,
            updated_at=self._moment_after(moved_on),
            district_id=old_district,
            person_number=person.person_number,
            given_name=person.given_name,
            family_name=person.family_name,
            street=before.street_address,
            postal_code=before.postal_code,
            postal_town=before.postal_town,
            protected_identity=protected,
            responsible_officer=ResponsibleOfficer(
                before.officer_id, before.team, min(d.valid_from for d in decisions)
            ),
            decisions=decisions,
            providers=(),
            fee_basis=None,
            extra={"dagverksamhet_queue": None, "kbf": None, "hemvardsbidrag": None},
        )

    def relocate(self, person: Person, district_id: str) -> Person:
        """The person living at an address in another district, with that district's officer for them."""
        rng = self.rng
        area = rng.choice(self._areas[district_id])
        postal_range = rng.choice(area.postal_code_ranges)
        postal_code = f"{_randint(rng, int(postal_range.first), int(postal_range.last)):05d}"
        rule = self.city.rule_for(area.area_id, person.birth_date.day, person.responsible_role)
        return replace(
            person,
            street_address=f"{rng.choice(_STREETS)} {_randint(rng, 1, 90)}",
            postal_code=postal_code,
            postal_town=area.postal_town,
            district_id=district_id,
            unit_id=area.unit_id,
            area_id=area.area_id,
            rule_id=rule.rule_id,
            officer_id=rule.officer_id,
            team=rule.team,
        )

    def new_person(self, district_id: str, taken: set[str]) -> Person:
        """Someone not yet a care recipient, living in the district, with a person number not in `taken`."""
        while True:
            drawn = next(generate_people(self.city, 1, seed=self.rng.randrange(2**32), today=self.today))
            if drawn.person_number not in taken:
                break
        return drawn if drawn.district_id == district_id else self.relocate(drawn, district_id)


# ---------------------------------------------------------------------------------------------------------
# Invoices
# ---------------------------------------------------------------------------------------------------------

# How people pay, as cumulative shares: on time; now and then late; part of some invoices; often not at all.
_PAYERS: tuple[tuple[str, float], ...] = (
    ("prompt", 0.85),
    ("late", 0.93),
    ("partial", 0.97),
    ("defaulter", 1.0),
)
# The invoicing run commits this many invoices a transaction, all with the same time.
_BATCH = 250
_MEAL_PRICE_ORE = 7_200
# Bankgirot's payment files are read in the early morning and through the day.
_PAYMENT_SPAN_US = 20 * 3_600_000_000


@dataclass(frozen=True)
class _Period:
    text: str
    # The invoicing run's month, YYYYMM, which numbers the vouchers.
    month_key: str
    issue_year: int
    issue_ordinal: int
    issue_us: int
    due_date: date
    due_ordinal: int


def _month_end(year: int, month: int) -> date:
    return (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)


def _ordinal_us(ordinal: int) -> int:
    return (ordinal - _EPOCH_ORDINAL) * _US_PER_DAY


class _Billing:
    """Invoices for everyone billed, numbered as Agresso numbers them: serials, vouchers by month, invoice
    references by year.

    This makes most of the city's records, so days are ordinals and times microseconds here.
    """

    def __init__(self, rng: random.Random, today: date, as_of: datetime):
        self.rng = rng
        self.today = today
        self.today_ordinal = today.toordinal()
        self.as_of_us = to_microseconds(as_of)
        self.invoices: list[Invoice] = []
        self._customers: dict[str, str] = {}
        self._vouchers: dict[str, int] = {}
        self._references: dict[int, int] = {}
        self._batches: dict[str, int] = {}
        self.periods: list[_Period] = []
        year, month = today.year, today.month
        for back in range(INVOICE_MONTHS, 0, -1):
            y, m = divmod(year * 12 + month - 1 - back, 12)
            m += 1
            ny, nm = divmod(y * 12 + m, 12)
            issue_day = date(ny, nm + 1, 5)
            due = _month_end(ny, nm + 1)
            self.periods.append(
                _Period(
                    text=f"{y:04d}-{m:02d}",
                    month_key=f"{issue_day:%Y%m}",
                    issue_year=issue_day.year,
                    issue_ordinal=issue_day.toordinal(),
                    # The run starts at two in the morning, Stockholm time.
                    issue_us=to_microseconds(datetime.combine(issue_day, time(1, 0), tzinfo=UTC)),
                    due_date=due,
                    due_ordinal=due.toordinal(),
                )
            )

    def numbering(self) -> InvoiceNumbering:
        return InvoiceNumbering(
            serial=len(self.invoices),
            customers=len(self._customers),
            vouchers=dict(self._vouchers),
            references=dict(self._references),
        )

    def bill(self, record: CareRecord) -> None:
        rng = self.rng
        draw = rng.random()
        payer = next(name for name, share in _PAYERS if draw < share)
        fee = record.fee_basis.decided_fee_ore if record.fee_basis else 0
        if fee > 0:
            for period in self.periods:
                self._invoice(record.person_number, InvoiceKind.CARE_FEE, period, fee, payer)
        if any(d.insats is Insats.MATDISTRIBUTION for d in record.current_decisions):
            for period in self.periods[-3:]:
                meals = 18 + int(rng.random() * 14)
                self._invoice(record.person_number, InvoiceKind.OTHER, period, meals * _MEAL_PRICE_ORE, payer)
        if rng.random() < 0.03:
            period = rng.choice(self.periods)
            self._invoice(
                record.person_number, InvoiceKind.OTHER, period, _randint(rng, 3, 15) * 10_000, payer
            )

    def _invoice(
        self, person_number: str, kind: InvoiceKind, period: _Period, amount: int, payer: str
    ) -> None:
        random_ = self.rng.random
        customer = self._customers.get(person_number)
        if customer is None:
            customer = self._customers[person_number] = str(100_000 + len(self._customers))
        serial = len(self.invoices) + 1
        month_key = period.month_key
        voucher = self._vouchers[month_key] = self._vouchers.get(month_key, 0) + 1
        year = period.issue_year
        reference = self._references[year] = self._references.get(year, 0) + 1
        batch = self._batches[period.text] = self._batches.get(period.text, 0) + 1

        remaining = amount
        updated_us = period.issue_us + (batch // _BATCH) * 1_300_000
        today = self.today_ordinal
        if period.due_ordinal < today:
            paid: int | None = period.due_ordinal - int(random_() * 13)
            draw = random_()
            if (payer == "late" and draw < 0.75) or (payer == "defaulter" and draw < 0.4):
                paid = period.due_ordinal + 3 + int(random_() * 38)
            elif payer == "defaulter":
                paid = None
            elif payer == "partial" and draw < 0.4:
                remaining = amount * (20 + int(random_() * 61)) // 10_000 * 100
            if paid is not None and paid >= today:
                paid = None
            if paid is None:
                remaining = amount
            else:
                remaining = 0 if remaining == amount else remaining
                updated_us = _ordinal_us(paid) + int(random_() * _PAYMENT_SPAN_US)
        elif random_() < 0.35:
            # Paid ahead of the due date, by autogiro or at once.
            first = min(period.issue_ordinal + 1, today - 1)
            remaining = 0
            updated_us = _ordinal_us(first + int(random_() * (today - first))) + int(
                random_() * _PAYMENT_SPAN_US
            )
        if remaining == 0:
            status = InvoiceStatus.PAID
        elif remaining < amount:
            status = InvoiceStatus.PARTLY_PAID
        else:
            status = InvoiceStatus.OVERDUE if period.due_ordinal < today else InvoiceStatus.UNPAID
        self.invoices.append(
            Invoice(
                record_id=f"t-{serial:07d}",
                updated_at=from_microseconds(min(updated_us, self.as_of_us)),
                customer_id=customer,
                person_number=person_number,
                voucher_no=f"{month_key}{voucher:05d}",
                invoice_ref=f"F{year}-{reference:06d}",
                # The customer and the invoice's serial: unique, and a payment names whose it is.
                ocr=generate_ocr(f"{customer}{serial:07d}"),
                kind=kind,
                period=period.text,
                amount_ore=amount,
                remaining_ore=remaining,
                due_date=period.due_date,
                status=status,
            )
        )
