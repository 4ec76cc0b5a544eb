"""Safe retries through request_id, and paging that returns every item exactly once."""

from __future__ import annotations

import math

import pytest
from aldredirekt.directory.v1 import directory_pb2 as pb

from services.common.db import Idempotency
from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.common.idempotency import Replayed, request_key
from services.common.pagination import PageRequest, PageTokens, development_key
from services.directory import handlers
from services.directory.api.mapping import unit_from_message, unit_message
from services.directory.store import OfficerQuery
from tests.unit.directory.builders import ADMIN, AGENT

PAGES = PageTokens([development_key("directory")], service="directory")


def page_request(page_size: int, page_token: str, query: dict[str, object]) -> PageRequest:
    """A page as the servicer asks for it: its token signed by the directory, for this query."""
    return PAGES.page(page_size, page_token, query, owner=None)


def create_unit_request(
    request_id: str, display_name: str = "Beställarenheten Farsta"
) -> pb.CreateUnitRequest:
    return pb.CreateUnitRequest(
        unit_id="farsta-bestallarenhet",
        request_id=request_id,
        unit=pb.Unit(
            display_name=display_name,
            district="districts/farsta",
            mailbox="aldreomsorg.farsta@example.stockholm.se",
            acute_phone="08-508 18 000",
            contact_policy=pb.CONTACT_POLICY_CONTACT_CENTER_ONLY,
        ),
    )


async def create_unit(directory, request: pb.CreateUnitRequest) -> pb.CreateUnitResponse:
    """CreateUnit as the servicer runs it: the first answer is stored with the write and replayed."""
    key = request_key("directory.CreateUnit", ADMIN.idempotency_scope, request)
    assert key is not None
    idempotency = Idempotency(
        key, encode=lambda view: pb.CreateUnitResponse(unit=unit_message(view)).SerializeToString()
    )
    try:
        view = await handlers.create_unit(
            directory=directory,
            caller=ADMIN,
            unit=unit_from_message(request.unit, request.unit_id, "unit"),
            idempotency=idempotency,
        )
    except Replayed as replay:
        return pb.CreateUnitResponse.FromString(replay.response)
    return pb.CreateUnitResponse(unit=unit_message(view))


async def unit_count(directory) -> int:
    units, _ = await handlers.list_units(
        directory=directory, caller=ADMIN, page=page_request(0, "", {}), district_id=None
    )
    return len(units)


async def test_a_retried_create_answers_with_the_first_answer_and_creates_once(directory):
    first = await create_unit(directory, create_unit_request("8a1f0c2e-retry"))

    again = await create_unit(directory, create_unit_request("8a1f0c2e-retry"))

    assert again == first
    assert again.unit.etag
    assert again.unit.create_time.seconds > 0
    assert await unit_count(directory) == 1


async def test_a_request_id_reused_for_another_request_is_refused(directory):
    await create_unit(directory, create_unit_request("8a1f0c2e-reuse"))

    with pytest.raises(AlreadyExists) as caught:
        await create_unit(directory, create_unit_request("8a1f0c2e-reuse", display_name="Något annat"))

    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    found = await handlers.get_unit(directory=directory, caller=ADMIN, unit_id="farsta-bestallarenhet")
    assert found.unit.display_name == "Beställarenheten Farsta"


async def test_a_refused_command_is_not_remembered_so_its_retry_runs_again(directory):
    bad = create_unit_request("8a1f0c2e-bad")
    bad.unit.district = "districts/atlantis"
    with pytest.raises(NotFound, match="atlantis"):
        await create_unit(directory, bad)

    with pytest.raises(NotFound, match="atlantis"):
        await create_unit(directory, bad)

    assert await unit_count(directory) == 0


# ---- pages ------------------------------------------------------------------------------------------------


async def all_pages(directory, query: OfficerQuery, page_size: int) -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    while True:
        page = page_request(page_size, token, {"list": query.__dict__})
        views, token = await handlers.search_officers(
            directory=directory, caller=AGENT, page=page, query=query
        )
        pages.append([v.officer.officer_id for v in views])
        if not token:
            return pages


async def test_paging_through_all_officers_seven_at_a_time_returns_each_exactly_once(directory, seeded):
    active = sorted(o.officer_id for o in seeded.officers if o.active)

    pages = await all_pages(directory, OfficerQuery(), page_size=7)

    found = [officer_id for page in pages for officer_id in page]
    assert found == active
    assert len(pages) == math.ceil(len(active) / 7)
    assert all(len(page) == 7 for page in pages[:-1])


async def test_paging_with_inactive_officers_returns_them_too(directory, seeded):
    pages = await all_pages(directory, OfficerQuery(include_inactive=True), page_size=7)

    assert sorted(i for page in pages for i in page) == sorted(o.officer_id for o in seeded.officers)


async def test_paging_through_one_units_officers_stays_in_that_unit(directory, seeded):
    unit_id = seeded.units[0].unit_id
    expected = sorted(o.officer_id for o in seeded.officers if o.unit_id == unit_id and o.active)

    pages = await all_pages(directory, OfficerQuery(unit_id=unit_id), page_size=3)

    assert [i for page in pages for i in page] == expected


def test_a_negative_page_size_is_refused():
    with pytest.raises(InvalidArgument) as caught:
        page_request(-1, "", {"list": OfficerQuery().__dict__})

    assert [v.field for v in caught.value.violations] == ["page_size"]


async def test_a_page_token_from_another_query_is_refused(directory, seeded):
    first_unit, second_unit = (OfficerQuery(unit_id=u.unit_id) for u in seeded.units[:2])
    _, token = await handlers.search_officers(
        directory=directory,
        caller=AGENT,
        page=page_request(2, "", {"list": first_unit.__dict__}),
        query=first_unit,
    )
    assert token

    with pytest.raises(InvalidArgument) as caught:
        page_request(2, token, {"list": second_unit.__dict__})

    assert [v.field for v in caught.value.violations] == ["page_token"]


def test_a_page_token_that_was_never_issued_is_refused():
    with pytest.raises(InvalidArgument) as caught:
        page_request(7, "bm90IGEgdG9rZW4", {"list": OfficerQuery().__dict__})

    assert [v.field for v in caught.value.violations] == ["page_token"]
