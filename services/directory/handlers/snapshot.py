"""The directory's copy in memory: the units with their rules, officers and absences, read once and kept
while the directory is unchanged, and the answers of ResolveResponsible for that copy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.directory.model import (
    District,
    Officer,
    OfficerRole,
    UnitSnapshot,
)
from services.directory.store import DirectoryUnitOfWork

if TYPE_CHECKING:
    from services.directory.handlers.resolving import ResolvedView

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
