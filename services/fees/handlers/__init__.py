"""The fees service's use cases, called by the servicer with parsed values.

Who may call each RPC is declared on the servicer (services.fees.api) and checked before a use case runs;
what depends on the data (the grant's person, a citizen's own) is checked here, before anything of a
person is shown, and with one answer whether what was asked for exists or not.
"""

from services.fees.handlers.billing import bill_districts, get_bill, has_ended
from services.fees.handlers.calculation import (
    PersonFee,
    calculate_care_fee,
    calculate_what_if,
    effective_month_of,
    fee_parameters,
)
from services.fees.handlers.deferrals import (
    check_replayed_deferral,
    deferral_to_send,
    get_deferral,
    record_finance_answer,
    request_deferral,
)
from services.fees.handlers.fees import Fees, log_read

__all__ = [
    "Fees",
    "PersonFee",
    "bill_districts",
    "calculate_care_fee",
    "calculate_what_if",
    "check_replayed_deferral",
    "deferral_to_send",
    "effective_month_of",
    "fee_parameters",
    "get_bill",
    "get_deferral",
    "has_ended",
    "log_read",
    "record_finance_answer",
    "request_deferral",
]
