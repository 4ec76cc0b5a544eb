"""The case service tried as a hostile client would: forged page tokens, values out of range, huge and
malformed input, another unit's and another person's resources, replays with another scope. None may get
INTERNAL, leak whether something exists, or reach data outside the caller's scope."""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import pytest
from aldredirekt.case.v1 import case_pb2 as pb
from aldredirekt.common.v1 import access_log_pb2 as apb
from google.rpc import error_details_pb2

from tests.e2e.case.conftest import Stack
from tests.rich_errors import field_violations, reason_of, refused, rich_status
from tests.unit.case.builders import ASTRID, BERTIL

FARSTA = "units/farsta-bestallarenhet"
OTHER_UNIT = "units/bromma-bestallarenhet"


def new_case(**changes: Any) -> pb.Case:
    values: dict[str, Any] = {
        "category": "aldreomsorg",
        "case_type": "hemtjanst",
        "case_class": "status-pa-anmalan-arende",
        "district": "districts/farsta",
        "person_number": ASTRID,
        "feedback_channel": pb.FEEDBACK_CHANNEL_PHONE,
    }
    return pb.Case(**(values | changes))


def contact() -> pb.Contact:
    return pb.Contact(channel=pb.CHANNEL_PHONE, party=pb.CONTACT_PARTY_SELF, summary="Frågar om hemtjänsten.")


async def forwarded_case(stack: Stack, *, person: str = ASTRID) -> pb.Case:
    agent = stack.auth("agent", subject="agent-anna")
    created = await stack.stub.CreateCase(
        pb.CreateCaseRequest(case=new_case(person_number=person), contact=contact()), metadata=agent
    )
    answer = await stack.stub.ForwardCase(
        pb.ForwardCaseRequest(name=created.case.name, postal_code="12314"), metadata=agent
    )
    assert answer.case.unit == FARSTA
    return answer.case


def forged(payload: object) -> str:
    """A page token made by hand the way the old unsigned ones were: base64 of JSON."""
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for detail in rich_status(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo")


# ---- page tokens -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        forged({"q": "x", "a": {"dict": 1}}),
        forged({"q": "x", "a": [1, 2, 3]}),
        forged({"q": "x", "a": 10**40}),
        forged({"q": "x", "a": True}),
        forged({"q": "x", "a": "\ud800"}),
        "not-a-token",
        "x" * 5000,
        "a.b",
    ],
)
async def test_a_page_token_made_by_hand_is_refused_naming_page_token(stack: Stack, token: str) -> None:
    officer = stack.auth("officer", unit=FARSTA)
    citizen = stack.auth("citizen", person_number=ASTRID)
    auditor = stack.auth("auditor")
    calls: list[Any] = [
        stack.stub.ListUnitQueue(pb.ListUnitQueueRequest(unit=FARSTA, page_token=token), metadata=officer),
        stack.stub.ListOverdueCases(
            pb.ListOverdueCasesRequest(unit=FARSTA, page_token=token), metadata=officer
        ),
        stack.stub.ListMyCases(pb.ListMyCasesRequest(page_token=token), metadata=citizen),
        stack.access_log_stub.ListAccessLog(
            apb.ListAccessLogRequest(person_number=ASTRID, page_token=token), metadata=auditor
        ),
    ]
    for index, call in enumerate(calls):
        error = await refused(call)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (index, error.details())
        assert field_violations(error) == ["page_token"]


async def test_an_altered_or_truncated_page_token_is_refused(stack: Stack) -> None:
    citizen = stack.auth("citizen", person_number=ASTRID)
    agent = stack.auth("agent", subject="agent-anna")
    for _ in range(3):
        await stack.stub.CreateCase(pb.CreateCaseRequest(case=new_case(), contact=contact()), metadata=agent)
    first = await stack.stub.ListMyCases(pb.ListMyCasesRequest(page_size=1), metadata=citizen)
    token = first.next_page_token
    assert token
    payload, signature = token.split(".")
    altered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    for bad in (altered, token[:-3], payload, token + "x"):
        error = await refused(stack.stub.ListMyCases(pb.ListMyCasesRequest(page_token=bad), metadata=citizen))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(error) == ["page_token"]
    second = await stack.stub.ListMyCases(
        pb.ListMyCasesRequest(page_size=1, page_token=token), metadata=citizen
    )
    assert second.cases[0].name != first.cases[0].name


async def test_a_citizens_page_token_is_not_accepted_for_another_citizen(stack: Stack) -> None:
    agent = stack.auth("agent", subject="agent-anna")
    for person in (ASTRID, ASTRID, BERTIL, BERTIL):
        await stack.stub.CreateCase(
            pb.CreateCaseRequest(case=new_case(person_number=person), contact=contact()), metadata=agent
        )
    astrid = stack.auth("citizen", person_number=ASTRID)
    bertil = stack.auth("citizen", person_number=BERTIL)
    token = (
        await stack.stub.ListMyCases(pb.ListMyCasesRequest(page_size=1), metadata=astrid)
    ).next_page_token

    error = await refused(stack.stub.ListMyCases(pb.ListMyCasesRequest(page_token=token), metadata=bertil))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["page_token"]


async def test_a_page_token_of_another_service_is_refused(stack: Stack) -> None:
    from aldredirekt.directory.v1 import directory_pb2 as dpb

    agent = stack.auth("agent")
    directory_token = (
        await stack.directory_stub.ListUnits(dpb.ListUnitsRequest(page_size=1), metadata=agent)
    ).next_page_token
    officer = stack.auth("officer", unit=FARSTA)

    error = await refused(
        stack.stub.ListUnitQueue(
            pb.ListUnitQueueRequest(unit=FARSTA, page_token=directory_token), metadata=officer
        )
    )

    assert field_violations(error) == ["page_token"]


async def test_the_access_log_clamps_a_large_page_size_like_every_list(stack: Stack) -> None:
    answer = await stack.access_log_stub.ListAccessLog(
        apb.ListAccessLogRequest(person_number=ASTRID, page_size=1000), metadata=stack.auth("auditor")
    )
    bigger = await stack.access_log_stub.ListAccessLog(
        apb.ListAccessLogRequest(person_number=ASTRID, page_size=2_000_000_000),
        metadata=stack.auth("auditor"),
    )
    assert answer.next_page_token == ""
    assert bigger.next_page_token == ""


# ---- values out of range, huge and malformed ---------------------------------------------------------------


@pytest.mark.parametrize("month", ["9999-12", "0000-01", "2026-13", "2026-1", "x" * 20_000])
async def test_a_month_out_of_range_is_a_field_violation(stack: Stack, month: str) -> None:
    error = await refused(
        stack.stub.CountBillableContacts(
            pb.CountBillableContactsRequest(month=month), metadata=stack.auth("finance")
        )
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["month"]


async def test_a_date_out_of_range_is_a_field_violation(stack: Stack) -> None:
    from google.type import date_pb2

    error = await refused(
        stack.stub.GetCaseStatistics(
            pb.GetCaseStatisticsRequest(
                start_date=date_pb2.Date(year=9999, month=12, day=31),
                end_date=date_pb2.Date(year=10000, month=1, day=1),
            ),
            metadata=stack.auth("auditor"),
        )
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error)[0].startswith("start_date")


async def test_a_huge_value_gets_invalid_argument_within_the_clients_metadata_limit(stack: Stack) -> None:
    huge = "x" * 20_000
    agent = stack.auth("agent")
    calls: list[Any] = [
        stack.stub.GetCase(pb.GetCaseRequest(name=huge), metadata=agent),
        stack.stub.CreateCase(
            pb.CreateCaseRequest(
                case=new_case(category=huge, district=huge, provider=huge), contact=contact()
            ),
            metadata=agent,
        ),
        stack.stub.FindOpenCases(pb.FindOpenCasesRequest(person_number=huge), metadata=agent),
    ]
    for call in calls:
        error = await refused(call)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT  # not RESOURCE_EXHAUSTED
        assert field_violations(error)
        assert huge not in (error.details() or "")


async def test_bytes_that_are_no_message_get_invalid_argument_naming_no_internals(stack: Stack) -> None:
    call = stack.channel.unary_unary(
        "/aldredirekt.case.v1.CaseService/CreateCase", request_serializer=None, response_deserializer=None
    )
    for body in (b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0a" * 3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(body, metadata=stack.auth("agent"))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "Error" not in (caught.value.details() or "")


# ---- another unit's cases: no oracle ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "make"),
    [
        ("GetCase", lambda name: pb.GetCaseRequest(name=name)),
        ("AcknowledgeCase", lambda name: pb.AcknowledgeCaseRequest(name=name)),
        ("AssignCase", lambda name: pb.AssignCaseRequest(name=name, officer="officers/nobody")),
        (
            "RecordFeedback",
            lambda name: pb.RecordFeedbackRequest(
                name=name, channel=pb.FEEDBACK_CHANNEL_PHONE, note="Ringde."
            ),
        ),
        ("ReturnCase", lambda name: pb.ReturnCaseRequest(name=name, reason="Fel enhet.")),
    ],
)
async def test_another_units_case_and_a_missing_case_get_the_same_answer(
    stack: Stack, method: str, make: Any
) -> None:
    case = await forwarded_case(stack)
    outsider = stack.auth("officer", subject="officer-bo", unit=OTHER_UNIT)
    rpc = getattr(stack.stub, method)
    if method == "AssignCase":
        # The officer is looked up before the case; name one that exists so that the case decides.
        officer = next(o for o in stack.city.officers_of("bromma-bestallarenhet") if o.active)
        make_request = lambda name: pb.AssignCaseRequest(name=name, officer=f"officers/{officer.officer_id}")  # noqa: E731
    else:
        make_request = make
    number = int(case.name.rsplit("/", 1)[1])
    missing = f"cases/{number + 100_000}"

    theirs = await refused(rpc(make_request(case.name), metadata=outsider))
    nobodys = await refused(rpc(make_request(missing), metadata=outsider))

    assert theirs.code() is nobodys.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(theirs) == reason_of(nobodys) == "OTHER_UNIT"
    assert set(error_info(theirs).metadata) == set(error_info(nobodys).metadata) == {"case"}
    assert (theirs.details() or "").replace(case.name, "<case>") == (nobodys.details() or "").replace(
        missing, "<case>"
    )


# ---- replays ---------------------------------------------------------------------------------------------


async def log_count(stack: Stack, person: str) -> int:
    answer = await stack.access_log_stub.ListAccessLog(
        apb.ListAccessLogRequest(person_number=person, page_size=1000), metadata=stack.auth("auditor")
    )
    return sum(1 for e in answer.entries if e.action != "case.ListAccessLog")


async def test_a_replay_by_the_same_subject_for_another_unit_is_checked_afresh(stack: Stack) -> None:
    case = await forwarded_case(stack)
    mine = stack.auth("officer", subject="officer-olle", unit=FARSTA)
    same_subject_elsewhere = stack.auth("officer", subject="officer-olle", unit=OTHER_UNIT)
    request = pb.AcknowledgeCaseRequest(name=case.name, request_id="ack-1")
    first = await stack.stub.AcknowledgeCase(request, metadata=mine)

    error = await refused(stack.stub.AcknowledgeCase(request, metadata=same_subject_elsewhere))

    assert first.case.person_number == ASTRID
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(error) == "OTHER_UNIT"
    assert ASTRID not in (error.details() or "")


async def test_a_replay_logs_the_read_like_the_first_call(stack: Stack) -> None:
    case = await forwarded_case(stack, person=BERTIL)
    officer = stack.auth("officer", subject="officer-olle", unit=FARSTA)
    request = pb.AcknowledgeCaseRequest(name=case.name, request_id="ack-2")
    before = await log_count(stack, BERTIL)

    first = await stack.stub.AcknowledgeCase(request, metadata=officer)
    after_first = await log_count(stack, BERTIL)
    again = await stack.stub.AcknowledgeCase(request, metadata=officer)
    after_replay = await log_count(stack, BERTIL)

    assert again == first
    assert after_first == before + 1
    assert after_replay == after_first + 1


async def test_unit_side_calls_log_the_read_of_the_person(stack: Stack) -> None:
    case = await forwarded_case(stack, person=BERTIL)
    officer = stack.auth("officer", subject="officer-olle", unit=FARSTA)
    await stack.stub.AcknowledgeCase(pb.AcknowledgeCaseRequest(name=case.name), metadata=officer)
    await stack.stub.ReturnCase(pb.ReturnCaseRequest(name=case.name, reason="Fel enhet."), metadata=officer)

    answer = await stack.access_log_stub.ListAccessLog(
        apb.ListAccessLogRequest(person_number=BERTIL), metadata=stack.auth("auditor")
    )
    actions = [e.action for e in answer.entries if e.actor == "officer-olle"]

    assert actions == ["case.ReturnCase", "case.AcknowledgeCase"]
