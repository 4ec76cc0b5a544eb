"""The directory's store: its tables, and the repository and unit of work over them."""

from services.directory.store.repository import (
    DirectoryRepository,
    DirectoryUnitOfWork,
    Duplicate,
    OfficerQuery,
    unit_of_work_factory,
)
from services.directory.store.tables import (
    absences,
    access_log,
    area_postal_ranges,
    areas,
    assignment_rules,
    directory_revision,
    districts,
    idempotency_keys,
    metadata,
    officer_languages,
    officer_specialties,
    officers,
    rule_sets,
    shared,
    units,
)

__all__ = [
    "DirectoryRepository",
    "DirectoryUnitOfWork",
    "Duplicate",
    "OfficerQuery",
    "absences",
    "access_log",
    "area_postal_ranges",
    "areas",
    "assignment_rules",
    "directory_revision",
    "districts",
    "idempotency_keys",
    "metadata",
    "officer_languages",
    "officer_specialties",
    "officers",
    "rule_sets",
    "shared",
    "unit_of_work_factory",
    "units",
]
