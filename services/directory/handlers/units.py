"""Districts and units: read, listed, created and updated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from services.common.auth import Caller
from services.common.db import Idempotency
from services.common.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    quoted,
)
from services.common.etags import check_etag
from services.common.pagination import PageRequest
from services.directory.handlers.directory import Directory, UnitView, _unit_view
from services.directory.model import (
    District,
    Unit,
    raise_if,
    unit_violations,
)
from services.directory.store import DirectoryUnitOfWork, Duplicate

# ---- districts --------------------------------------------------------------------------------------------


async def _follow_successors(uow: DirectoryUnitOfWork, district: District) -> District:
    current = district
    for _ in range(10):
        if current.successor_id is None:
            return current
        successor = await uow.directory.get_district(current.successor_id)
        if successor is None:
            return current
        current = successor
    return current


async def get_district(*, directory: Directory, district_id: str) -> tuple[District, District]:
    name = f"districts/{district_id}"
    async with directory.uow(write=False) as uow:
        district = await uow.directory.get_district(district_id)
        if district is None:
            raise NotFound(name)
        return district, await _follow_successors(uow, district)


async def list_districts(
    *, directory: Directory, page: PageRequest, include_retired: bool
) -> tuple[list[District], str]:
    today = directory.clock().date()
    after = page.after_text()
    async with directory.uow(write=False) as uow:
        found = [
            d
            for d in await uow.directory.list_districts()
            if (include_retired or d.is_current(today)) and (after is None or d.district_id > after)
        ]
    items = found[: page.size]
    return items, page.next_token(items[-1].district_id if items else None, more=len(found) > page.size)


# ---- units ------------------------------------------------------------------------------------------------


async def get_unit(*, directory: Directory, caller: Caller, unit_id: str) -> UnitView:
    async with directory.uow(write=False) as uow:
        unit = await uow.directory.get_unit(unit_id)
    if unit is None:
        raise NotFound(f"units/{unit_id}")
    return _unit_view(directory, caller, unit)


async def list_units(
    *, directory: Directory, caller: Caller, page: PageRequest, district_id: str | None
) -> tuple[list[UnitView], str]:
    async with directory.uow(write=False) as uow:
        if district_id and await uow.directory.get_district(district_id) is None:
            raise NotFound(f"districts/{district_id}")
        found = await uow.directory.list_units(
            district_id=district_id, after=page.after_text(), limit=page.size + 1
        )
    items = found[: page.size]
    return (
        [_unit_view(directory, caller, u) for u in items],
        page.next_token(items[-1].unit_id if items else None, more=len(found) > page.size),
    )


async def create_unit(
    *, directory: Directory, caller: Caller, unit: Unit, idempotency: Idempotency | None = None
) -> UnitView:
    raise_if(unit_violations(unit))
    async with directory.uow(idempotency=idempotency) as uow:
        await _current_district(uow, unit.district_id, directory.clock().date(), "unit.district")
        if await uow.directory.get_unit(unit.unit_id) is not None:
            raise AlreadyExists(f"units/{unit.unit_id} already exists", metadata={"resource": unit.name})
        stored = await _saved(uow.directory.add_unit(unit))
        view = _unit_view(directory, caller, stored)
        await uow.commit(view)
    directory.cache.invalidate()
    return view


UNIT_FIELDS = (
    "display_name",
    "district",
    "mailbox",
    "acute_phone",
    "acute_hours",
    "contact_policy",
    "reception_phone",
    "phone_hours",
    "team_model",
)
OFFICER_FIELDS = (
    "given_name",
    "family_name",
    "unit",
    "role",
    "specialties",
    "languages",
    "team",
    "phone",
    "email",
    "active",
    "caseload",
)


def _apply_mask(current: Any, sent: Any, mask: Sequence[str], allowed: Sequence[str], prefix: str) -> Any:
    fields = list(mask) or list(allowed)
    renames = {"district": "district_id", "unit": "unit_id"}
    changes: dict[str, Any] = {}
    for index, name in enumerate(fields):
        if name not in allowed:
            raise InvalidArgument.field(
                f"update_mask[{index}]",
                f"{quoted(name)} is not a writable field of {prefix}; use one of {', '.join(allowed)}",
            )
        attribute = renames.get(name, name)
        changes[attribute] = getattr(sent, attribute)
    return replace(current, **changes)


async def update_unit(
    *, directory: Directory, caller: Caller, unit: Unit, etag: str, update_mask: Sequence[str]
) -> UnitView:
    async with directory.uow() as uow:
        current = await uow.directory.get_unit(unit.unit_id)
        if current is None:
            raise NotFound(unit.name)
        check_etag(name=current.name, revision=current.revision, sent=etag, field="unit.etag")
        changed = _apply_mask(current, unit, update_mask, UNIT_FIELDS, "unit")
        raise_if(unit_violations(changed))
        if (
            changed.district_id != current.district_id
            and await uow.directory.get_district(changed.district_id) is None
        ):
            raise NotFound(f"districts/{changed.district_id}")
        stored = await _saved(uow.directory.save_unit(changed))
        await uow.commit()
    directory.cache.invalidate()
    return _unit_view(directory, caller, stored)


async def _saved(write: Any) -> Any:
    try:
        return await write
    except Duplicate as duplicate:
        raise AlreadyExists(
            f"{duplicate.name} already exists", metadata={"resource": duplicate.name}
        ) from None


async def _current_district(uow: DirectoryUnitOfWork, district_id: str, today: Any, field_name: str) -> None:
    """Units belong to current districts: a retired one is refused naming its successor."""
    district = await uow.directory.get_district(district_id)
    if district is None:
        raise NotFound(f"districts/{district_id}")
    if not district.is_current(today):
        successor = f"; use districts/{district.successor_id}" if district.successor_id else ""
        raise InvalidArgument.field(field_name, f"{district.name} is retired{successor}")
