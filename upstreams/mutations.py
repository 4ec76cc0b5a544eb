"""Changes to the stand-ins' records as the city's staff and systems make them while the mirror reads:
decisions ended and granted, providers and officers changed, people added, deleted and moving between
districts, invoices paid and issued; and the awkward ones a mirror must survive: late commits, malformed
versions, and several records committed with the very same time.

The control API and the background mutator both come through `mutate`. Every operation takes optional
parameters (which record, which value) and draws what is not given, so a test can be as precise as it
needs to be.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

from services.common.ocr import generate_ocr
from services.common.personnummer import PersonNumber
from synthcity.care import (
    FEE_BEARING,
    CareRecord,
    Decision,
    DecisionStatus,
    FeeBasis,
    Insats,
    Invoice,
    InvoiceKind,
    Law,
    ResponsibleOfficer,
    decided_fee,
    invoice_status,
    tariff,
)
from synthcity.city import DISTRICTS, Role
from synthcity.people import Person, Sex
from upstreams.store import Entry, Versioned
from upstreams.wire import format_time
from upstreams.world import AgressoInstance, Instance, ParaplyInstance, World

__all__ = ["AGRESSO_OPERATIONS", "PARAPLY_OPERATIONS", "Changed", "MutationError", "mutate"]

R = TypeVar("R", bound=Versioned)
Params = Mapping[str, Any]


class MutationError(Exception):
    """A mutation that cannot be made as asked; `status` is the HTTP status the control API answers."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


@dataclass(frozen=True)
class Changed:
    instance: str
    record_id: str
    person_number: str
    updated_us: int
    # When a late commit becomes visible; None when it is visible at once.
    visible_us: int | None = None
    deleted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "id": self.record_id,
            "person_number": self.person_number,
            "updated_at": format_time(self.updated_us),
            "visible_at": None if self.visible_us is None else format_time(self.visible_us),
            "deleted": self.deleted,
        }


# ---------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------


def mutate(world: World, instance_name: str, op: str, params: Params) -> dict[str, Any]:
    """Makes the change `op` on an instance; what changed, as the control API answers it."""
    instance = world.instance(instance_name)
    if instance is None:
        raise MutationError(404, "not_found", f"there is no instance {instance_name!r}")
    operations: Mapping[str, Any] = PARAPLY_OPERATIONS if instance.kind == "paraply" else AGRESSO_OPERATIONS
    late = 0.0
    if op == "late_commit":
        op = _text(params, "change") or ("change_officer" if instance.kind == "paraply" else "pay_invoice")
        late = _number(params, "seconds", instance.knobs.late_commit_seconds, 0.001, 3600)
        if op in ("late_commit", "tie"):
            raise MutationError(400, "invalid_argument", f"{op} cannot itself be committed late")
    operation = operations.get(op)
    if operation is None:
        known = ", ".join(sorted([*operations, "late_commit"]))
        raise MutationError(
            400, "invalid_argument", f"{instance.kind} has no mutation {op!r}; it has {known}"
        )
    # Changes are drafted on the stand-ins' day, which runs on from the city's.
    world.drafter.today = world.today()
    changes: list[Changed] = operation(world, instance, params, late)
    return {"op": op, "instance": instance.name, "late": late > 0, "changes": [c.as_json() for c in changes]}


# ---------------------------------------------------------------------------------------------------------
# Parameters and picking
# ---------------------------------------------------------------------------------------------------------


def _text(params: Params, key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 200:
        raise MutationError(400, "invalid_argument", f"{key} must be a short text")
    return value


def _number(params: Params, key: str, default: float, lowest: float, highest: float) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lowest <= value <= highest:
        raise MutationError(400, "invalid_argument", f"{key} must be a number from {lowest:g} to {highest:g}")
    return float(value)


def _whole(params: Params, key: str, default: int | None, lowest: int, highest: int) -> int | None:
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise MutationError(
            400, "invalid_argument", f"{key} must be a whole number from {lowest} to {highest}"
        )
    return value


def _choice(params: Params, key: str, allowed: type[Insats] | type[Law] | type[InvoiceKind]) -> Any:
    value = _text(params, key)
    if value is None:
        return None
    try:
        return allowed(value)
    except ValueError:
        names = ", ".join(member.value for member in allowed)
        raise MutationError(400, "invalid_argument", f"{key} must be one of {names}") from None


# How many random draws before looking through every record for one that fits.
_DRAWS = 200


def _pick(
    world: World, instance: Instance[R], params: Params, fits: Callable[[R], bool] | None, wanted: str
) -> Entry[R]:
    """The record `params["id"]` names, or one drawn at random that fits; never one waiting to commit."""
    store = instance.store
    record_id = _text(params, "id")
    if record_id is not None:
        entry = store.get(record_id)
        if entry is None:
            raise MutationError(404, "not_found", f"{instance.name} has no record {record_id!r}")
        if store.is_pending(record_id):
            raise MutationError(409, "pending", f"{record_id} has a change waiting to commit")
        if fits is not None and not fits(entry.record):
            raise MutationError(409, "does_not_fit", f"{record_id} is not {wanted}")
        return entry
    for _ in range(_DRAWS):
        drawn = store.sample(world.rng)
        if drawn is None:
            break
        if not store.is_pending(drawn.record.record_id) and (fits is None or fits(drawn.record)):
            return drawn
    for entry in store.entries():
        if not store.is_pending(entry.record.record_id) and (fits is None or fits(entry.record)):
            return entry
    raise MutationError(409, "nothing_fits", f"{instance.name} has no record that is {wanted}")


def _put(
    instance: Instance[R], record: R, late: float, *, at_us: int | None = None, malformed: str = ""
) -> Changed:
    entry = instance.store.put(record, at_us=at_us, visible_in_s=late, malformed=malformed)
    return Changed(
        instance.name, record.record_id, _person_number(record), entry.updated_us, visible_us=entry.visible_us
    )


def _person_number(record: object) -> str:
    number = getattr(record, "person_number", "")
    return number if isinstance(number, str) else ""


def _paraply(instance: Instance[Any]) -> ParaplyInstance:
    if instance.kind != "paraply":
        raise MutationError(400, "invalid_argument", f"{instance.name} holds no person records")
    paraply: ParaplyInstance = instance
    return paraply


def _has_current(record: CareRecord) -> bool:
    return any(d.status is DecisionStatus.CURRENT for d in record.decisions)


# ---------------------------------------------------------------------------------------------------------
# Paraply
# ---------------------------------------------------------------------------------------------------------


def _with_decisions(world: World, record: CareRecord, decisions: tuple[Decision, ...]) -> CareRecord:
    """The record with new decisions, and what follows from them: the providers, and the fee basis (none
    without a fee-bearing decision, a fee decided anew from next month when the tariff changes)."""
    drafter = world.drafter
    fee_basis = record.fee_basis
    bears_fee = any(d.status is DecisionStatus.CURRENT and d.insats in FEE_BEARING for d in decisions)
    if not bears_fee:
        fee_basis = None
    elif fee_basis is None:
        fee_basis = drafter.fee_basis(record.person_number, record.district_id, decisions)
    else:
        today = drafter.today
        next_month = date(today.year + today.month // 12, today.month % 12 + 1, 1)
        fee = decided_fee(
            incomes=fee_basis.incomes,
            partner_incomes=fee_basis.partner_incomes,
            household=fee_basis.household,
            housing_cost_ore=fee_basis.housing_cost_ore,
            tariff_ore=tariff(decisions, next_month.year),
            year=next_month.year,
        )
        if fee != fee_basis.decided_fee_ore:
            fee_basis = dataclasses.replace(fee_basis, decided_fee_ore=fee, decided_from=next_month)
    return dataclasses.replace(
        record, decisions=decisions, providers=drafter.current_providers(decisions), fee_basis=fee_basis
    )


def _ended(decision: Decision, today: date) -> Decision:
    return dataclasses.replace(
        decision, status=DecisionStatus.ENDED, valid_to=max(decision.valid_from, today - timedelta(days=1))
    )


def end_decision(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    paraply = _paraply(instance)
    decision_id = _text(params, "decision_id")

    def fits(record: CareRecord) -> bool:
        return any(
            d.status is DecisionStatus.CURRENT and (decision_id is None or d.decision_id == decision_id)
            for d in record.decisions
        )

    record = _pick(world, paraply, params, fits, "one with that current decision").record
    current = [d for d in record.decisions if d.status is DecisionStatus.CURRENT]
    chosen = next((d for d in current if d.decision_id == decision_id), None) or world.rng.choice(current)
    today = world.drafter.today
    decisions = tuple(_ended(d, today) if d is chosen else d for d in record.decisions)
    return [_put(paraply, _with_decisions(world, record, decisions), late)]


# What is granted most often to someone who already has care.
_GRANTS: tuple[tuple[Insats, int], ...] = (
    (Insats.HEMTJANST, 30),
    (Insats.TRYGGHETSLARM, 25),
    (Insats.MATDISTRIBUTION, 12),
    (Insats.DAGVERKSAMHET, 8),
    (Insats.KORTTIDSVARD, 8),
    (Insats.SARSKILT_BOENDE, 7),
    (Insats.LEDSAGNING, 5),
    (Insats.AVLOSNING, 5),
)


def add_decision(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    paraply = _paraply(instance)
    rng = world.rng
    insats: Insats = (
        _choice(params, "insats", Insats) or rng.choices([i for i, _ in _GRANTS], [w for _, w in _GRANTS])[0]
    )
    law: Law | None = _choice(params, "law", Law)
    record = _pick(world, paraply, params, None, "any record").record
    today = world.drafter.today
    decisions = record.decisions
    if insats is Insats.SARSKILT_BOENDE:
        # Who moves into a care home no longer has home help.
        decisions = tuple(
            _ended(d, today) if d.insats is Insats.HEMTJANST and d.status is DecisionStatus.CURRENT else d
            for d in decisions
        )
    granted = world.drafter.decision(
        record.record_id, len(decisions) + 1, record.district_id, insats, valid_from=today, law=law
    )
    return [_put(paraply, _with_decisions(world, record, (*decisions, granted)), late)]


def change_provider(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    paraply = _paraply(instance)
    drafter = world.drafter
    district_id = paraply.district_id
    provider_id = _text(params, "provider_id")

    def changeable(decision: Decision) -> bool:
        if decision.status is not DecisionStatus.CURRENT:
            return False
        others = [
            p
            for p in drafter.providers_of(district_id, decision.insats)
            if p.provider_id != decision.provider_id
        ]
        return any(p.provider_id == provider_id for p in others) if provider_id else bool(others)

    record = _pick(
        world,
        paraply,
        params,
        lambda r: any(changeable(d) for d in r.decisions),
        "one whose provider can change",
    ).record
    decision = world.rng.choice([d for d in record.decisions if changeable(d)])
    if provider_id is None:
        others = [
            p
            for p in drafter.providers_of(district_id, decision.insats)
            if p.provider_id != decision.provider_id
        ]
        provider_id = world.rng.choice(others).provider_id
    decisions = tuple(
        dataclasses.replace(d, provider_id=provider_id) if d is decision else d for d in record.decisions
    )
    return [_put(paraply, _with_decisions(world, record, decisions), late)]


def change_officer(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    paraply = _paraply(instance)
    city = world.care.city
    officer_id = _text(params, "officer_id")
    team = _text(params, "team")
    record = _pick(world, paraply, params, None, "any record").record
    current = record.responsible_officer
    unit = city.unit_of_district(paraply.district_id)
    if officer_id is not None:
        if officer_id not in {o.officer_id for o in city.officers}:
            raise MutationError(404, "not_found", f"the directory has no officer {officer_id!r}")
        team = ""
    elif team is not None:
        officer_id = ""
    elif current.team:
        teams = sorted(
            {o.team for o in city.officers_of(unit.unit_id) if o.team and o.active} - {current.team}
        )
        if not teams:
            raise MutationError(409, "nothing_fits", f"{unit.unit_id} has no other team")
        officer_id, team = "", world.rng.choice(teams)
    else:
        role = Role.ORDINARY_HOUSING
        if current.officer_id in {o.officer_id for o in city.officers}:
            role = city.officer(current.officer_id).role
        colleagues = [
            o.officer_id
            for o in city.officers_of(unit.unit_id)
            if o.active and o.role is role and o.officer_id != current.officer_id
        ]
        if not colleagues:
            raise MutationError(409, "nothing_fits", f"{unit.unit_id} has no other officer in that role")
        officer_id, team = world.rng.choice(colleagues), ""
    officer = ResponsibleOfficer(officer_id, team, world.drafter.today)
    return [_put(paraply, dataclasses.replace(record, responsible_officer=officer), late)]


def delete_record(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    entry = _pick(world, instance, params, None, "any record")
    record_id = entry.record.record_id
    instance.store.delete(record_id, visible_in_s=late)
    now = instance.store.clock.now_us()
    visible = now + round(late * 1_000_000) if late > 0 else None
    return [Changed(instance.name, record_id, _person_number(entry.record), now, visible, deleted=True)]


def _person_of(world: World, record: CareRecord) -> Person:
    """The person a record describes, as `synthcity.people` would have made them, to draft from."""
    city = world.care.city
    number = PersonNumber(record.person_number)
    area = (
        city.area_for_postal_code(record.postal_code)
        or city.areas_of(city.unit_of_district(record.district_id).unit_id)[0]
    )
    special = any(
        d.insats is Insats.SARSKILT_BOENDE and d.status is DecisionStatus.CURRENT for d in record.decisions
    )
    return Person(
        person_number=record.person_number,
        birth_date=number.birth_date,
        coordination_number=number.is_coordination_number,
        sex=Sex(number.sex),
        given_name=record.given_name,
        family_name=record.family_name,
        language="sv",
        street_address=record.street,
        postal_code=record.postal_code,
        postal_town=record.postal_town,
        district_id=record.district_id,
        unit_id=area.unit_id,
        area_id=area.area_id,
        responsible_role=Role.SPECIAL_HOUSING if special else None,
        rule_id="",
        officer_id=record.responsible_officer.officer_id,
        team=record.responsible_officer.team,
    )


def move_person(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    """The person moves to another district: its decisions here end, and that district's record (new, or
    the one it already has of them) gets current ones, an address and an officer there."""
    paraply = _paraply(instance)
    drafter = world.drafter
    target_id = _text(params, "to_district") or world.rng.choice(
        [d.district_id for d in DISTRICTS if d.district_id != paraply.district_id]
    )
    target = world.paraply.get(target_id)
    if target is None or target is paraply:
        raise MutationError(400, "invalid_argument", "to_district must be another district")
    record = _pick(world, paraply, params, _has_current, "one with a current decision").record
    if any(
        target.store.is_pending(e.record.record_id)
        for e in target.store.find("person_number", record.person_number)
    ):
        raise MutationError(409, "pending", f"{target.name}'s record of the person waits to commit")
    today = drafter.today
    current = [d for d in record.decisions if d.status is DecisionStatus.CURRENT]
    left = dataclasses.replace(
        record,
        decisions=tuple(
            _ended(d, today) if d.status is DecisionStatus.CURRENT else d for d in record.decisions
        ),
        providers=(),
        fee_basis=None,
    )
    moved = drafter.relocate(_person_of(world, record), target_id)
    existing = target.store.find("person_number", record.person_number)
    if existing:
        base = existing[0].record
        record_id, earlier = base.record_id, base.decisions
    else:
        base = None
        record_id, earlier = drafter.next_record_id(target_id), ()
    granted = tuple(
        drafter.decision(
            record_id, len(earlier) + number, target_id, d.insats, valid_from=today, law=d.law, scope=d.scope
        )
        for number, d in enumerate(current, start=1)
    )
    decisions = (*earlier, *granted)
    arrived = CareRecord(
        record_id=record_id,
        updated_at=record.updated_at,
        district_id=target_id,
        person_number=record.person_number,
        given_name=record.given_name,
        family_name=record.family_name,
        street=moved.street_address,
        postal_code=moved.postal_code,
        postal_town=moved.postal_town,
        protected_identity=record.protected_identity,
        responsible_officer=ResponsibleOfficer(moved.officer_id, moved.team, today),
        decisions=decisions,
        providers=drafter.current_providers(decisions),
        fee_basis=drafter.fee_basis(record.person_number, target_id, decisions),
        extra={**record.extra, "dagverksamhet_queue": None} if base is None else base.extra,
    )
    return [_put(paraply, left, late), _put(target, arrived, late)]


def add_person(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    """Someone new in the district's care: decisions from today, an officer by the district's rules."""
    paraply = _paraply(instance)
    drafter = world.drafter
    protected = params.get("protected_identity", world.rng.random() < 0.01)
    if not isinstance(protected, bool):
        raise MutationError(400, "invalid_argument", "protected_identity must be true or false")
    person = drafter.new_person(paraply.district_id, world.person_numbers)
    world.person_numbers.add(person.person_number)
    record = drafter.record(person, protected=protected, since=drafter.today)
    return [_put(paraply, record, late)]


def malformed_record(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    """A new version of a record that is stored broken, until the record changes again."""
    kind = _text(params, "kind") or world.rng.choice(instance.malformations)
    if kind not in instance.malformations:
        raise MutationError(
            400, "invalid_argument", f"kind must be one of {', '.join(instance.malformations)}"
        )
    record = _pick(world, instance, params, None, "any record").record
    return [_put(instance, record, late, malformed=kind)]


def tie(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    """Several records saved again in one transaction: the very same updated_at for all of them."""
    ids = params.get("ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise MutationError(400, "invalid_argument", "ids must be a list of record ids")
    count = _whole(params, "count", len(ids) if ids else 3, 1, 1000)
    assert count is not None
    chosen: dict[str, Any] = {}
    if ids:
        for record_id in ids:
            chosen[record_id] = _pick(world, instance, {"id": record_id}, None, "any record").record
    else:
        for _ in range(count * 20):
            if len(chosen) == count:
                break
            entry = _pick(world, instance, {}, lambda r: r.record_id not in chosen, "not yet chosen")
            chosen[entry.record.record_id] = entry.record
    at_us = instance.store.clock.now_us()
    return [_put(instance, record, late, at_us=at_us) for record in chosen.values()]


# ---------------------------------------------------------------------------------------------------------
# Agresso
# ---------------------------------------------------------------------------------------------------------


def _agresso(instance: Instance[Any]) -> AgressoInstance:
    if not isinstance(instance, AgressoInstance):
        raise MutationError(400, "invalid_argument", f"{instance.name} holds no invoices")
    return instance


def pay_invoice(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    agresso = _agresso(instance)
    ocr = _text(params, "ocr")
    chosen = dict(params)
    if ocr is not None:
        found = agresso.store.find("ocr", ocr)
        if not found:
            raise MutationError(404, "not_found", "no invoice has that OCR reference")
        chosen["id"] = found[0].record.record_id
    invoice: Invoice = _pick(world, agresso, chosen, lambda i: i.remaining_ore > 0, "unpaid").record
    amount = _whole(params, "amount_ore", invoice.remaining_ore, 1, invoice.remaining_ore)
    assert amount is not None
    remaining = invoice.remaining_ore - amount
    status = invoice_status(
        amount_ore=invoice.amount_ore, remaining_ore=remaining, due_date=invoice.due_date, today=world.today()
    )
    return [_put(agresso, dataclasses.replace(invoice, remaining_ore=remaining, status=status), late)]


def _month_end(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


def add_invoice(world: World, instance: Instance[Any], params: Params, late: float) -> list[Changed]:
    """A new invoice, numbered on from the others: by default last month's care fee of a fee payer."""
    agresso = _agresso(instance)
    rng = world.rng
    kind: InvoiceKind = _choice(params, "kind", InvoiceKind) or InvoiceKind.CARE_FEE
    person_number = _text(params, "person_number")
    if person_number is None:
        drawn = _pick(world, agresso, {}, lambda i: i.kind is InvoiceKind.CARE_FEE, "a care-fee invoice")
        person_number = drawn.record.person_number
    elif len(person_number) != 12 or not person_number.isdigit():
        raise MutationError(400, "invalid_argument", "person_number must be 12 digits")
    today = world.today()
    period = _text(params, "period")
    if period is None:
        year, month = divmod(today.year * 12 + today.month - 2, 12)
        period = f"{year:04d}-{month + 1:02d}"
    elif len(period) != 7 or period[4] != "-" or not (period[:4] + period[5:]).isdigit():
        raise MutationError(400, "invalid_argument", "period must be a month YYYY-MM")
    year, month = int(period[:4]), int(period[5:])
    if not 1 <= month <= 12:
        raise MutationError(400, "invalid_argument", "period must be a month YYYY-MM")
    fees = [
        r.fee_basis.decided_fee_ore
        for _, r in world.records_of_person(person_number)
        if isinstance(r.fee_basis, FeeBasis) and r.fee_basis.decided_fee_ore > 0
    ]
    default = fees[0] if fees and kind is InvoiceKind.CARE_FEE else rng.randint(3, 20) * 10_000
    amount = _whole(params, "amount_ore", default, 1, 10**9)
    assert amount is not None

    numbering = world.numbering
    earlier = agresso.store.find("person_number", person_number)
    if earlier:
        customer = earlier[0].record.customer_id
    else:
        customer = str(100_000 + numbering.customers)
        numbering.customers += 1
    numbering.serial += 1
    serial = numbering.serial
    month_key = f"{today:%Y%m}"
    numbering.vouchers[month_key] = voucher = numbering.vouchers.get(month_key, 0) + 1
    numbering.references[today.year] = reference = numbering.references.get(today.year, 0) + 1
    due = _month_end(year, month + 1) if month < 12 else _month_end(year + 1, 1)
    invoice = Invoice(
        record_id=f"t-{serial:07d}",
        updated_at=world.now(),
        customer_id=customer,
        person_number=person_number,
        voucher_no=f"{month_key}{voucher:05d}",
        invoice_ref=f"F{today.year}-{reference:06d}",
        ocr=generate_ocr(f"{customer}{serial:07d}"),
        kind=kind,
        period=period,
        amount_ore=amount,
        remaining_ore=amount,
        due_date=due,
        status=invoice_status(amount_ore=amount, remaining_ore=amount, due_date=due, today=today),
    )
    return [_put(agresso, invoice, late)]


Operation = Callable[[World, Instance[Any], Params, float], list[Changed]]

PARAPLY_OPERATIONS: Mapping[str, Operation] = {
    "end_decision": end_decision,
    "add_decision": add_decision,
    "change_provider": change_provider,
    "change_officer": change_officer,
    "delete_person": delete_record,
    "move_person": move_person,
    "add_person": add_person,
    "malformed_record": malformed_record,
    "tie": tie,
}
AGRESSO_OPERATIONS: Mapping[str, Operation] = {
    "pay_invoice": pay_invoice,
    "add_invoice": add_invoice,
    "delete_invoice": delete_record,
    "malformed_record": malformed_record,
    "tie": tie,
}
