"""The directory's use cases: one transaction each, called by the servicer with parsed values.

Who may call each RPC is declared on the servicer (services.directory.api) and checked before a use case
runs; what a caller may see (direct numbers, a unit's inner details) is decided here.
"""

from services.directory.handlers.directory import (
    ADMINS,
    PUBLIC,
    ROUTERS,
    STAFF,
    Directory,
    OfficerView,
    UnitView,
    officer_view,
)
from services.directory.handlers.officers import (
    create_absence,
    create_officer,
    delete_absence,
    get_officer,
    list_absences,
    search_officers,
    update_officer,
)
from services.directory.handlers.resolving import (
    ResolvedView,
    ResolveQuery,
    resolve_responsible,
)
from services.directory.handlers.rules import (
    get_assignment_rules,
    replace_assignment_rules,
)
from services.directory.handlers.snapshot import (
    MAX_REMEMBERED_ANSWERS,
    SnapshotCache,
)
from services.directory.handlers.transfer import (
    export_directory,
    import_directory,
)
from services.directory.handlers.units import (
    OFFICER_FIELDS,
    UNIT_FIELDS,
    create_unit,
    get_district,
    get_unit,
    list_districts,
    list_units,
    update_unit,
)

__all__ = [
    "ADMINS",
    "MAX_REMEMBERED_ANSWERS",
    "OFFICER_FIELDS",
    "PUBLIC",
    "ROUTERS",
    "STAFF",
    "UNIT_FIELDS",
    "Directory",
    "OfficerView",
    "ResolveQuery",
    "ResolvedView",
    "SnapshotCache",
    "UnitView",
    "create_absence",
    "create_officer",
    "create_unit",
    "delete_absence",
    "export_directory",
    "get_assignment_rules",
    "get_district",
    "get_officer",
    "get_unit",
    "import_directory",
    "list_absences",
    "list_districts",
    "list_units",
    "officer_view",
    "replace_assignment_rules",
    "resolve_responsible",
    "search_officers",
    "update_officer",
    "update_unit",
]
