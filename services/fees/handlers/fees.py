"""What the fees service's use cases share: their dependencies (`Fees`, wired by bootstrap), the day and
month in Stockholm, the mapping of the model's refusals, and the access log of reads."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from services.common.audit import AccessRecord
from services.common.audit_writer import AccessLog
from services.common.auth import Caller
from services.common.business_calendar import to_local
from services.common.errors import FailedPrecondition
from services.common.grants import GrantVerifier
from services.fees.clients import CaseCounts, Mirror
from services.fees.model import BillingError, ParameterError, Parameters
from services.fees.store import FeesUnitOfWork

UowFactory = Callable[..., FeesUnitOfWork]
SERVICE = "fees"


@dataclass
class Fees:
    """What the use cases need, wired by bootstrap: real or fake."""

    uow: UowFactory
    parameters: Parameters
    mirror: Mirror
    case_counts: CaseCounts
    grants: GrantVerifier
    access_log: AccessLog
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Called after a transaction that queued a deferral for the finance system committed.
    deferral_queued: Callable[[], None] = field(default=lambda: None)
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    # How many of the case service's counts a billing run asks for at once (one per earlier month).
    count_concurrency: int = 8

    def today(self) -> date:
        """Today in Stockholm, whose calendar the fee months and bills follow."""
        return to_local(self.clock()).date()

    def current_month(self) -> date:
        return self.today().replace(day=1)


@contextmanager
def figures_in_force() -> Iterator[None]:
    """Turns a figure the parameter files do not hold for the month (or data that cannot make an honest
    bill) into FAILED_PRECONDITION naming the parameter, file and day: the caller asked for nothing wrong,
    the data files must be completed."""
    try:
        yield
    except ParameterError as missing:
        metadata = {"file": missing.file}
        if missing.parameter:
            metadata["parameter"] = missing.parameter
        if missing.on:
            metadata["on"] = missing.on.isoformat()
        raise FailedPrecondition(
            f"the figures for that time are not held: {missing}",
            reason="PARAMETERS_NOT_IN_FORCE",
            metadata=metadata,
        ) from None
    except BillingError as unusable:
        raise FailedPrecondition(str(unusable), reason="BILLING_DATA_UNUSABLE") from None


async def log_read(fees: Fees, caller: Caller, person_number: str, action: str, purpose: str) -> None:
    await fees.access_log.record(
        AccessRecord(
            actor=caller.subject[:255],
            actor_role=caller.primary_role,
            person_number=person_number,
            action=f"{SERVICE}.{action}"[:128],
            purpose=(purpose or "no purpose given")[:255],
            occurred_at=fees.clock(),
        )
    )
