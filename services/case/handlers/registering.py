"""Registering contacts: a new case, the person's open cases to link to, a contact added, a case answered
at once, reopened, or read."""

from __future__ import annotations

from dataclasses import replace

from services.case import model
from services.case.handlers.cases import (
    Cases,
    acts_as_unit_staff,
    check_unit_staff,
    log_reads,
    reference_items,
    transition,
)
from services.case.model import Case, Contact, ReferenceItem, ReferenceKind
from services.common.auth import Caller, Role
from services.common.db import Idempotency
from services.common.errors import FieldViolation, InvalidArgument, NotFound, quoted
from services.common.pagination import PageRequest


async def list_reference_data(*, cases: Cases) -> list[ReferenceItem]:
    return await reference_items(cases)


def _reference_violations(items: list[ReferenceItem], case: Case) -> list[FieldViolation]:
    known = {(i.kind, i.item_id) for i in items}
    out = []
    for kind, value, name in (
        (ReferenceKind.CATEGORY, case.category, "case.category"),
        (ReferenceKind.CASE_TYPE, case.case_type, "case.case_type"),
        (ReferenceKind.CASE_CLASS, case.case_class, "case.case_class"),
    ):
        if not value:
            out.append(FieldViolation(name, "is required"))
        elif (kind, value) not in known:
            choices = ", ".join(i.item_id for i in items if i.kind is kind)
            out.append(FieldViolation(name, f"{quoted(value)} is not one of {choices}"))
    return out


async def create_case(
    *,
    cases: Cases,
    caller: Caller,
    case: Case,
    contact: Contact,
    anonymous: bool,
    idempotency: Idempotency | None = None,
) -> Case:
    """Registers `case` (its person_number already in 12 digits, or None) with its first contact."""
    violations = model.case_violations(case) + model.contact_violations(contact)
    if anonymous and case.person_number:
        violations.append(FieldViolation("case.person_number", "must be empty for an anonymous case"))
    if not anonymous and not case.person_number:
        violations.append(FieldViolation("case.person_number", "is required unless the case is anonymous"))
    model.raise_if(violations)
    district_id = case.district_id
    if district_id:
        districts = await cases.directory.district_ids(caller)
        if district_id not in districts:
            raise InvalidArgument.field(
                "case.district", f"districts/{quoted(district_id)} is not a district of Stockholm"
            )
        district_id = districts[district_id]  # a retired district's cases belong to its successor
    # Checked before the transaction: loading the reference data takes a connection of its own, which a
    # burst of calls each already holding one could wait for in vain.
    model.raise_if(_reference_violations(await reference_items(cases), case))
    registered = model.register(
        replace(case, district_id=district_id), contact, actor=caller.subject, now=cases.clock()
    )
    return await cases.register(registered, idempotency)


async def get_case(*, cases: Cases, caller: Caller, case_id: int) -> Case:
    async with cases.uow(write=False) as uow:
        case = await uow.cases.get(case_id)
    if caller.has_role(Role.AGENT):
        if case is None:
            raise NotFound(f"cases/{case_id}")
    elif acts_as_unit_staff(caller):
        case = check_unit_staff(caller, case_id, case)
    elif case is None or case.person_number is None or case.person_number != caller.person_number:
        # A citizen learns nothing of cases that are not theirs, not even that they exist.
        raise NotFound(f"cases/{case_id}")
    await log_reads(cases, caller, [case.person_number], "GetCase", case.name)
    return case


async def find_open_cases(
    *, cases: Cases, caller: Caller, person: str, page: PageRequest
) -> tuple[list[Case], str]:
    async with cases.uow(write=False) as uow:
        found = await uow.cases.open_cases_of(person, before_id=page.after_int(), limit=page.size + 1)
    items = found[: page.size]
    await log_reads(cases, caller, [person], "FindOpenCases", "registering a contact")
    return items, page.next_token(items[-1].case_id if items else None, more=len(found) > page.size)


async def add_contact(
    *, cases: Cases, caller: Caller, case_id: int, contact: Contact, idempotency: Idempotency | None = None
) -> Case:
    model.raise_if(model.contact_violations(contact))
    return await transition(
        cases,
        caller,
        case_id,
        lambda case, now: model.add_contact(case, contact, actor=caller.subject, now=now),
        "AddContact",
        idempotency,
    )


async def resolve_case(
    *, cases: Cases, caller: Caller, case_id: int, resolution: str, idempotency: Idempotency | None = None
) -> Case:
    return await transition(
        cases,
        caller,
        case_id,
        lambda case, now: model.resolve(case, resolution, actor=caller.subject, now=now),
        "ResolveCase",
        idempotency,
    )


async def reopen_case(
    *, cases: Cases, caller: Caller, case_id: int, reason: str, idempotency: Idempotency | None = None
) -> Case:
    return await transition(
        cases,
        caller,
        case_id,
        lambda case, now: model.reopen(case, reason, actor=caller.subject, now=now),
        "ReopenCase",
        idempotency,
    )
