"""The tables every service has beside its own: the access log, idempotency keys, the outbox and leases.

A service's store adds them to its metadata with `shared_tables(metadata)`; its migrations create them with
the functions of `services.common.shared_migrations`, so no service copies their definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import MetaData, Table

from services.common.audit import AccessLogTables, access_log_tables
from services.common.idempotency import add_idempotency_table
from services.common.leases import add_lease_table
from services.common.outbox import add_outbox_table


@dataclass(frozen=True)
class SharedTables:
    access_log: AccessLogTables
    idempotency_keys: Table
    outbox: Table
    leases: Table


def shared_tables(metadata: MetaData) -> SharedTables:
    return SharedTables(
        access_log=access_log_tables(metadata),
        idempotency_keys=add_idempotency_table(metadata),
        outbox=add_outbox_table(metadata),
        leases=add_lease_table(metadata),
    )
