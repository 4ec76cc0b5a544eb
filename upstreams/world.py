"""Everything the stand-ins hold while they run: one instance per system, each with its store, knobs and
request counts, over the data generated for the synthetic city.

An instance keeps its own listener in step with its `down` knob and releases the requests its `hang` knob
holds; the HTTP side (`upstreams.server`) gives it the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo

from synthcity.care import (
    CareCity,
    CareRecord,
    Drafter,
    Invoice,
    from_microseconds,
    paused_collection,
    to_microseconds,
)
from synthcity.city import DISTRICTS
from upstreams.credentials import AGRESSO, paraply_instance
from upstreams.knobs import Knobs
from upstreams.store import Clock, Entry, Store, Versioned
from upstreams.wire import (
    INVOICE_MALFORMATIONS,
    PERSON_MALFORMATIONS,
    invoice_document,
    malformation_for,
    person_document,
)

__all__ = ["AgressoInstance", "Instance", "ParaplyInstance", "Stats", "World", "build_world"]

STOCKHOLM = ZoneInfo("Europe/Stockholm")
R = TypeVar("R", bound=Versioned)


class Listening(Protocol):
    """What an instance needs of its HTTP listener."""

    @property
    def serving(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Stats:
    # (route, status) → requests; status 0 for a request never answered (held by `hang`).
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"path": path, "status": status, "count": count}
            for (path, status), count in sorted(self.requests.items())
        ]


class Instance(Generic[R]):
    """One system's stand-in: Agresso, or one district's Paraply."""

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        district_id: str,
        store: Store[R],
        defaults: Knobs,
        seed: int,
        malformations: tuple[str, ...],
    ) -> None:
        self.name = name
        self.kind = kind
        self.district_id = district_id
        self.store = store
        self.defaults = defaults
        self.knobs = defaults.copy()
        self.knobs.watch(self._knob_changed)
        self.seed = seed
        self.malformations = malformations
        self.stats = Stats()
        # Faults are drawn from the instance's own generator, so that a run's faults depend only on the
        # seed and the order of requests.
        self.faults = random.Random(f"faults:{seed}:{name}")
        self.listener: Listening | None = None
        self._released = asyncio.Event()
        self._released.set()
        # Set whenever a knob changes, for whoever waits on one (the mutator on its rate).
        self.changed = asyncio.Event()
        self._stopping = False
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def restart(self) -> None:
        """As just started: default knobs, no counts, faults drawn from the start again."""
        self.knobs.reset(self.defaults)
        self.stats = Stats()
        self.faults = random.Random(f"faults:{self.seed}:{self.name}")

    # ---- knobs ----

    def _knob_changed(self, name: str) -> None:
        self.changed.set()
        if name == "hang" and not self.knobs.hang:
            self._released.set()
        elif name == "hang" and self._released.is_set():
            # A fresh event for the requests held from now on; setting hang again keeps holding the same.
            self._released = asyncio.Event()
        if name == "down":
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                # Outside the event loop; the next `settle()` catches up.
                return
            task = loop.create_task(self.settle())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Brings the listener in line with the `down` knob: closed while down, open otherwise."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            listener = self.listener
            if listener is None:
                return
            if self.knobs.down and listener.serving:
                # A held request must not keep the listener from closing.
                self._released.set()
                await listener.stop()
                if self.knobs.hang and self._released.is_set():
                    self._released = asyncio.Event()
            elif not self.knobs.down and not listener.serving and not self._stopping:
                await listener.start()

    async def held(self) -> None:
        """Waits for as long as the `hang` knob holds requests."""
        if self.knobs.hang and not self._stopping:
            await self._released.wait()

    async def close(self) -> None:
        self._stopping = True
        self._released.set()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.listener is not None and self.listener.serving:
                await self.listener.stop()

    # ---- records ----

    def malformation(self, entry: Entry[R]) -> str:
        """How the version is broken when served now: as stored, or as the malformed_rate knob draws it."""
        if entry.malformed:
            return entry.malformed
        rate = self.knobs.malformed_rate
        return malformation_for(entry.record.record_id, entry.updated_us, self.seed, rate, self.malformations)


ParaplyInstance = Instance[CareRecord]


@dataclass
class DeferralDesk:
    """Agresso's deferrals: the answer given for each idempotency key, and which invoices are deferred."""

    # Idempotency key → (the request's fingerprint, the answer).
    answers: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    deferred: set[str] = field(default_factory=set)
    issued: int = 0


class AgressoInstance(Instance[Invoice]):
    def __init__(self, **arguments: Any) -> None:
        super().__init__(**arguments)
        self.deferrals = DeferralDesk()

    def restart(self) -> None:
        super().restart()
        self.deferrals = DeferralDesk()


@dataclass
class Numbering:
    """Agresso's counters, continued from the generated invoices."""

    serial: int
    customers: int
    vouchers: dict[str, int]
    references: dict[int, int]


class World:
    def __init__(
        self,
        *,
        care: CareCity,
        clock: Clock,
        seed: int,
        agresso: AgressoInstance,
        paraply: dict[str, ParaplyInstance],
    ) -> None:
        self.care = care
        self.clock = clock
        self.seed = seed
        self.agresso = agresso
        self.paraply = paraply
        self.instances: dict[str, Instance[Any]] = {agresso.name: agresso}
        self.instances.update({instance.name: instance for instance in paraply.values()})
        self._begin()

    def _begin(self) -> None:
        care = self.care
        # Changes while running draw from their own generator, apart from the one that made the data.
        self.rng = random.Random(f"changes:{self.seed}")
        self.drafter = Drafter(care.city, self.rng, providers=care.providers)
        for district_id, instance in self.paraply.items():
            self.drafter.follow(district_id, instance.store.all_ids())
        self.person_numbers = {person.person_number for person in care.people}
        generated = care.numbering
        self.numbering = Numbering(
            serial=generated.serial,
            customers=generated.customers,
            vouchers=dict(generated.vouchers),
            references=dict(generated.references),
        )

    def reset(self) -> None:
        """Back to the generated data, as if just started: fresh stores, default knobs, no counts and no
        deferrals. The clock runs on, so what changes next still sorts after everything served before.

        Call `Instance.settle()` after it to reopen a listener a `down` knob had closed.
        """
        with paused_collection():
            self.agresso.store = _invoice_store(self.care, self.clock)
            for district_id, instance in self.paraply.items():
                instance.store = _record_store(self.care, district_id, self.clock)
        for instance in self.instances.values():
            instance.restart()
        self._begin()

    def now(self) -> datetime:
        return from_microseconds(self.clock.now_us())

    def today(self) -> date:
        """The day in Stockholm by the stand-ins' clock: what ends a decision or makes an invoice overdue."""
        return self.now().astimezone(STOCKHOLM).date()

    def instance(self, name: str) -> Instance[Any] | None:
        return self.instances.get(name)

    def records_of_person(self, person_number: str) -> list[tuple[ParaplyInstance, CareRecord]]:
        found = []
        for instance in self.paraply.values():
            for entry in instance.store.find("person_number", person_number):
                found.append((instance, entry.record))
        return found


def _stamp_record(record: CareRecord, moment: datetime) -> CareRecord:
    return dataclasses.replace(record, updated_at=moment)


def _stamp_invoice(invoice: Invoice, moment: datetime) -> Invoice:
    return dataclasses.replace(invoice, updated_at=moment)


def build_world(
    care: CareCity,
    *,
    seed: int,
    changes_per_second: float,
    late_commit_seconds: float,
    clock: Clock | None = None,
) -> World:
    """Stores filled with `care`'s records; `changes_per_second` is the whole city's, shared evenly."""
    with paused_collection():
        return _build_world(
            care,
            seed=seed,
            changes_per_second=changes_per_second,
            late_commit_seconds=late_commit_seconds,
            clock=clock,
        )


def _build_world(
    care: CareCity, *, seed: int, changes_per_second: float, late_commit_seconds: float, clock: Clock | None
) -> World:
    clock = clock or Clock(not_before_us=to_microseconds(care.as_of))
    share = changes_per_second / (len(DISTRICTS) + 1)

    def defaults() -> Knobs:
        return Knobs(changes_per_second=share, late_commit_seconds=late_commit_seconds)

    invoices = _invoice_store(care, clock)
    agresso = AgressoInstance(
        name=AGRESSO,
        kind="agresso",
        district_id="",
        store=invoices,
        defaults=defaults(),
        seed=seed,
        malformations=INVOICE_MALFORMATIONS,
    )
    paraply: dict[str, ParaplyInstance] = {}
    for district in DISTRICTS:
        records = _record_store(care, district.district_id, clock)
        paraply[district.district_id] = Instance(
            name=paraply_instance(district.district_id),
            kind="paraply",
            district_id=district.district_id,
            store=records,
            defaults=defaults(),
            seed=seed,
            malformations=PERSON_MALFORMATIONS,
        )
    return World(care=care, clock=clock, seed=seed, agresso=agresso, paraply=paraply)


def _invoice_store(care: CareCity, clock: Clock) -> Store[Invoice]:
    invoices: Store[Invoice] = Store(
        render=invoice_document,
        stamp=_stamp_invoice,
        indexes={"person_number": _invoice_person_number, "ocr": _ocr_of, "invoice_ref": _reference_of},
        clock=clock,
    )
    invoices.load(care.invoices)
    return invoices


def _record_store(care: CareCity, district_id: str, clock: Clock) -> Store[CareRecord]:
    records: Store[CareRecord] = Store(
        render=person_document,
        stamp=_stamp_record,
        indexes={"person_number": _record_person_number},
        clock=clock,
    )
    records.load(care.records_of(district_id))
    return records


def _record_person_number(record: CareRecord) -> str:
    return record.person_number


def _invoice_person_number(invoice: Invoice) -> str:
    return invoice.person_number


def _ocr_of(invoice: Invoice) -> str:
    return invoice.ocr


def _reference_of(invoice: Invoice) -> str:
    return invoice.invoice_ref
