"""What a person does about their own cases: follow them on Mina sidor, and say how satisfied they were."""

from __future__ import annotations

from services.case import model
from services.case.handlers.cases import Cases, log_reads
from services.case.model import Case
from services.common.auth import Caller, Role
from services.common.db import Idempotency
from services.common.errors import InvalidArgument, NotFound, PermissionDenied
from services.common.pagination import PageRequest


async def list_my_cases(*, cases: Cases, caller: Caller, page: PageRequest) -> tuple[list[Case], str]:
    if not caller.person_number:
        raise PermissionDenied("the token names no person", reason="NO_PERSON")
    async with cases.uow(write=False) as uow:
        found = await uow.cases.cases_of(
            caller.person_number, before_id=page.after_int(), limit=page.size + 1
        )
    items = found[: page.size]
    await log_reads(cases, caller, [caller.person_number], "ListMyCases", "Mina sidor")
    return items, page.next_token(items[-1].case_id if items else None, more=len(found) > page.size)


async def record_satisfaction(
    *, cases: Cases, caller: Caller, case_id: int, score: int, idempotency: Idempotency | None = None
) -> Case:
    if not 1 <= score <= 5:
        raise InvalidArgument.field("score", f"must be 1 to 5, got {score}")
    async with cases.uow(idempotency=idempotency) as uow:
        before = await uow.cases.get(case_id, for_update=True)
        if before is None or (
            not caller.has_role(Role.AGENT)
            and (before.person_number is None or before.person_number != caller.person_number)
        ):
            raise NotFound(f"cases/{case_id}")
        after = await uow.cases.save(
            before, model.record_satisfaction(before, score, actor=caller.subject, now=cases.clock())
        )
        await uow.commit(after)
    await log_reads(cases, caller, [after.person_number], "RecordSatisfaction", after.name)
    return after
