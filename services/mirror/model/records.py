"""What the mirror holds of each source's records: a person as a district's Paraply records them, and an
invoice as Agresso does. Parsed strictly from what the source sent, so that a malformed record is refused
whole (and quarantined) rather than half-read; stored in the mirror's own canonical form, whose hash tells
whether a record changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from services.common.errors import InvalidArgument
from services.common.ocr import OcrControl, parse_ocr
from services.common.personnummer import parse_person_number

SERVICES = frozenset(
    {
        "hemtjanst",
        "sarskilt_boende",
        "dagverksamhet",
        "trygghetslarm",
        "ledsagning",
        "avlosning",
        "korttidsvard",
        "matdistribution",
    }
)
LAWS = frozenset({"SoL", "LSS"})
INCOME_KINDS = frozenset(
    {"pension", "bostadstillagg", "tjanstepension", "arbetsinkomst", "kapital", "ovrigt"}
)
HOUSEHOLDS = frozenset({"single", "cohabiting"})
INVOICE_STATUSES = frozenset({"paid", "partly_paid", "unpaid", "overdue"})
INVOICE_KINDS = frozenset({"care_fee", "other"})
MAX_TEXT = 500
MAX_ID = 100


class MalformedRecord(Exception):
    """A record the mirror cannot read. The reason names the field, never its value: records hold
    personal data, and reasons reach operators and logs."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---- reading what a source sent ---------------------------------------------------------------------------


class _Reader:
    """Typed access to one JSON object of a record, naming the path of whatever is wrong."""

    def __init__(self, data: object, path: str):
        if not isinstance(data, dict):
            raise MalformedRecord(f"{path or 'the record'} is not an object")
        self.data: dict[str, Any] = data
        self.path = path

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> object:
        if key not in self.data:
            raise MalformedRecord(f"{self._where(key)} is missing")
        return self.data[key]

    def text(self, key: str, *, optional: bool = False, limit: int = MAX_TEXT) -> str:
        value = self.data.get(key) if optional else self.raw(key)
        if value is None and optional:
            return ""
        if not isinstance(value, str):
            raise MalformedRecord(f"{self._where(key)} is not text")
        if len(value) > limit:
            raise MalformedRecord(f"{self._where(key)} is longer than {limit} characters")
        return value

    def choice(self, key: str, allowed: frozenset[str]) -> str:
        value = self.text(key)
        if value not in allowed:
            raise MalformedRecord(f"{self._where(key)} is not one of {', '.join(sorted(allowed))}")
        return value

    def integer(self, key: str, *, minimum: int = 0, maximum: int = 10**12) -> int:
        value = self.raw(key)
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            raise MalformedRecord(f"{self._where(key)} is not a whole number from {minimum} to {maximum}")
        return value

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise MalformedRecord(f"{self._where(key)} is not true or false")
        return value

    def day(self, key: str, *, optional: bool = False) -> date | None:
        value = self.data.get(key) if optional else self.raw(key)
        if value is None and optional:
            return None
        try:
            if not isinstance(value, str) or len(value) != 10:
                raise ValueError(value)
            found = date.fromisoformat(value)
        except ValueError:
            raise MalformedRecord(f"{self._where(key)} is not a date YYYY-MM-DD") from None
        if not 1900 <= found.year <= 2199:
            raise MalformedRecord(f"{self._where(key)} is not a date of the years 1900 to 2199")
        return found

    def moment(self, key: str) -> datetime:
        value = self.raw(key)
        return parse_source_time(value, self._where(key))

    def child(self, key: str, *, optional: bool = False) -> _Reader | None:
        value = self.data.get(key) if optional else self.raw(key)
        if value is None and optional:
            return None
        return _Reader(value, self._where(key))

    def children(self, key: str, *, optional: bool = False, limit: int = 200) -> list[_Reader]:
        value = self.data.get(key) if optional else self.raw(key)
        if value is None and optional:
            return []
        if not isinstance(value, list):
            raise MalformedRecord(f"{self._where(key)} is not a list")
        if len(value) > limit:
            raise MalformedRecord(f"{self._where(key)} has more than {limit} entries")
        return [_Reader(item, f"{self._where(key)}[{index}]") for index, item in enumerate(value)]

    def flat(self, key: str, *, optional: bool = True) -> dict[str, str]:
        """An open-ended object of simple values, as text: a decision's scope, a fact's details."""
        reader = self.child(key, optional=optional)
        if reader is None:
            return {}
        flat: dict[str, str] = {}
        for name, value in reader.data.items():
            if not isinstance(name, str) or len(name) > MAX_ID:
                raise MalformedRecord(f"{reader.path} has a key that is not a short text")
            if isinstance(value, bool | int | float | str) and len(str(value)) <= MAX_TEXT:
                flat[name] = str(value).lower() if isinstance(value, bool) else str(value)
            elif value is not None:
                raise MalformedRecord(f"{reader.path}.{name} is not a simple value")
        return flat


def parse_source_time(value: object, where: str) -> datetime:
    """A source's RFC 3339 time, in UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise MalformedRecord(f"{where} is not a time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedRecord(f"{where} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise MalformedRecord(f"{where} has no time zone")
    if not 1900 <= moment.year <= 2199:
        raise MalformedRecord(f"{where} is not a time of the years 1900 to 2199")
    return moment.astimezone(UTC)


def _person_number(reader: _Reader, key: str = "person_number") -> str:
    raw = reader.text(key, limit=20)
    try:
        return str(parse_person_number(raw, field=key))
    except InvalidArgument:
        raise MalformedRecord(f"{reader._where(key)} is not a valid person number") from None


# ---- a person as a district's Paraply records them --------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    decision_id: str
    service: str
    law: str
    scope: Mapping[str, str]
    valid_from: date
    valid_to: date | None
    current: bool
    provider_id: str


@dataclass(frozen=True)
class Provider:
    provider_id: str
    name: str
    kind: str
    phone: str
    email: str


@dataclass(frozen=True)
class Income:
    kind: str
    monthly_ore: int


@dataclass(frozen=True)
class Recipient:
    name: str
    street: str
    postal_code: str
    city: str


@dataclass(frozen=True)
class FeeBasis:
    incomes: tuple[Income, ...]
    housing_cost_ore: int
    household: str
    partner_incomes: tuple[Income, ...]
    decided_fee_ore: int
    decided_from: date | None
    invoice_recipient: Recipient | None


@dataclass(frozen=True)
class Officer:
    officer_id: str
    team: str
    since: date | None


@dataclass(frozen=True)
class PersonRecord:
    """One district's record of a person."""

    record_id: str
    updated_at: datetime
    person_number: str
    given_name: str
    family_name: str
    street: str
    postal_code: str
    city: str
    protected_identity: bool
    officer: Officer | None
    decisions: tuple[Decision, ...]
    providers: tuple[Provider, ...]
    fee_basis: FeeBasis | None
    other_facts: Mapping[str, Mapping[str, str]]

    @property
    def has_current_decision(self) -> bool:
        return any(d.current for d in self.decisions)


def _incomes(reader: _Reader, key: str) -> tuple[Income, ...]:
    return tuple(
        Income(
            kind=item.choice("kind", INCOME_KINDS), monthly_ore=item.integer("monthly_ore", maximum=10**10)
        )
        for item in reader.children(key, optional=True)
    )


def parse_person(data: object) -> PersonRecord:
    """A person record as a Paraply instance sent it; MalformedRecord when any part cannot be read."""
    record = _Reader(data, "")
    name = record.child("name")
    address = record.child("address")
    assert name is not None
    assert address is not None
    officer_data = record.child("responsible_officer", optional=True)
    officer = None
    if officer_data is not None:
        officer = Officer(
            officer_id=officer_data.text("officer_id", optional=True, limit=MAX_ID),
            team=officer_data.text("team", optional=True, limit=MAX_ID),
            since=officer_data.day("since", optional=True),
        )
    decisions = []
    for item in record.children("decisions"):
        valid_to = item.day("valid_to", optional=True)
        status = item.choice("status", frozenset({"current", "ended"}))
        decisions.append(
            Decision(
                decision_id=item.text("id", limit=MAX_ID),
                service=item.choice("insats", SERVICES),
                law=item.choice("law", LAWS),
                scope=item.flat("scope"),
                valid_from=item.day("valid_from") or date.min,
                valid_to=valid_to,
                current=status == "current",
                provider_id=item.text("provider_id", optional=True, limit=MAX_ID),
            )
        )
    providers = tuple(
        Provider(
            provider_id=item.text("id", limit=MAX_ID),
            name=item.text("name"),
            kind=item.text("kind", limit=MAX_ID),
            phone=item.text("phone", optional=True, limit=40),
            email=item.text("email", optional=True, limit=200),
        )
        for item in record.children("providers", optional=True)
    )
    fee_data = record.child("fee_basis", optional=True)
    fee_basis = None
    if fee_data is not None:
        recipient_data = fee_data.child("invoice_recipient", optional=True)
        fee_basis = FeeBasis(
            incomes=_incomes(fee_data, "incomes"),
            housing_cost_ore=fee_data.integer("housing_cost_ore", maximum=10**9),
            household=fee_data.choice("household", HOUSEHOLDS),
            partner_incomes=_incomes(fee_data, "partner_incomes"),
            decided_fee_ore=fee_data.integer("decided_fee_ore", maximum=10**9),
            decided_from=fee_data.day("decided_from", optional=True),
            invoice_recipient=None
            if recipient_data is None
            else Recipient(
                name=recipient_data.text("name"),
                street=recipient_data.text("street", optional=True),
                postal_code=recipient_data.text("postal_code", optional=True, limit=10),
                city=recipient_data.text("city", optional=True),
            ),
        )
    facts: dict[str, dict[str, str]] = {}
    extra = record.child("extra", optional=True)
    if extra is not None:
        for kind in extra.data:
            if not isinstance(kind, str) or len(kind) > MAX_ID:
                raise MalformedRecord("extra has a key that is not a short text")
            details = extra.flat(kind)
            if extra.data[kind] is not None:
                facts[kind] = details
    return PersonRecord(
        record_id=record.text("id", limit=MAX_ID),
        updated_at=record.moment("updated_at"),
        person_number=_person_number(record),
        given_name=name.text("given", limit=200),
        family_name=name.text("family", limit=200),
        street=address.text("street", optional=True),
        postal_code=address.text("postal_code", optional=True, limit=10).replace(" ", ""),
        city=address.text("city", optional=True, limit=200),
        protected_identity=record.boolean("protected_identity"),
        officer=officer,
        decisions=tuple(decisions),
        providers=providers,
        fee_basis=fee_basis,
        other_facts=facts,
    )


# ---- an invoice as Agresso records it ---------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceRecord:
    record_id: str
    updated_at: datetime
    customer_id: str
    person_number: str
    voucher_number: str
    invoice_number: str
    ocr: str
    care_fee: bool
    period: str
    amount_ore: int
    remaining_ore: int
    due_date: date
    status: str

    @property
    def paid(self) -> bool:
        return self.remaining_ore == 0


def parse_invoice(data: object) -> InvoiceRecord:
    record = _Reader(data, "")
    try:
        ocr = parse_ocr(record.text("ocr", limit=60), control=OcrControl.HARD)
    except InvalidArgument:
        raise MalformedRecord("ocr is not a valid OCR reference") from None
    amount = record.integer("amount_ore", minimum=-(10**10), maximum=10**10)
    remaining = record.integer("remaining_ore", minimum=-(10**10), maximum=10**10)
    period = record.text("period", limit=7)
    if len(period) != 7 or period[4] != "-" or not (period[:4] + period[5:]).isdigit():
        raise MalformedRecord("period is not a month YYYY-MM")
    due = record.day("due_date")
    assert due is not None
    return InvoiceRecord(
        record_id=record.text("id", limit=MAX_ID),
        updated_at=record.moment("updated_at"),
        customer_id=record.text("customer_id", limit=MAX_ID),
        person_number=_person_number(record),
        voucher_number=record.text("voucher_no", limit=MAX_ID),
        invoice_number=record.text("invoice_ref", limit=MAX_ID),
        ocr=ocr,
        care_fee=record.choice("kind", INVOICE_KINDS) == "care_fee",
        period=period,
        amount_ore=amount,
        remaining_ore=remaining,
        due_date=due,
        status=record.choice("status", INVOICE_STATUSES),
    )


# ---- the mirror's own form ---------------------------------------------------------------------------------


def canonical(record: PersonRecord | InvoiceRecord) -> str:
    """The record as the mirror stores it: compact JSON, fields in their declared order and the keys of
    mappings sorted, so the same facts give the same text (and content hash).

    orjson writes dataclasses, dates and times itself, many times faster than converting them for the
    standard library's encoder, which the first full sync of the city spent a fifth of its time on. A
    value orjson refuses (a string that is not valid Unicode) goes the standard library's way instead.
    """
    try:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(_plain(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def loads(data: bytes | str) -> Any:
    """JSON from a source or from the mirror's own tables: orjson's parser, several times faster than the
    standard library's; what it refuses but the standard library reads (NaN, a lone surrogate escape)
    is read by the latter, so that such a record is judged by the record checks and quarantined alone
    rather than failing its whole page."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Values that go into the JSON as they are: most of a record's, so they are let through first (the
# checks below, Mapping's above all, cost more than the rest of a record's encoding).
_AS_THEY_ARE = (str, int, float, type(None))


def _plain(value: object) -> object:
    if isinstance(value, _AS_THEY_ARE):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def person_from_stored(text: str) -> PersonRecord:
    """A stored person record back as the domain type (written by `canonical`, so trusted)."""
    d = loads(text)

    def day(value: str | None) -> date | None:
        return date.fromisoformat(value) if value else None

    def incomes(items: list[dict[str, Any]]) -> tuple[Income, ...]:
        return tuple(Income(i["kind"], i["monthly_ore"]) for i in items)

    fee = d["fee_basis"]
    officer = d["officer"]
    return PersonRecord(
        record_id=d["record_id"],
        updated_at=datetime.fromisoformat(d["updated_at"]),
        person_number=d["person_number"],
        given_name=d["given_name"],
        family_name=d["family_name"],
        street=d["street"],
        postal_code=d["postal_code"],
        city=d["city"],
        protected_identity=d["protected_identity"],
        officer=None
        if officer is None
        else Officer(officer["officer_id"], officer["team"], day(officer["since"])),
        decisions=tuple(
            Decision(
                decision_id=x["decision_id"],
                service=x["service"],
                law=x["law"],
                scope=x["scope"],
                valid_from=date.fromisoformat(x["valid_from"]),
                valid_to=day(x["valid_to"]),
                current=x["current"],
                provider_id=x["provider_id"],
            )
            for x in d["decisions"]
        ),
        providers=tuple(Provider(**x) for x in d["providers"]),
        fee_basis=None
        if fee is None
        else FeeBasis(
            incomes=incomes(fee["incomes"]),
            housing_cost_ore=fee["housing_cost_ore"],
            household=fee["household"],
            partner_incomes=incomes(fee["partner_incomes"]),
            decided_fee_ore=fee["decided_fee_ore"],
            decided_from=day(fee["decided_from"]),
            invoice_recipient=None
            if fee["invoice_recipient"] is None
            else Recipient(**fee["invoice_recipient"]),
        ),
        other_facts=d["other_facts"],
    )


def invoice_from_stored(text: str) -> InvoiceRecord:
    d = loads(text)
    return InvoiceRecord(
        **{
            **d,
            "updated_at": datetime.fromisoformat(d["updated_at"]),
            "due_date": date.fromisoformat(d["due_date"]),
        }
    )
