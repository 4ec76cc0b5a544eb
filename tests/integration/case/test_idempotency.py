"""Commands retried with the same request_id: the first answer comes back and nothing more is written; the
same request_id with another payload is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aldredirekt.case.v1 import case_pb2 as pb
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case import handlers
from services.case.api.mapping import case_message
from services.case.handlers import Cases
from services.case.model import Case
from services.common.db import Idempotency
from services.common.errors import AlreadyExists
from services.common.idempotency import Replayed, request_key
from tests.integration.case.support import register, row_counts
from tests.unit.case.builders import AGENT, ASTRID, FakeDirectory, contact, new_case


def idempotency_of(
    method: str, request: pb.CreateCaseRequest | pb.ForwardCaseRequest, encode: Callable[[Any], bytes]
) -> Idempotency:
    key = request_key(method, AGENT.idempotency_scope, request)
    assert key is not None
    return Idempotency(key, encode=encode)


def create_request(summary: str) -> pb.CreateCaseRequest:
    return pb.CreateCaseRequest(
        case=pb.Case(person_number=ASTRID), contact=pb.Contact(summary=summary), request_id="create-1"
    )


async def create(cases: Cases, summary: str) -> Case:
    return await handlers.create_case(
        cases=cases,
        caller=AGENT,
        case=new_case(person_number=ASTRID),
        contact=contact(summary=summary),
        anonymous=False,
        idempotency=idempotency_of(
            "case.CreateCase",
            create_request(summary),
            lambda case: pb.CreateCaseResponse(case=case_message(case)).SerializeToString(),
        ),
    )


async def forward(cases: Cases, case: Case, note: str) -> Case:
    request = pb.ForwardCaseRequest(name=case.name, note=note, request_id="forward-1")
    forwarded = await handlers.forward_case(
        cases=cases,
        caller=AGENT,
        case_id=case.case_id,
        postal_code="",
        named_officer="",
        note=note,
        idempotency=idempotency_of(
            "case.ForwardCase",
            request,
            lambda answer: pb.ForwardCaseResponse(case=case_message(answer.case)).SerializeToString(),
        ),
    )
    return forwarded.case


async def test_a_replayed_registration_returns_the_first_case_and_writes_nothing(
    cases: Cases, engine: AsyncEngine
) -> None:
    first = await create(cases, "Fråga om hemtjänst.")
    after_first = await row_counts(engine)

    with pytest.raises(Replayed) as replay:
        await create(cases, "Fråga om hemtjänst.")

    assert pb.CreateCaseResponse.FromString(replay.value.response).case.name == first.name
    assert await row_counts(engine) == after_first


async def test_a_reused_request_id_with_another_payload_is_refused(cases: Cases, engine: AsyncEngine) -> None:
    await create(cases, "Fråga om hemtjänst.")
    after_first = await row_counts(engine)

    with pytest.raises(AlreadyExists) as refused:
        await create(cases, "En helt annan fråga.")

    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert await row_counts(engine) == after_first


async def test_a_replayed_forward_returns_the_first_answer_without_a_second_mail(
    cases: Cases, engine: AsyncEngine, directory: FakeDirectory
) -> None:
    case = await register(cases)
    first = await forward(cases, case, "Brådskande.")
    after_first = await row_counts(engine)

    with pytest.raises(Replayed) as replay:
        await forward(cases, case, "Brådskande.")

    answer = pb.ForwardCaseResponse.FromString(replay.value.response).case
    assert (answer.name, answer.unit, answer.etag) == (
        first.name,
        f"units/{first.unit_id}",
        case_message(first).etag,
    )
    assert await row_counts(engine) == after_first
    assert len(directory.resolved) == 1


async def test_a_forward_reusing_a_request_id_with_another_note_is_refused(
    cases: Cases, engine: AsyncEngine
) -> None:
    case = await register(cases)
    await forward(cases, case, "Brådskande.")
    after_first = await row_counts(engine)

    with pytest.raises(AlreadyExists) as refused:
        await forward(cases, case, "En annan anteckning.")

    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert await row_counts(engine) == after_first


async def test_concurrent_retries_of_a_registration_write_one_case_and_agree(
    cases: Cases, engine: AsyncEngine
) -> None:
    async def attempt() -> str:
        try:
            return (await create(cases, "Fråga om hemtjänst.")).name
        except Replayed as replay:
            return pb.CreateCaseResponse.FromString(replay.response).case.name

    names = await asyncio.wait_for(asyncio.gather(*(attempt() for _ in range(8))), timeout=20)

    assert len(set(names)) == 1
    assert (await row_counts(engine))["cases"] == 1


async def test_registered_cases_get_distinct_ids_that_the_answer_and_the_rows_share(
    cases: Cases, engine: AsyncEngine
) -> None:
    # More than one block of ids on PostgreSQL, taken by calls running at once.
    created = await asyncio.gather(*(register(cases, summary=f"Samtal {n}") for n in range(130)))

    assert len({case.case_id for case in created}) == 130
    assert len({case.contacts[0].contact_id for case in created}) == 130
    for case in created[::13]:
        stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=case.case_id)
        assert stored.contacts[0].contact_id == case.contacts[0].contact_id
        assert stored.contacts[0].summary == case.contacts[0].summary
        assert [event.kind for event in stored.events] == [event.kind for event in case.events]
    assert (await row_counts(engine))["cases"] == 130
