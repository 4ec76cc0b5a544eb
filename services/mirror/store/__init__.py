"""The mirror's store: its tables, and the repository and unit of work over them; the only SQL of the
service."""

from services.mirror.store.repository import (
    HeldSweep,
    MirrorRepository,
    MirrorUnitOfWork,
    Quarantined,
    SourceRow,
    StoredPerson,
    unit_of_work_factory,
)
from services.mirror.store.tables import (
    access_log,
    agreements,
    held_sweeps,
    invoices,
    metadata,
    person_records,
    quarantine,
    shared,
    sources,
)

__all__ = [
    "HeldSweep",
    "MirrorRepository",
    "MirrorUnitOfWork",
    "Quarantined",
    "SourceRow",
    "StoredPerson",
    "access_log",
    "agreements",
    "held_sweeps",
    "invoices",
    "metadata",
    "person_records",
    "quarantine",
    "shared",
    "sources",
    "unit_of_work_factory",
]
