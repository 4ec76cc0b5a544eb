"""The case service's use cases: one transaction each, called by the servicer with parsed values.

Who may call each RPC is declared on the servicer (services.case.api) and checked before a use case runs;
what depends on the data (a unit's own cases, a citizen's own) is checked here, before anything of the
case is shown, and with one answer whether the case exists or not.
"""

from services.case.handlers.cases import Cases, ReferenceCache, reference_items
from services.case.handlers.citizen import list_my_cases, record_satisfaction
from services.case.handlers.consent import GrantedConsent, record_consent, revoke_consent
from services.case.handlers.forwarding import forward_case
from services.case.handlers.registering import (
    add_contact,
    create_case,
    find_open_cases,
    get_case,
    list_reference_data,
    reopen_case,
    resolve_case,
)
from services.case.handlers.statistics import case_statistics, count_billable_contacts
from services.case.handlers.unit_side import (
    acknowledge_case,
    assign_case,
    escalate_overdue,
    list_overdue_cases,
    list_unit_queue,
    record_feedback,
    return_case,
)

__all__ = [
    "Cases",
    "GrantedConsent",
    "ReferenceCache",
    "acknowledge_case",
    "add_contact",
    "assign_case",
    "case_statistics",
    "count_billable_contacts",
    "create_case",
    "escalate_overdue",
    "find_open_cases",
    "forward_case",
    "get_case",
    "list_my_cases",
    "list_overdue_cases",
    "list_reference_data",
    "list_unit_queue",
    "record_consent",
    "record_feedback",
    "record_satisfaction",
    "reference_items",
    "reopen_case",
    "resolve_case",
    "return_case",
    "revoke_consent",
]
