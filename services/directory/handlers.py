"""The directory's use cases: one transaction each, permission checked before anything is looked up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.audit import AccessRecord
from services.common.audit_writer import AccessLog
from services.common.auth import Caller, Role
from services.common.db import Idempotency
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    StaleEtag,
)
from services.common.etags import check_etag
from services.common.names import resource_id, resource_ids
from services.common.pagination import PageRequest
from services.common.personnummer import parse_person_number
from services.directory import transfer
from services.directory.model import (
    Absence,
    ContactRoute,
    District,
    Officer,
    OfficerRole,
    Responsible,
    RuleSet,
    Specialty,
    Unit,
    UnitSnapshot,
    absence_violations,
    may_see_direct_numbers,
    officer_violations,
    public_route,
    raise_if,
    resolve_in_unit,
    rule_set_violations,
    unit_violations,
)
from services.directory.store import ConcurrentChange, DirectoryUnitOfWork, Duplicate, OfficerQuery

SERVICE = "directory"

STAFF = (
    Role.AGENT,
    Role.OFFICER,
    Role.UNIT_MANAGER,
    Role.DIRECTORY_ADMIN,
    Role.AUDITOR,
    Role.FINANCE,
    Role.SERVICE,
)
ROUTERS = (Role.AGENT, Role.OFFICER, Role.UNIT_MANAGER, Role.DIRECTORY_ADMIN, Role.SERVICE)
ADMINS = (Role.DIRECTORY_ADMIN,)
PUBLIC = (*STAFF, Role.CITIZEN)
# ResolveResponsible's questions remembered per copy of the directory: each is a short tuple, so this
# bounds the memory to a few megabytes whatever the mix of postal codes, birth days and needs.
MAX_REMEMBERED_ANSWERS = 50_000

UowFactory = Callable[..., DirectoryUnitOfWork]


@dataclass
class SnapshotCache:
    """The units with their rules, officers and absences, read once and kept while the directory is unchanged.

    ResolveResponsible runs on every forwarded case; the directory changes a few times a day. The cached
    copy is checked against the directory's revision at most every `max_age` seconds, and dropped at once
    when this process writes.
    """

    max_age: float = 1.0
    revision: int = -1
    checked_at: float = 0.0
    units: dict[str, UnitSnapshot] = field(default_factory=dict)
    districts: dict[str, District] = field(default_factory=dict)
    officer_units: dict[str, str] = field(default_factory=dict)
    # Every officer by id, and by language, for searches without a database round trip.
    officers: list[Officer] = field(default_factory=list)
    by_language: dict[str, list[Officer]] = field(default_factory=dict)
    district_of_unit: dict[str, str] = field(default_factory=dict)
    # ResolveResponsible's answers for this copy of the directory (see `resolve_responsible`).
    answers: dict[tuple[Any, ...], ResolvedView] = field(default_factory=dict)
    unit_for: dict[tuple[str | None, ...], UnitSnapshot] = field(default_factory=dict)
    views: dict[tuple[Any, ...], ResolvedView] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def remember_unit(self, where: tuple[str | None, ...], snapshot: UnitSnapshot) -> UnitSnapshot:
        """Which unit answers for a district, postal code and named officer (`_find_unit`)."""
        if len(self.unit_for) >= MAX_REMEMBERED_ANSWERS:
            self.unit_for.clear()
        self.unit_for[where] = snapshot
        return snapshot

    def remember(
        self, question: tuple[Any, ...], answer: tuple[Any, ...], view: ResolvedView
    ) -> ResolvedView:
        """Keeps one view per distinct answer, so that equal answers are one object whose message is built
        once; a bounded number of questions lead to it, forgotten all at once when there are too many."""
        if len(self.answers) >= MAX_REMEMBERED_ANSWERS:
            self.answers.clear()
            self.views.clear()
        view = self.views.setdefault(answer, view)
        self.answers[question] = view
        return view

    def invalidate(self) -> None:
        self.revision = -1
        self.checked_at = 0.0

    async def current(self, uow_factory: UowFactory, now: datetime) -> SnapshotCache:
        if time.monotonic() - self.checked_at < self.max_age and self.revision >= 0:
            return self
        async with self.lock:
            if time.monotonic() - self.checked_at < self.max_age and self.revision >= 0:
                return self
            async with uow_factory(write=False) as uow:
                revision = await uow.directory.revision()
                if revision != self.revision:
                    await self._load(uow, now)
                    self.revision = revision
            self.checked_at = time.monotonic()
        return self

    async def _load(self, uow: DirectoryUnitOfWork, now: datetime) -> None:
        # A handful of queries for the whole directory, whatever the number of units: callers wait
        # while it loads, after every change.
        repo = uow.directory
        districts = {d.district_id: d for d in await repo.list_districts()}
        all_units = await repo.all_units()
        rule_sets = await repo.rule_sets_of([unit.unit_id for unit in all_units])
        staff: dict[str, dict[str, Officer]] = {unit.unit_id: {} for unit in all_units}
        for officer in await repo.all_officers():
            staff.setdefault(officer.unit_id, {})[officer.officer_id] = officer
        # Absences that ended more than a day ago cannot matter for "now"; older times are read fresh.
        away = await repo.absences_ending_after(now - timedelta(days=1))
        units: dict[str, UnitSnapshot] = {}
        officer_units: dict[str, str] = {}
        for unit in all_units:
            officers_here = staff[unit.unit_id]
            snapshot = UnitSnapshot(
                unit=unit,
                rule_set=rule_sets[unit.unit_id],
                officers=officers_here,
                absences={officer_id: away[officer_id] for officer_id in officers_here if officer_id in away},
            )
            snapshot.managers = tuple(
                sorted(
                    (o for o in officers_here.values() if o.active and o.role is OfficerRole.UNIT_MANAGER),
                    key=lambda o: o.officer_id,
                )
            )
            units[unit.unit_id] = snapshot
            officer_units.update({officer_id: unit.unit_id for officer_id in officers_here})
        everyone = sorted(
            (o for s in units.values() for o in s.officers.values()), key=lambda o: o.officer_id
        )
        by_language: dict[str, list[Officer]] = {}
        for officer in everyone:
            for language in officer.languages:
                by_language.setdefault(language, []).append(officer)
        # Swapped in together, with no await in between, so a call never sees half of two copies.
        self.districts = districts
        self.units = units
        self.answers = {}
        self.views = {}
        self.unit_for = {}
        self.officer_units = officer_units
        self.officers = everyone
        self.by_language = by_language
        self.district_of_unit = {unit_id: s.unit.district_id for unit_id, s in units.items()}


@dataclass
class Directory:
    """What the use cases need, wired by bootstrap: real or fake."""

    uow: UowFactory
    access_log: AccessLog
    contact_center_phone: str
    cache: SnapshotCache = field(default_factory=SnapshotCache)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


# ---- views: what a caller may see -------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitView:
    unit: Unit
    route: ContactRoute
    public_only: bool


@dataclass(frozen=True)
class OfficerView:
    officer: Officer
    phone_withheld: bool


def _unit_view(directory: Directory, caller: Caller, unit: Unit) -> UnitView:
    return UnitView(
        unit=unit,
        route=public_route(unit, directory.contact_center_phone),
        public_only=not caller.has_role(*STAFF),
    )


def officer_view(caller: Caller, officer: Officer, unit: Unit | None) -> OfficerView:
    if unit is None or not officer.phone:
        return OfficerView(officer, phone_withheld=False)
    allowed = may_see_direct_numbers(
        unit=unit, caller_unit_id=caller.unit_id, is_admin=caller.has_role(Role.DIRECTORY_ADMIN)
    )
    if allowed:
        return OfficerView(officer, phone_withheld=False)
    return OfficerView(replace(officer, phone=""), phone_withheld=True)


# ---- parsing names ----------------------------------------------------------------------------------------


# ---- districts --------------------------------------------------------------------------------------------


async def _follow_successors(uow: DirectoryUnitOfWork, district: District) -> District:
    current = district
    for _ in range(10):
        if current.successor_id is None:
            return current
        successor = await uow.directory.get_district(current.successor_id)
        if successor is None:
            return current
        current = successor
    return current


async def get_district(*, directory: Directory, caller: Caller, name: str) -> tuple[District, District]:
    caller.require_role(*PUBLIC)
    district_id = resource_id(name, "districts", "name")
    async with directory.uow(write=False) as uow:
        district = await uow.directory.get_district(district_id)
        if district is None:
            raise NotFound(name)
        return district, await _follow_successors(uow, district)


async def list_districts(
    *, directory: Directory, caller: Caller, page: PageRequest, include_retired: bool
) -> tuple[list[District], str]:
    caller.require_role(*PUBLIC)
    today = directory.clock().date()
    after = page.after_text()
    async with directory.uow(write=False) as uow:
        found = [
            d
            for d in await uow.directory.list_districts()
            if (include_retired or d.is_current(today)) and (after is None or d.district_id > after)
        ]
    items = found[: page.size]
    return items, page.next_token(items[-1].district_id if items else None, more=len(found) > page.size)


# ---- units ------------------------------------------------------------------------------------------------


async def get_unit(*, directory: Directory, caller: Caller, name: str) -> UnitView:
    caller.require_role(*PUBLIC)
    unit_id = resource_id(name, "units", "name")
    async with directory.uow(write=False) as uow:
        unit = await uow.directory.get_unit(unit_id)
    if unit is None:
        raise NotFound(name)
    return _unit_view(directory, caller, unit)


async def list_units(
    *, directory: Directory, caller: Caller, page: PageRequest, district: str
) -> tuple[list[UnitView], str]:
    caller.require_role(*PUBLIC)
    district_id = resource_id(district, "districts", "district") if district else None
    async with directory.uow(write=False) as uow:
        if district_id and await uow.directory.get_district(district_id) is None:
            raise NotFound(district)
        found = await uow.directory.list_units(
            district_id=district_id, after=page.after_text(), limit=page.size + 1
        )
    items = found[: page.size]
    return (
        [_unit_view(directory, caller, u) for u in items],
        page.next_token(items[-1].unit_id if items else None, more=len(found) > page.size),
    )


async def create_unit(
    *, directory: Directory, caller: Caller, unit: Unit, idempotency: Idempotency | None = None
) -> UnitView:
    caller.require_role(*ADMINS)
    raise_if(unit_violations(unit))
    async with directory.uow(idempotency=idempotency) as uow:
        await _current_district(uow, unit.district_id, directory.clock().date(), "unit.district")
        if await uow.directory.get_unit(unit.unit_id) is not None:
            raise AlreadyExists(f"units/{unit.unit_id} already exists", metadata={"resource": unit.name})
        stored = await _saved(uow.directory.add_unit(unit))
        view = _unit_view(directory, caller, stored)
        await uow.commit(view)
    directory.cache.invalidate()
    return view


UNIT_FIELDS = (
    "display_name",
    "district",
    "mailbox",
    "acute_phone",
    "acute_hours",
    "contact_policy",
    "reception_phone",
    "phone_hours",
    "team_model",
)
OFFICER_FIELDS = (
    "given_name",
    "family_name",
    "unit",
    "role",
    "specialties",
    "languages",
    "team",
    "phone",
    "email",
    "active",
    "caseload",
)


def _apply_mask(current: Any, sent: Any, mask: Sequence[str], allowed: Sequence[str], prefix: str) -> Any:
    fields = list(mask) or list(allowed)
    renames = {"district": "district_id", "unit": "unit_id"}
    changes: dict[str, Any] = {}
    for index, name in enumerate(fields):
        if name not in allowed:
            raise InvalidArgument.field(
                f"update_mask[{index}]",
                f"{name!r} is not a writable field of {prefix}; use one of {', '.join(allowed)}",
            )
        attribute = renames.get(name, name)
        changes[attribute] = getattr(sent, attribute)
    return replace(current, **changes)


async def update_unit(
    *, directory: Directory, caller: Caller, unit: Unit, etag: str, update_mask: Sequence[str]
) -> UnitView:
    caller.require_role(*ADMINS)
    async with directory.uow() as uow:
        current = await uow.directory.get_unit(unit.unit_id)
        if current is None:
            raise NotFound(unit.name)
        check_etag(name=current.name, revision=current.revision, sent=etag, field="unit.etag")
        changed = _apply_mask(current, unit, update_mask, UNIT_FIELDS, "unit")
        raise_if(unit_violations(changed))
        if (
            changed.district_id != current.district_id
            and await uow.directory.get_district(changed.district_id) is None
        ):
            raise NotFound(f"districts/{changed.district_id}")
        stored = await _saved(uow.directory.save_unit(changed))
        await uow.commit()
    directory.cache.invalidate()
    return _unit_view(directory, caller, stored)


async def _saved(write: Any) -> Any:
    try:
        return await write
    except ConcurrentChange as change:
        raise StaleEtag(change.name) from None
    except Duplicate as duplicate:
        raise AlreadyExists(
            f"{duplicate.name} already exists", metadata={"resource": duplicate.name}
        ) from None


async def _current_district(uow: DirectoryUnitOfWork, district_id: str, today: Any, field_name: str) -> None:
    """Units belong to current districts: a retired one is refused naming its successor."""
    district = await uow.directory.get_district(district_id)
    if district is None:
        raise NotFound(f"districts/{district_id}")
    if not district.is_current(today):
        successor = f"; use districts/{district.successor_id}" if district.successor_id else ""
        raise InvalidArgument.field(field_name, f"{district.name} is retired{successor}")


# ---- officers ---------------------------------------------------------------------------------------------


async def get_officer(*, directory: Directory, caller: Caller, name: str) -> OfficerView:
    caller.require_role(*STAFF)
    officer_id = resource_id(name, "officers", "name")
    async with directory.uow(write=False) as uow:
        officer = await uow.directory.get_officer(officer_id)
        if officer is None:
            raise NotFound(name)
        return officer_view(caller, officer, await uow.directory.get_unit(officer.unit_id))


def _matches(officer: Officer, query: OfficerQuery, district_of_unit: dict[str, str]) -> bool:
    if not (query.include_inactive or officer.active):
        return False
    if query.unit_id and officer.unit_id != query.unit_id:
        return False
    if query.district_id and district_of_unit.get(officer.unit_id) != query.district_id:
        return False
    if query.role and officer.role is not query.role:
        return False
    if query.specialty and query.specialty not in officer.specialties:
        return False
    if query.language and query.language not in officer.languages:
        return False
    if query.name_prefix:
        prefix = query.name_prefix.casefold()
        names = (officer.given_name.casefold(), officer.family_name.casefold(), officer.full_name.casefold())
        if not any(name.startswith(prefix) for name in names):
            return False
    return True


async def search_officers(
    *, directory: Directory, caller: Caller, page: PageRequest, query: OfficerQuery
) -> tuple[list[OfficerView], str]:
    """Searches the cached directory: a few hundred officers filter faster than one database round trip."""
    caller.require_role(*STAFF)
    after = page.after_text()
    cache = await directory.cache.current(directory.uow, directory.clock())
    if query.unit_id and query.unit_id not in cache.units:
        raise NotFound(f"units/{query.unit_id}")
    if query.district_id and query.district_id not in cache.districts:
        raise NotFound(f"districts/{query.district_id}")
    candidates = cache.by_language.get(query.language, []) if query.language else cache.officers
    found: list[Officer] = []
    for officer in candidates:
        if after is not None and officer.officer_id <= after:
            continue
        if _matches(officer, query, cache.district_of_unit):
            found.append(officer)
            if len(found) > page.size:
                break
    items = found[: page.size]
    views = [officer_view(caller, o, cache.units[o.unit_id].unit) for o in items]
    return views, page.next_token(items[-1].officer_id if items else None, more=len(found) > page.size)


async def create_officer(
    *, directory: Directory, caller: Caller, officer: Officer, idempotency: Idempotency | None = None
) -> OfficerView:
    caller.require_role(*ADMINS)
    raise_if(officer_violations(officer))
    async with directory.uow(idempotency=idempotency) as uow:
        unit = await uow.directory.get_unit(officer.unit_id)
        if unit is None:
            raise NotFound(f"units/{officer.unit_id}")
        if await uow.directory.get_officer(officer.officer_id) is not None:
            raise AlreadyExists(
                f"officers/{officer.officer_id} already exists", metadata={"resource": officer.name}
            )
        stored = await _saved(uow.directory.add_officer(officer))
        view = officer_view(caller, stored, unit)
        await uow.commit(view)
    directory.cache.invalidate()
    return view


async def update_officer(
    *, directory: Directory, caller: Caller, officer: Officer, etag: str, update_mask: Sequence[str]
) -> OfficerView:
    caller.require_role(*ADMINS)
    async with directory.uow() as uow:
        current = await uow.directory.get_officer(officer.officer_id)
        if current is None:
            raise NotFound(officer.name)
        check_etag(name=current.name, revision=current.revision, sent=etag, field="officer.etag")
        changed = _apply_mask(current, officer, update_mask, OFFICER_FIELDS, "officer")
        raise_if(officer_violations(changed))
        unit = await uow.directory.get_unit(changed.unit_id)
        if unit is None:
            raise NotFound(f"units/{changed.unit_id}")
        leaving = changed.unit_id != current.unit_id or (current.active and not changed.active)
        if leaving:
            still_named = await uow.directory.officer_is_referenced(current.officer_id, now=directory.clock())
            if still_named:
                raise FailedPrecondition(
                    f"{current.name} is still responsible in {', '.join(still_named[:5])}; "
                    "replace the unit's assignment rules or the absences first",
                    reason="OFFICER_IN_USE",
                )
        stored = await _saved(uow.directory.save_officer(changed))
        await uow.commit()
    directory.cache.invalidate()
    return officer_view(caller, stored, unit)


# ---- absences ---------------------------------------------------------------------------------------------


async def create_absence(
    *, directory: Directory, caller: Caller, absence: Absence, idempotency: Idempotency | None = None
) -> Absence:
    caller.require_role(*ADMINS)
    async with directory.uow(idempotency=idempotency) as uow:
        officer = await uow.directory.get_officer(absence.officer_id)
        if officer is None:
            raise NotFound(f"officers/{absence.officer_id}")
        substitute = await uow.directory.get_officer(absence.substitute_id) if absence.substitute_id else None
        if not absence.substitute_id:
            raise InvalidArgument.field("absence.substitute", "is required: name an officer of the same unit")
        raise_if(absence_violations(absence, officer=officer, substitute=substitute))
        if await uow.directory.get_absence(absence.officer_id, absence.absence_id) is not None:
            raise AlreadyExists(f"{absence.name} already exists", metadata={"resource": absence.name})
        if await uow.directory.absences_overlapping(absence.officer_id, absence.start, absence.end):
            raise InvalidArgument.field("absence.start_time", "overlaps another absence of the same officer")
        stored = await uow.directory.add_absence(absence)
        await uow.commit(stored)
    directory.cache.invalidate()
    return stored


async def list_absences(
    *, directory: Directory, caller: Caller, parent: str, page: PageRequest
) -> tuple[list[Absence], str]:
    caller.require_role(*STAFF)
    officer_id = resource_id(parent, "officers", "parent")
    async with directory.uow(write=False) as uow:
        if await uow.directory.get_officer(officer_id) is None:
            raise NotFound(parent)
        found = await uow.directory.list_absences(officer_id, after=page.after_text(), limit=page.size + 1)
    items = found[: page.size]
    return items, page.next_token(items[-1].absence_id if items else None, more=len(found) > page.size)


async def delete_absence(*, directory: Directory, caller: Caller, name: str) -> None:
    caller.require_role(*ADMINS)
    officer_id, absence_id = resource_ids(name, ("officers", "absences"), "name")
    async with directory.uow() as uow:
        if not await uow.directory.delete_absence(officer_id, absence_id):
            raise NotFound(name)
        await uow.commit()
    directory.cache.invalidate()


# ---- assignment rules -------------------------------------------------------------------------------------


async def get_assignment_rules(*, directory: Directory, caller: Caller, unit: str) -> RuleSet:
    caller.require_role(*STAFF)
    unit_id = resource_id(unit, "units", "unit")
    async with directory.uow(write=False) as uow:
        if await uow.directory.get_unit(unit_id) is None:
            raise NotFound(unit)
        return await uow.directory.get_rule_set(unit_id)


async def replace_assignment_rules(
    *,
    directory: Directory,
    caller: Caller,
    rule_set: RuleSet,
    etag: str,
    idempotency: Idempotency | None = None,
) -> RuleSet:
    caller.require_role(*ADMINS)
    async with directory.uow(idempotency=idempotency) as uow:
        if await uow.directory.get_unit(rule_set.unit_id) is None:
            raise NotFound(f"units/{rule_set.unit_id}")
        current = await uow.directory.get_rule_set(rule_set.unit_id)
        check_etag(name=current.name, revision=current.revision, sent=etag, field="rule_set.etag")
        officers = await uow.directory.officers_of_unit(rule_set.unit_id)
        raise_if(
            rule_set_violations(
                rule_set,
                officers=officers,
                other_units_areas=await uow.directory.areas_of_other_units(rule_set.unit_id),
            )
        )
        stored: RuleSet = await _saved(
            uow.directory.save_rule_set(replace(rule_set, revision=current.revision))
        )
        await uow.commit(stored)
    directory.cache.invalidate()
    return stored


# ---- who is responsible -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolveQuery:
    person_number: str
    district: str = ""
    postal_code: str = ""
    need_role: OfficerRole | None = None
    need_specialty: Specialty | None = None
    named_officer: str = ""
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
    caller.require_role(*ROUTERS)
    # Anonymous cases are routed too: without a person number no rule by day of birth applies, and
    # there is nobody's data to log.
    person = parse_person_number(query.person_number, field="person_number") if query.person_number else None
    violations: list[FieldViolation] = []
    if query.postal_code and not (
        len(query.postal_code.replace(" ", "")) == 5 and query.postal_code.replace(" ", "").isdigit()
    ):
        violations.append(FieldViolation("postal_code", "must be five digits, e.g. 16270 or 162 70"))
    if not query.district and not query.postal_code and not query.named_officer:
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
    district_id = resource_id(query.district, "districts", "district") if query.district else None
    named_id = resource_id(query.named_officer, "officers", "named_officer") if query.named_officer else None
    postal_code = query.postal_code.replace(" ", "") or None
    now = directory.clock()
    at = query.at or now

    cache = await directory.cache.current(directory.uow, now)
    where = (district_id, postal_code, named_id)
    snapshot = cache.unit_for.get(where)
    if snapshot is None:
        snapshot = cache.remember_unit(where, _find_unit(cache, district_id, postal_code, named_id))
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


def _find_unit(
    cache: SnapshotCache, district_id: str | None, postal_code: str | None, named_id: str | None
) -> UnitSnapshot:
    """The unit that answers: the named officer's, else the one whose area has the postal code (in the
    district, when one is given), else the district's; a retired district stands for its successor."""
    district: District | None = None
    if district_id is not None:
        district = cache.districts.get(district_id)
        if district is None:
            raise NotFound(f"districts/{district_id}")
        for _ in range(10):
            if district.successor_id is None or district.successor_id not in cache.districts:
                break
            district = cache.districts[district.successor_id]
    if named_id is not None:
        unit_of_named = cache.officer_units.get(named_id)
        if unit_of_named is None:
            raise NotFound(f"officers/{named_id}")
        return cache.units[unit_of_named]
    by_postal = next(
        (s for s in cache.units.values() if postal_code and s.rule_set.area_of(postal_code) is not None), None
    )
    if district is None:
        if by_postal is None:
            raise NotFound(
                f"postal code {postal_code}", message=f"no unit's area covers postal code {postal_code}"
            )
        return by_postal
    in_district = sorted(
        (s for s in cache.units.values() if s.unit.district_id == district.district_id),
        key=lambda s: s.unit.unit_id,
    )
    if by_postal is not None and by_postal.unit.district_id == district.district_id:
        return by_postal
    if not in_district:
        raise FailedPrecondition(f"{district.name} has no elderly-care unit", reason="NO_UNIT")
    return in_district[0]


# ---- import and export ------------------------------------------------------------------------------------


async def export_directory(*, directory: Directory, caller: Caller) -> dict[str, str]:
    # The export holds every direct number, so it is for the directory's administrators only.
    caller.require_role(*ADMINS)
    async with directory.uow(write=False) as uow:
        repo = uow.directory
        all_units = await repo.all_units()
        rule_sets = list((await repo.rule_sets_of([u.unit_id for u in all_units])).values())
        return transfer.export_files(
            all_units, await repo.all_officers(), await repo.all_absences(), rule_sets
        )


async def import_directory(
    *,
    directory: Directory,
    caller: Caller,
    files: dict[str, str],
    validate_only: bool,
    idempotency: Idempotency | None = None,
) -> transfer.ImportCounts:
    caller.require_role(*ADMINS)
    async with directory.uow(idempotency=None if validate_only else idempotency) as uow:
        today = directory.clock().date()
        known_districts = {d.district_id for d in await uow.directory.list_districts() if d.is_current(today)}
        parsed = transfer.parse_files(files, known_districts=known_districts)
        if validate_only:
            return parsed.counts
        await uow.directory.replace_directory(
            parsed.units, parsed.officers, parsed.absences, parsed.rule_sets
        )
        await uow.commit(parsed.counts)
    directory.cache.invalidate()
    return parsed.counts
