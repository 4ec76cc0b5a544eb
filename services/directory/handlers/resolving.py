"""ResolveResponsible: who is responsible for a person, answered from the copy in memory."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from services.common.audit import AccessRecord
from services.common.auth import Caller, Role
from services.common.errors import (
    FieldViolation,
)
from services.common.personnummer import PersonNumber
from services.directory.handlers.directory import (
    STAFF,
    Directory,
    OfficerView,
    UnitView,
    _unit_view,
    officer_view,
)
from services.directory.model import (
    Officer,
    OfficerRole,
    Responsible,
    Specialty,
    Unit,
    find_unit,
    may_see_direct_numbers,
    raise_if,
    resolve_in_unit,
)

# ---- who is responsible -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolveQuery:
    """A ResolveResponsible question, parsed: the person (None for an anonymous case, which is routed to
    the unit's intake), where they live, what they need, and why the caller asks."""

    person: PersonNumber | None
    district_id: str | None = None
    postal_code: str | None = None
    need_role: OfficerRole | None = None
    need_specialty: Specialty | None = None
    named_id: str | None = None
    at: datetime | None = None
    purpose: str = ""


@dataclass(frozen=True, eq=False)
class ResolvedView:
    """One answer of ResolveResponsible as the caller may see it. Compared and hashed by identity: equal
    answers are one object (`SnapshotCache.remember`), and hashing by value would cost more than the
    answer saves."""

    responsible: Responsible
    officer: OfficerView | None
    absent_officer: OfficerView | None
    team_members: tuple[OfficerView, ...]
    unit: UnitView
    unit_managers: tuple[OfficerView, ...] = ()


async def resolve_responsible(*, directory: Directory, caller: Caller, query: ResolveQuery) -> ResolvedView:
    # Anonymous cases are routed too: without a person number no rule by day of birth applies, and
    # there is nobody's data to log.
    person = query.person
    violations: list[FieldViolation] = []
    code = query.postal_code
    if code is not None and not (len(code) == 5 and code.isascii() and code.isdigit()):
        violations.append(FieldViolation("postal_code", "must be five digits, e.g. 16270 or 162 70"))
    if not query.district_id and not query.postal_code and not query.named_id:
        violations.append(
            FieldViolation("district", "give the person's district, postal code or named officer")
        )
    if not query.purpose.strip():
        violations.append(
            FieldViolation("purpose", "is required: say why, e.g. the case, for the access log")
        )
    elif len(query.purpose) > 255:
        violations.append(FieldViolation("purpose", "must be at most 255 characters"))
    raise_if(violations)
    district_id, named_id, postal_code = query.district_id, query.named_id, query.postal_code
    now = directory.clock()
    at = query.at or now

    cache = await directory.cache.current(directory.uow, now)
    where = (district_id, postal_code, named_id)
    snapshot = cache.unit_for.get(where)
    if snapshot is None:
        found = find_unit(
            units=cache.units,
            districts=cache.districts,
            officer_units=cache.officer_units,
            district_id=district_id,
            postal_code=postal_code,
            named_id=named_id,
        )
        snapshot = cache.remember_unit(where, found)
    named = snapshot.officers[named_id] if named_id is not None else None
    past = at < now - timedelta(hours=23)
    if past:
        # The copy keeps recent absences only: for a moment further back the unit's absences are read
        # from the tables, and that answer is neither taken from the remembered ones nor kept among them.
        async with directory.uow(write=False) as uow:
            absences = await uow.directory.absences_of_unit(snapshot.unit.unit_id, ending_after=at)
        snapshot = replace(snapshot, absences=absences)

    unit = snapshot.unit
    direct_numbers = may_see_direct_numbers(
        unit=unit, caller_unit_id=caller.unit_id, is_admin=caller.has_role(Role.DIRECTORY_ADMIN)
    )
    public_only = not caller.has_role(*STAFF)
    birth_day = person.birth_date.day if person is not None else None
    # Everything the answer depends on. Time enters only through absences, so two moments between the
    # same absence boundaries ask the same question: at a thousand calls a second, nearly every one has
    # been answered before and only the access-log entry below is new.
    question = (
        unit.unit_id,
        postal_code,
        birth_day,
        query.need_role,
        query.need_specialty,
        named_id,
        snapshot.period_of(at),
        direct_numbers,
        public_only,
    )
    resolved = None if past else cache.answers.get(question)
    if resolved is None:
        responsible = resolve_in_unit(
            snapshot,
            district=cache.districts[unit.district_id],
            birth_day=birth_day,
            postal_code=postal_code,
            need_role=query.need_role,
            need_specialty=query.need_specialty,
            named_officer=named,
            at=at,
        )
        view = ResolvedView(
            responsible=responsible,
            officer=_view(caller, responsible.officer, unit),
            absent_officer=_view(caller, responsible.absent_officer, unit),
            team_members=tuple(officer_view(caller, o, unit) for o in responsible.team_members),
            unit=_unit_view(directory, caller, unit),
            unit_managers=tuple(officer_view(caller, o, unit) for o in snapshot.managers),
        )
        resolved = (
            view
            if past
            else cache.remember(question, _answer_key(responsible, direct_numbers, public_only), view)
        )
    if person is not None:
        await directory.access_log.record(
            AccessRecord(
                actor=caller.subject,
                actor_role=caller.primary_role,
                person_number=str(person),
                action="directory.ResolveResponsible",
                purpose=query.purpose.strip(),
                occurred_at=now,
            )
        )
    return resolved


def _view(caller: Caller, officer: Officer | None, unit: Unit) -> OfficerView | None:
    return officer_view(caller, officer, unit) if officer is not None else None


def _answer_key(responsible: Responsible, direct_numbers: bool, public_only: bool) -> tuple[Any, ...]:
    def officer_id(o: Officer | None) -> str | None:
        return o.officer_id if o is not None else None

    return (
        responsible.unit.unit_id,
        responsible.decision,
        officer_id(responsible.officer),
        officer_id(responsible.absent_officer),
        responsible.team,
        tuple(o.officer_id for o in responsible.team_members),
        responsible.rule_id,
        responsible.area_id,
        direct_numbers,
        public_only,
    )
