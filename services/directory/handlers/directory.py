"""What the directory's use cases share: their dependencies (`Directory`, wired by bootstrap) and what a
caller may see of a unit or an officer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from services.common.audit_writer import AccessLog
from services.common.auth import Caller, Role
from services.directory.handlers.snapshot import SnapshotCache, UowFactory
from services.directory.model import (
    ContactRoute,
    Officer,
    Unit,
    may_see_direct_numbers,
    public_route,
)

SERVICE = "directory"

STAFF = (
    Role.AGENT,
    Role.OFFICER,
    Role.UNIT_MANAGER,
    Role.DIRECTORY_ADMIN,
    Role.AUDITOR,
    Role.FINANCE,
    Role.SERVICE,
)
ROUTERS = (Role.AGENT, Role.OFFICER, Role.UNIT_MANAGER, Role.DIRECTORY_ADMIN, Role.SERVICE)
ADMINS = (Role.DIRECTORY_ADMIN,)
PUBLIC = (*STAFF, Role.CITIZEN)


@dataclass
class Directory:
    """What the use cases need, wired by bootstrap: real or fake."""

    uow: UowFactory
    access_log: AccessLog
    contact_center_phone: str
    cache: SnapshotCache = field(default_factory=SnapshotCache)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


# ---- views: what a caller may see -------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitView:
    unit: Unit
    route: ContactRoute
    public_only: bool


@dataclass(frozen=True)
class OfficerView:
    officer: Officer
    phone_withheld: bool


def _unit_view(directory: Directory, caller: Caller, unit: Unit) -> UnitView:
    return UnitView(
        unit=unit,
        route=public_route(unit, directory.contact_center_phone),
        public_only=not caller.has_role(*STAFF),
    )


def officer_view(caller: Caller, officer: Officer, unit: Unit | None) -> OfficerView:
    if unit is None or not officer.phone:
        return OfficerView(officer, phone_withheld=False)
    allowed = may_see_direct_numbers(
        unit=unit, caller_unit_id=caller.unit_id, is_admin=caller.has_role(Role.DIRECTORY_ADMIN)
    )
    if allowed:
        return OfficerView(officer, phone_withheld=False)
    return OfficerView(replace(officer, phone=""), phone_withheld=True)
