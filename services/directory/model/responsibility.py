"""Who is responsible for a person within a unit: the named officer, an assignment rule, a specialist or
the intake, with the substitute standing in for an absent officer; and who may see direct numbers."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.common.errors import FailedPrecondition, NotFound
from services.directory.model.directory import (
    Absence,
    Area,
    ContactPolicy,
    Decision,
    District,
    Officer,
    OfficerRole,
    PostalCodeRange,
    RuleSet,
    Specialty,
    Unit,
)

# ---- who is responsible ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Responsible:
    """The answer of ResolveResponsible."""

    unit: Unit
    district: District
    decision: Decision
    officer: Officer | None = None
    absent_officer: Officer | None = None
    team: str = ""
    team_members: tuple[Officer, ...] = ()
    rule_id: str = ""
    area_id: str = ""


@dataclass
class UnitSnapshot:
    """What resolving needs of one unit, read in one go."""

    unit: Unit
    rule_set: RuleSet
    officers: dict[str, Officer] = field(default_factory=dict)
    absences: dict[str, list[Absence]] = field(default_factory=dict)
    # The unit's active managers, to whom overdue cases escalate.
    managers: tuple[Officer, ...] = ()
    _bounds: list[datetime] | None = field(default=None, init=False, repr=False, compare=False)

    def absence_of(self, officer_id: str, at: datetime) -> Absence | None:
        return next((a for a in self.absences.get(officer_id, []) if a.covers(at)), None)

    def period_of(self, at: datetime) -> int:
        """The stretch of time between two absence boundaries that `at` falls in.

        Absences cover [start, end), so at any two moments of one stretch the same officers are away:
        whatever depends on time alone answers the same within it.
        """
        if self._bounds is None:
            self._bounds = sorted(
                {t for spans in self.absences.values() for a in spans for t in (a.start, a.end)}
            )
        return bisect.bisect_right(self._bounds, at)


MAX_SUBSTITUTE_HOPS = 5


def present_stand_in(
    snapshot: UnitSnapshot, officer: Officer, at: datetime
) -> tuple[Officer | None, Officer | None]:
    """The officer to name and the absent one they stand in for; follows substitutes of substitutes."""
    current = officer
    for _ in range(MAX_SUBSTITUTE_HOPS):
        absence = snapshot.absence_of(current.officer_id, at)
        if absence is None and current.active:
            return current, (officer if current is not officer else None)
        next_id = absence.substitute_id if absence else None
        substitute = snapshot.officers.get(next_id) if next_id else None
        if substitute is None:
            return None, officer
        current = substitute
    return None, officer


def resolve_in_unit(
    snapshot: UnitSnapshot,
    *,
    district: District,
    birth_day: int | None,
    postal_code: str | None,
    need_role: OfficerRole | None,
    need_specialty: Specialty | None,
    named_officer: Officer | None,
    at: datetime,
) -> Responsible:
    """Named officer first, then the unit's rules for the need, then a specialist, then the unit's intake."""
    base = Responsible(unit=snapshot.unit, district=district, decision=Decision.UNIT_INTAKE)
    area = snapshot.rule_set.area_of(postal_code) if postal_code else None
    if area is None and len(snapshot.rule_set.areas) == 1:
        area = snapshot.rule_set.areas[0]
    if area is not None:
        base = replace(base, area_id=area.area_id)

    if named_officer is not None and named_officer.unit_id == snapshot.unit.unit_id:
        present, absent = present_stand_in(snapshot, named_officer, at)
        if present is not None:
            return replace(base, decision=Decision.NAMED_OFFICER, officer=present, absent_officer=absent)

    if area is not None and need_specialty is None and birth_day is not None:
        rule = snapshot.rule_set.rule_for(area.area_id, need_role, birth_day)
        if rule is not None:
            decided = replace(base, decision=Decision.ASSIGNMENT_RULE, rule_id=rule.rule_id)
            if rule.team is not None:
                members = tuple(
                    sorted(
                        (
                            o
                            for o in snapshot.officers.values()
                            if o.team == rule.team
                            and o.active
                            and snapshot.absence_of(o.officer_id, at) is None
                        ),
                        key=lambda o: o.officer_id,
                    )
                )
                return replace(decided, team=rule.team, team_members=members)
            ruled = snapshot.officers.get(rule.officer_id or "")
            if ruled is not None:
                present, absent = present_stand_in(snapshot, ruled, at)
                if present is not None:
                    return replace(decided, officer=present, absent_officer=absent)
                return replace(base, absent_officer=absent)

    if need_role is not None or need_specialty is not None:
        candidates = [
            o
            for o in snapshot.officers.values()
            if o.active
            and (need_role is None or o.role is need_role)
            and (need_specialty is None or need_specialty in o.specialties)
            and snapshot.absence_of(o.officer_id, at) is None
        ]
        if candidates:
            chosen = min(candidates, key=lambda o: (o.caseload, o.officer_id))
            return replace(base, decision=Decision.SPECIALIST, officer=chosen)
    return base


def may_see_direct_numbers(*, unit: Unit, caller_unit_id: str | None, is_admin: bool) -> bool:
    """Direct numbers of a unit reached only through Äldre direkt stay with its own staff and the admins."""
    if unit.contact_policy is not ContactPolicy.CONTACT_CENTER_ONLY:
        return True
    return is_admin or caller_unit_id == unit.unit_id


MAX_SUCCESSOR_HOPS = 10
NEAREST_AREAS_NAMED = 3


def current_district(districts: Mapping[str, District], district: District) -> District:
    """A retired district's successor (followed as far as it goes), or the district itself."""
    for _ in range(MAX_SUCCESSOR_HOPS):
        if district.successor_id is None or district.successor_id not in districts:
            break
        district = districts[district.successor_id]
    return district


def nearest_areas(
    units: Iterable[UnitSnapshot], postal_code: str
) -> list[tuple[PostalCodeRange, Area, Unit]]:
    """The covered postal-code ranges closest to a code that no area covers, nearest first."""
    code = int(postal_code)
    found = []
    for snapshot in units:
        for area in snapshot.rule_set.areas:
            for span in area.postal_code_ranges:
                first, last = int(span.first), int(span.last)
                distance = first - code if code < first else code - last
                found.append((distance, span.first, span, area, snapshot.unit))
    found.sort(key=lambda item: (item[0], item[1]))
    return [(span, area, unit) for _, _, span, area, unit in found[:NEAREST_AREAS_NAMED]]


def uncovered_postal_code(units: Iterable[UnitSnapshot], postal_code: str) -> NotFound:
    near = nearest_areas(units, postal_code)
    hint = "; ".join(
        f"{span.first}–{span.last} ({area.display_name or area.area_id}, {unit.name})"
        for span, area, unit in near
    )
    message = f"no unit's area covers postal code {postal_code}"
    if hint:
        message += f"; the nearest covered postal codes are {hint}"
    message += (
        ". Give the person's district or named officer instead; GetAssignmentRules lists each unit's areas"
    )
    return NotFound(f"postal code {postal_code}", message=message)


def find_unit(
    *,
    units: Mapping[str, UnitSnapshot],
    districts: Mapping[str, District],
    officer_units: Mapping[str, str],
    district_id: str | None,
    postal_code: str | None,
    named_id: str | None,
) -> UnitSnapshot:
    """The unit that answers for a person: the named officer's, else the one whose area has the postal code
    (in the district, when one is given), else the district's first unit; a retired district stands for
    its successor."""
    district: District | None = None
    if district_id is not None:
        found = districts.get(district_id)
        if found is None:
            raise NotFound(f"districts/{district_id}")
        district = current_district(districts, found)
    if named_id is not None:
        unit_of_named = officer_units.get(named_id)
        if unit_of_named is None:
            raise NotFound(f"officers/{named_id}")
        return units[unit_of_named]
    by_postal = next(
        (s for s in units.values() if postal_code and s.rule_set.area_of(postal_code) is not None), None
    )
    if district is None:
        if by_postal is None:
            assert postal_code is not None
            raise uncovered_postal_code(units.values(), postal_code)
        return by_postal
    if by_postal is not None and by_postal.unit.district_id == district.district_id:
        return by_postal
    in_district = sorted(
        (s for s in units.values() if s.unit.district_id == district.district_id),
        key=lambda s: s.unit.unit_id,
    )
    if not in_district:
        raise FailedPrecondition(f"{district.name} has no elderly-care unit", reason="NO_UNIT")
    return in_district[0]
