"""The fees service's store: its tables, and the repository and unit of work over them; the only SQL of the
service."""

from services.fees.store.repository import DEFERRAL, FeesRepository, FeesUnitOfWork, unit_of_work_factory
from services.fees.store.tables import (
    access_log,
    bill_issuing,
    bill_lines,
    bills,
    call_counts,
    deferrals,
    leases,
    metadata,
    outbox,
    shared,
)

__all__ = [
    "DEFERRAL",
    "FeesRepository",
    "FeesUnitOfWork",
    "access_log",
    "bill_issuing",
    "bill_lines",
    "bills",
    "call_counts",
    "deferrals",
    "leases",
    "metadata",
    "outbox",
    "shared",
    "unit_of_work_factory",
]
