"""What the case service's use cases share: their dependencies (`Cases`, wired by bootstrap), the
reference data, loading a case, who of a unit may act on it, and the access log of the reads."""

from __future__ import annotations

import time as clock_time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.case.clients import CareSystem, Directory
from services.case.model import Case, ReferenceItem
from services.case.store import CaseUnitOfWork, Registrar
from services.common.audit import AccessRecord
from services.common.audit_writer import AccessLog
from services.common.auth import Caller, Role
from services.common.db import Idempotency
from services.common.errors import NotFound, PermissionDenied
from services.common.grants import GrantIssuer

UowFactory = Callable[..., CaseUnitOfWork]
SERVICE = "case"
UNIT_STAFF = (Role.OFFICER, Role.UNIT_MANAGER)


@dataclass
class ReferenceCache:
    """Categories, case types and classes change only by migration; every CreateCase needs them."""

    max_age: float = 60.0
    items: list[ReferenceItem] | None = None
    loaded_at: float = 0.0


@dataclass
class Cases:
    """What the use cases need, wired by bootstrap: real or fake."""

    uow: UowFactory
    # Stores a newly registered case (store.registrar): the commonest write has a path of its own.
    register: Registrar
    access_log: AccessLog
    directory: Directory
    grants: GrantIssuer
    grant_jwks: str
    message_domain: str = "aldredirekt.stockholm.se"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    reference: ReferenceCache = field(default_factory=ReferenceCache)
    # Called after a transaction that queued mail committed, so the outbox is sent without waiting.
    mail_queued: Callable[[], None] = field(default=lambda: None)
    # The districts' care systems, through the mirror: who is named responsible for a person.
    care_system: CareSystem | None = None


async def reference_items(cases: Cases) -> list[ReferenceItem]:
    cache = cases.reference
    if cache.items is None or clock_time.monotonic() - cache.loaded_at > cache.max_age:
        async with cases.uow(write=False) as uow:
            cache.items = await uow.cases.reference_items()
        cache.loaded_at = clock_time.monotonic()
    return cache.items


async def log_reads(
    cases: Cases, caller: Caller, people: Iterable[str | None], action: str, purpose: str
) -> None:
    """Appends one access-log entry per person whose data the caller is about to be shown."""
    now = cases.clock()
    role = caller.primary_role
    # All at once, so that a page of fifty people costs one access-log commit, not fifty.
    await cases.access_log.record(
        *(
            AccessRecord(
                actor=caller.subject,
                actor_role=role,
                person_number=person,
                action=f"case.{action}",
                purpose=purpose,
                occurred_at=now,
            )
            for person in dict.fromkeys(p for p in people if p)
        )
    )


async def load_for_update(uow: CaseUnitOfWork, case_id: int) -> Case:
    case = await uow.cases.get(case_id, for_update=True)
    if case is None:
        raise NotFound(f"cases/{case_id}")
    return case


def acts_as_unit_staff(caller: Caller) -> bool:
    """A unit's staff see the cases of their unit only; an agent in the same token sees them all."""
    return caller.has_role(*UNIT_STAFF) and not caller.has_role(Role.AGENT)


def not_with_your_unit(case_id: int) -> PermissionDenied:
    """The one answer a unit's staff get for a case that is not theirs, whether it exists or not, so that
    case numbers cannot be probed (AIP-211)."""
    name = f"cases/{case_id}"
    return PermissionDenied(f"{name} is not with your unit", reason="OTHER_UNIT", metadata={"case": name})


def check_unit_staff(caller: Caller, case_id: int, case: Case | None) -> Case:
    """The case, when it is with the caller's unit; the same refusal when it is elsewhere or nowhere."""
    if case is None or case.unit_id is None or caller.unit_id != case.unit_id:
        raise not_with_your_unit(case_id)
    return case


async def transition(
    cases: Cases,
    caller: Caller,
    case_id: int,
    change: Callable[[Case, datetime], Case],
    action: str,
    idempotency: Idempotency | None,
    *,
    unit_staff: bool = False,
) -> Case:
    """Loads a case for update, checks who may change it, applies one transition of the model, stores the
    result, and logs the read of the person's data the answer shows."""
    async with cases.uow(idempotency=idempotency) as uow:
        before = await uow.cases.get(case_id, for_update=True)
        if unit_staff:
            before = check_unit_staff(caller, case_id, before)
        elif before is None:
            raise NotFound(f"cases/{case_id}")
        after = await uow.cases.save(before, change(before, cases.clock()))
        await uow.commit(after)
    await log_reads(cases, caller, [after.person_number], action, after.name)
    return after
