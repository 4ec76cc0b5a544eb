"""A unit's areas and assignment rules, replaced as a whole."""

from __future__ import annotations

from dataclasses import replace

from services.common.db import Idempotency
from services.common.errors import (
    NotFound,
)
from services.common.etags import check_etag
from services.directory.handlers.directory import Directory
from services.directory.handlers.units import _saved
from services.directory.model import (
    RuleSet,
    raise_if,
    rule_set_violations,
)

# ---- assignment rules -------------------------------------------------------------------------------------


async def get_assignment_rules(*, directory: Directory, unit_id: str) -> RuleSet:
    async with directory.uow(write=False) as uow:
        if await uow.directory.get_unit(unit_id) is None:
            raise NotFound(f"units/{unit_id}")
        return await uow.directory.get_rule_set(unit_id)


async def replace_assignment_rules(
    *,
    directory: Directory,
    rule_set: RuleSet,
    etag: str,
    idempotency: Idempotency | None = None,
) -> RuleSet:
    async with directory.uow(idempotency=idempotency) as uow:
        if await uow.directory.get_unit(rule_set.unit_id) is None:
            raise NotFound(f"units/{rule_set.unit_id}")
        current = await uow.directory.get_rule_set(rule_set.unit_id)
        check_etag(name=current.name, revision=current.revision, sent=etag, field="rule_set.etag")
        officers = await uow.directory.officers_of_unit(rule_set.unit_id)
        raise_if(
            rule_set_violations(
                rule_set,
                officers=officers,
                other_units_areas=await uow.directory.areas_of_other_units(rule_set.unit_id),
            )
        )
        stored: RuleSet = await _saved(
            uow.directory.save_rule_set(replace(rule_set, revision=current.revision))
        )
        await uow.commit(stored)
    directory.cache.invalidate()
    return stored
