"""The case service's store: its tables, the repository and unit of work over them, and the registrar that
stores a new case in one statement. The only package of the service with SQL."""

from services.case.store.registrar import Registrar, registrar
from services.case.store.repository import (
    DIMENSION_COLUMNS,
    MAIL,
    CaseRepository,
    CaseUnitOfWork,
    unit_of_work_factory,
)
from services.case.store.tables import (
    access_log,
    case_events,
    cases,
    consents,
    contacts,
    idempotency_keys,
    leases,
    metadata,
    outbox,
    reference_items,
    shared,
)

__all__ = [
    "DIMENSION_COLUMNS",
    "MAIL",
    "CaseRepository",
    "CaseUnitOfWork",
    "Registrar",
    "access_log",
    "case_events",
    "cases",
    "consents",
    "contacts",
    "idempotency_keys",
    "leases",
    "metadata",
    "outbox",
    "reference_items",
    "registrar",
    "shared",
    "unit_of_work_factory",
]
