"""The directory's repository and unit of work: the only module of the service with SQL, answering in
domain types."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.db import Fence, Idempotency, UnitOfWork, save_at_revision, utc
from services.directory.model import (
    Absence,
    Area,
    AssignmentRule,
    ContactPolicy,
    District,
    Officer,
    OfficerRole,
    PostalCodeRange,
    RuleSet,
    Specialty,
    Unit,
    format_periods,
    parse_periods,
)
from services.directory.store.tables import (
    absences,
    area_postal_ranges,
    areas,
    assignment_rules,
    directory_revision,
    districts,
    officer_languages,
    officer_specialties,
    officers,
    rule_sets,
    units,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _district(row: Any) -> District:
    return District(
        district_id=row.district_id,
        display_name=row.display_name,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        successor_id=row.successor_id,
    )


def _unit(row: Any) -> Unit:
    return Unit(
        unit_id=row.unit_id,
        display_name=row.display_name,
        district_id=row.district_id,
        mailbox=row.mailbox,
        acute_phone=row.acute_phone,
        acute_hours=parse_periods(row.acute_hours),
        contact_policy=ContactPolicy(row.contact_policy),
        reception_phone=row.reception_phone,
        phone_hours=parse_periods(row.phone_hours),
        team_model=row.team_model,
        revision=row.revision,
        create_time=utc(row.create_time),
        update_time=utc(row.update_time),
    )


def _unit_values(unit: Unit) -> dict[str, Any]:
    return {
        "unit_id": unit.unit_id,
        "display_name": unit.display_name,
        "district_id": unit.district_id,
        "mailbox": unit.mailbox,
        "acute_phone": unit.acute_phone,
        "acute_hours": format_periods(unit.acute_hours),
        "contact_policy": unit.contact_policy.value,
        "reception_phone": unit.reception_phone,
        "phone_hours": format_periods(unit.phone_hours),
        "team_model": unit.team_model,
        "revision": unit.revision,
        "create_time": unit.create_time,
        "update_time": unit.update_time,
    }


def _officer_values(officer: Officer) -> dict[str, Any]:
    return {
        "officer_id": officer.officer_id,
        "unit_id": officer.unit_id,
        "given_name": officer.given_name,
        "family_name": officer.family_name,
        "given_key": officer.given_name.casefold(),
        "family_key": officer.family_name.casefold(),
        "full_key": officer.full_name.casefold(),
        "role": officer.role.value,
        "team": officer.team,
        "phone": officer.phone,
        "email": officer.email,
        "active": officer.active,
        "caseload": officer.caseload,
        "revision": officer.revision,
        "create_time": officer.create_time,
        "update_time": officer.update_time,
    }


def _absence(row: Any) -> Absence:
    return Absence(
        absence_id=row.absence_id,
        officer_id=row.officer_id,
        start=utc(row.start_time),
        end=utc(row.end_time),
        substitute_id=row.substitute_id,
        create_time=utc(row.create_time),
    )


@dataclass(frozen=True)
class OfficerQuery:
    unit_id: str | None = None
    district_id: str | None = None
    name_prefix: str | None = None
    language: str | None = None
    specialty: Specialty | None = None
    role: OfficerRole | None = None
    include_inactive: bool = False


class DirectoryRepository:
    def __init__(self, conn: AsyncConnection):
        self.conn = conn

    # ---- districts ----

    async def get_district(self, district_id: str) -> District | None:
        row = (
            await self.conn.execute(select(districts).where(districts.c.district_id == district_id))
        ).first()
        return _district(row) if row else None

    async def list_districts(self) -> list[District]:
        rows = await self.conn.execute(select(districts).order_by(districts.c.district_id))
        return [_district(r) for r in rows]

    async def add_districts(self, items: Iterable[District]) -> None:
        for district in items:
            await self.conn.execute(
                insert(districts).values(
                    district_id=district.district_id,
                    display_name=district.display_name,
                    valid_from=district.valid_from,
                    valid_to=district.valid_to,
                    successor_id=district.successor_id,
                )
            )

    # ---- units ----

    async def get_unit(self, unit_id: str) -> Unit | None:
        row = (await self.conn.execute(select(units).where(units.c.unit_id == unit_id))).first()
        return _unit(row) if row else None

    async def list_units(self, *, district_id: str | None, after: str | None, limit: int) -> list[Unit]:
        query = select(units).order_by(units.c.unit_id).limit(limit)
        if district_id:
            query = query.where(units.c.district_id == district_id)
        if after:
            query = query.where(units.c.unit_id > after)
        return [_unit(r) for r in await self.conn.execute(query)]

    async def units_of_districts(self, district_ids: Sequence[str]) -> list[Unit]:
        rows = await self.conn.execute(
            select(units).where(units.c.district_id.in_(district_ids)).order_by(units.c.unit_id)
        )
        return [_unit(r) for r in rows]

    async def add_unit(self, unit: Unit) -> Unit:
        now = _now()
        stored = replace(unit, revision=1, create_time=now, update_time=now)
        try:
            await self.conn.execute(insert(units).values(**_unit_values(stored)))
        except IntegrityError:
            raise Duplicate(unit.name) from None
        await self.conn.execute(insert(rule_sets).values(unit_id=unit.unit_id, revision=0, update_time=now))
        await self.bump_revision()
        return stored

    async def save_unit(self, unit: Unit) -> Unit:
        """Writes a changed unit whose revision is the one read; returns it with the next revision."""
        stored = replace(unit, revision=unit.revision + 1, update_time=_now())
        values = _unit_values(stored)
        del values["create_time"]
        await save_at_revision(
            self.conn,
            units,
            units.c.unit_id == unit.unit_id,
            revision=unit.revision,
            values=values,
            name=unit.name,
        )
        await self.bump_revision()
        return stored

    # ---- officers ----

    async def _officers(self, rows: Sequence[Any]) -> list[Officer]:
        ids = [r.officer_id for r in rows]
        if not ids:
            return []
        languages: dict[str, list[str]] = defaultdict(list)
        specialties: dict[str, list[Specialty]] = defaultdict(list)
        for lang in await self.conn.execute(
            select(officer_languages)
            .where(officer_languages.c.officer_id.in_(ids))
            .order_by(officer_languages.c.officer_id, officer_languages.c.position)
        ):
            languages[lang.officer_id].append(lang.language)
        for spec in await self.conn.execute(
            select(officer_specialties)
            .where(officer_specialties.c.officer_id.in_(ids))
            .order_by(officer_specialties.c.officer_id, officer_specialties.c.position)
        ):
            specialties[spec.officer_id].append(Specialty(spec.specialty))
        return [
            Officer(
                officer_id=r.officer_id,
                unit_id=r.unit_id,
                given_name=r.given_name,
                family_name=r.family_name,
                role=OfficerRole(r.role),
                specialties=tuple(specialties[r.officer_id]),
                languages=tuple(languages[r.officer_id]),
                team=r.team,
                phone=r.phone,
                email=r.email,
                active=r.active,
                caseload=r.caseload,
                revision=r.revision,
                create_time=utc(r.create_time),
                update_time=utc(r.update_time),
            )
            for r in rows
        ]

    async def get_officer(self, officer_id: str) -> Officer | None:
        rows = (await self.conn.execute(select(officers).where(officers.c.officer_id == officer_id))).all()
        found = await self._officers(rows)
        return found[0] if found else None

    async def get_officers(self, officer_ids: Iterable[str]) -> dict[str, Officer]:
        ids = sorted(set(officer_ids))
        if not ids:
            return {}
        rows = (await self.conn.execute(select(officers).where(officers.c.officer_id.in_(ids)))).all()
        return {o.officer_id: o for o in await self._officers(rows)}

    async def officers_of_unit(self, unit_id: str) -> dict[str, Officer]:
        rows = (await self.conn.execute(select(officers).where(officers.c.unit_id == unit_id))).all()
        return {o.officer_id: o for o in await self._officers(rows)}

    async def _write_officer_lists(self, officer: Officer) -> None:
        await self.conn.execute(
            delete(officer_languages).where(officer_languages.c.officer_id == officer.officer_id)
        )
        await self.conn.execute(
            delete(officer_specialties).where(officer_specialties.c.officer_id == officer.officer_id)
        )
        if officer.languages:
            await self.conn.execute(
                insert(officer_languages),
                [
                    {"officer_id": officer.officer_id, "language": lang, "position": i}
                    for i, lang in enumerate(officer.languages)
                ],
            )
        if officer.specialties:
            await self.conn.execute(
                insert(officer_specialties),
                [
                    {"officer_id": officer.officer_id, "specialty": spec.value, "position": i}
                    for i, spec in enumerate(officer.specialties)
                ],
            )

    async def add_officer(self, officer: Officer) -> Officer:
        now = _now()
        stored = replace(officer, revision=1, create_time=now, update_time=now)
        try:
            await self.conn.execute(insert(officers).values(**_officer_values(stored)))
        except IntegrityError:
            raise Duplicate(officer.name) from None
        await self._write_officer_lists(stored)
        await self.bump_revision()
        return stored

    async def save_officer(self, officer: Officer) -> Officer:
        stored = replace(officer, revision=officer.revision + 1, update_time=_now())
        values = _officer_values(stored)
        del values["create_time"]
        await save_at_revision(
            self.conn,
            officers,
            officers.c.officer_id == officer.officer_id,
            revision=officer.revision,
            values=values,
            name=officer.name,
        )
        await self._write_officer_lists(stored)
        await self.bump_revision()
        return stored

    async def officer_is_referenced(self, officer_id: str, *, now: datetime) -> list[str]:
        """Where an officer is still named: rules, and absences not yet over that name them as substitute."""
        found: list[str] = []
        for row in await self.conn.execute(
            select(absences.c.officer_id, absences.c.absence_id).where(
                and_(absences.c.substitute_id == officer_id, absences.c.end_time > utc(now))
            )
        ):
            found.append(f"officers/{row.officer_id}/absences/{row.absence_id} as substitute")
        for row in await self.conn.execute(
            select(assignment_rules.c.unit_id, assignment_rules.c.rule_id).where(
                assignment_rules.c.officer_id == officer_id
            )
        ):
            found.append(f"rule {row.rule_id} of units/{row.unit_id}")
        return found

    # ---- absences ----

    async def add_absence(self, absence: Absence) -> Absence:
        stored = replace(absence, create_time=_now())
        await self.conn.execute(
            insert(absences).values(
                officer_id=stored.officer_id,
                absence_id=stored.absence_id,
                start_time=utc(stored.start),
                end_time=utc(stored.end),
                substitute_id=stored.substitute_id,
                create_time=stored.create_time,
            )
        )
        await self.bump_revision()
        return stored

    async def get_absence(self, officer_id: str, absence_id: str) -> Absence | None:
        row = (
            await self.conn.execute(
                select(absences).where(
                    and_(absences.c.officer_id == officer_id, absences.c.absence_id == absence_id)
                )
            )
        ).first()
        return _absence(row) if row else None

    async def list_absences(self, officer_id: str, *, after: str | None, limit: int) -> list[Absence]:
        query = (
            select(absences)
            .where(absences.c.officer_id == officer_id)
            .order_by(absences.c.absence_id)
            .limit(limit)
        )
        if after:
            query = query.where(absences.c.absence_id > after)
        return [_absence(r) for r in await self.conn.execute(query)]

    async def absences_overlapping(self, officer_id: str, start: datetime, end: datetime) -> list[Absence]:
        rows = await self.conn.execute(
            select(absences).where(
                and_(
                    absences.c.officer_id == officer_id,
                    absences.c.start_time < utc(end),
                    absences.c.end_time > utc(start),
                )
            )
        )
        return [_absence(r) for r in rows]

    async def delete_absence(self, officer_id: str, absence_id: str) -> bool:
        result = await self.conn.execute(
            delete(absences).where(
                and_(absences.c.officer_id == officer_id, absences.c.absence_id == absence_id)
            )
        )
        await self.bump_revision()
        return bool(result.rowcount)

    async def absences_of_unit(self, unit_id: str, *, ending_after: datetime) -> dict[str, list[Absence]]:
        """The unit's absences that end after the moment, by officer, earliest first."""
        return await self._absences_by_officer(
            and_(officers.c.unit_id == unit_id, absences.c.end_time > utc(ending_after))
        )

    async def absences_ending_after(self, moment: datetime) -> dict[str, list[Absence]]:
        """Every unit's absences that end after the moment, by officer, earliest first."""
        return await self._absences_by_officer(absences.c.end_time > utc(moment))

    async def _absences_by_officer(self, condition: Any) -> dict[str, list[Absence]]:
        rows = await self.conn.execute(
            select(absences)
            .join(officers, officers.c.officer_id == absences.c.officer_id)
            .where(condition)
            .order_by(absences.c.start_time)
        )
        found: dict[str, list[Absence]] = defaultdict(list)
        for row in rows:
            found[row.officer_id].append(_absence(row))
        return dict(found)

    # ---- areas and rules ----

    async def get_rule_set(self, unit_id: str) -> RuleSet:
        return (await self.rule_sets_of([unit_id]))[unit_id]

    async def rule_sets_of(self, unit_ids: Sequence[str]) -> dict[str, RuleSet]:
        """The areas and rules of each of these units, in four queries however many units there are; a unit
        without any has an empty rule set."""
        heads = {
            row.unit_id: row
            for row in await self.conn.execute(select(rule_sets).where(rule_sets.c.unit_id.in_(unit_ids)))
        }
        ranges: dict[tuple[str, str], list[PostalCodeRange]] = defaultdict(list)
        for row in await self.conn.execute(
            select(area_postal_ranges)
            .where(area_postal_ranges.c.unit_id.in_(unit_ids))
            .order_by(area_postal_ranges.c.unit_id, area_postal_ranges.c.first)
        ):
            ranges[(row.unit_id, row.area_id)].append(PostalCodeRange(row.first, row.last))
        unit_areas: dict[str, list[Area]] = defaultdict(list)
        for row in await self.conn.execute(
            select(areas).where(areas.c.unit_id.in_(unit_ids)).order_by(areas.c.unit_id, areas.c.position)
        ):
            unit_areas[row.unit_id].append(
                Area(row.area_id, row.display_name, tuple(ranges[(row.unit_id, row.area_id)]))
            )
        rules: dict[str, list[AssignmentRule]] = defaultdict(list)
        for row in await self.conn.execute(
            select(assignment_rules)
            .where(assignment_rules.c.unit_id.in_(unit_ids))
            .order_by(assignment_rules.c.unit_id, assignment_rules.c.position)
        ):
            rules[row.unit_id].append(
                AssignmentRule(
                    rule_id=row.rule_id,
                    area_id=row.area_id,
                    role=OfficerRole(row.role) if row.role else None,
                    first_birth_day=row.first_birth_day,
                    last_birth_day=row.last_birth_day,
                    officer_id=row.officer_id,
                    team=row.team,
                )
            )
        found: dict[str, RuleSet] = {}
        for unit_id in unit_ids:
            head = heads.get(unit_id)
            found[unit_id] = RuleSet(
                unit_id=unit_id,
                areas=tuple(unit_areas[unit_id]),
                rules=tuple(rules[unit_id]),
                revision=head.revision if head else 0,
                update_time=utc(head.update_time) if head else None,
            )
        return found

    async def areas_of_other_units(self, unit_id: str) -> list[tuple[str, Area]]:
        ranges: dict[tuple[str, str], list[PostalCodeRange]] = defaultdict(list)
        for row in await self.conn.execute(
            select(area_postal_ranges).where(area_postal_ranges.c.unit_id != unit_id)
        ):
            ranges[(row.unit_id, row.area_id)].append(PostalCodeRange(row.first, row.last))
        return [(u, Area(a, a, tuple(r))) for (u, a), r in ranges.items()]

    async def unit_of_postal_code(self, postal_code: str) -> str | None:
        row = (
            await self.conn.execute(
                select(area_postal_ranges.c.unit_id)
                .where(
                    and_(area_postal_ranges.c.first <= postal_code, area_postal_ranges.c.last >= postal_code)
                )
                .limit(1)
            )
        ).first()
        return row.unit_id if row else None

    async def save_rule_set(self, rule_set: RuleSet) -> RuleSet:
        """Replaces a unit's areas and rules; the rule set's revision must be the one read."""
        now = _now()
        await save_at_revision(
            self.conn,
            rule_sets,
            rule_sets.c.unit_id == rule_set.unit_id,
            revision=rule_set.revision,
            values={"revision": rule_set.revision + 1, "update_time": now},
            name=rule_set.name,
        )
        await self._write_rule_set(rule_set)
        await self.bump_revision()
        return replace(rule_set, revision=rule_set.revision + 1, update_time=now)

    async def _write_rule_set(self, rule_set: RuleSet) -> None:
        unit_id = rule_set.unit_id
        for table in (assignment_rules, area_postal_ranges, areas):
            await self.conn.execute(delete(table).where(table.c.unit_id == unit_id))
        if rule_set.areas:
            await self.conn.execute(
                insert(areas),
                [
                    {"unit_id": unit_id, "area_id": a.area_id, "display_name": a.display_name, "position": i}
                    for i, a in enumerate(rule_set.areas)
                ],
            )
            postal = [
                {"unit_id": unit_id, "area_id": a.area_id, "first": r.first, "last": r.last}
                for a in rule_set.areas
                for r in a.postal_code_ranges
            ]
            if postal:
                await self.conn.execute(insert(area_postal_ranges), postal)
        if rule_set.rules:
            await self.conn.execute(
                insert(assignment_rules),
                [
                    {
                        "unit_id": unit_id,
                        "rule_id": r.rule_id,
                        "area_id": r.area_id,
                        "role": r.role.value if r.role else None,
                        "first_birth_day": r.first_birth_day,
                        "last_birth_day": r.last_birth_day,
                        "officer_id": r.officer_id,
                        "team": r.team,
                        "position": i,
                    }
                    for i, r in enumerate(rule_set.rules)
                ],
            )

    # ---- the whole directory ----

    async def all_units(self) -> list[Unit]:
        return [_unit(r) for r in await self.conn.execute(select(units).order_by(units.c.unit_id))]

    async def all_officers(self) -> list[Officer]:
        rows = (await self.conn.execute(select(officers).order_by(officers.c.officer_id))).all()
        return await self._officers(rows)

    async def all_absences(self) -> list[Absence]:
        rows = await self.conn.execute(
            select(absences).order_by(absences.c.officer_id, absences.c.absence_id)
        )
        return [_absence(r) for r in rows]

    async def replace_directory(
        self,
        new_units: Sequence[Unit],
        new_officers: Sequence[Officer],
        new_absences: Sequence[Absence],
        new_rule_sets: Sequence[RuleSet],
    ) -> None:
        """Replaces units, officers, absences, areas and rules at once; districts stay."""
        for table in (
            assignment_rules,
            area_postal_ranges,
            areas,
            rule_sets,
            absences,
            officer_languages,
            officer_specialties,
            officers,
            units,
        ):
            await self.conn.execute(delete(table))
        now = _now()
        if new_units:
            await self.conn.execute(
                insert(units),
                [_unit_values(replace(u, revision=1, create_time=now, update_time=now)) for u in new_units],
            )
            await self.conn.execute(
                insert(rule_sets),
                [{"unit_id": u.unit_id, "revision": 1, "update_time": now} for u in new_units],
            )
        if new_officers:
            await self.conn.execute(
                insert(officers),
                [
                    _officer_values(replace(o, revision=1, create_time=now, update_time=now))
                    for o in new_officers
                ],
            )
            languages = [
                {"officer_id": o.officer_id, "language": lang, "position": i}
                for o in new_officers
                for i, lang in enumerate(o.languages)
            ]
            if languages:
                await self.conn.execute(insert(officer_languages), languages)
            specialties = [
                {"officer_id": o.officer_id, "specialty": s.value, "position": i}
                for o in new_officers
                for i, s in enumerate(o.specialties)
            ]
            if specialties:
                await self.conn.execute(insert(officer_specialties), specialties)
        if new_absences:
            await self.conn.execute(
                insert(absences),
                [
                    {
                        "officer_id": a.officer_id,
                        "absence_id": a.absence_id,
                        "start_time": utc(a.start),
                        "end_time": utc(a.end),
                        "substitute_id": a.substitute_id,
                        "create_time": now,
                    }
                    for a in new_absences
                ],
            )
        for rule_set in new_rule_sets:
            await self._write_rule_set(rule_set)
        await self.bump_revision()

    async def revision(self) -> int:
        row = (
            await self.conn.execute(select(directory_revision.c.revision).where(directory_revision.c.id == 1))
        ).first()
        return int(row.revision) if row else 0

    async def bump_revision(self) -> None:
        await self.conn.execute(
            update(directory_revision)
            .where(directory_revision.c.id == 1)
            .values(revision=directory_revision.c.revision + 1)
        )

    async def count(self, table: Table) -> int:
        return int((await self.conn.execute(select(func.count()).select_from(table))).scalar_one())


class Duplicate(Exception):
    """A row with the same key exists (written by a concurrent call after our check)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class DirectoryUnitOfWork(UnitOfWork):
    directory: DirectoryRepository

    def bind(self, conn: AsyncConnection) -> None:
        self.directory = DirectoryRepository(conn)


def unit_of_work_factory(engine: AsyncEngine) -> Callable[..., DirectoryUnitOfWork]:
    def make(
        *, write: bool = True, idempotency: Idempotency | None = None, fence: Fence | None = None
    ) -> DirectoryUnitOfWork:
        return DirectoryUnitOfWork(engine, write=write, idempotency=idempotency, fence=fence)

    return make
