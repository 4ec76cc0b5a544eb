"""The shared rules every service's answers follow: errors that fit a client's trailers, ranges checked
in one place, signed page tokens, declared roles, another service's refusals read from their details."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from aldredirekt.case.v1 import case_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from google.type import date_pb2
from grpc_status import rpc_status

from services.common.auth import JwksSource, Role, SigningKey, jwks_document
from services.common.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
    quoted,
)
from services.common.pagination import PageTokens, development_key
from services.common.protoconv import from_date_message, from_timestamp, parse_month
from services.common.remote import domain_error
from services.common.server import GrpcService, allow
from services.common.status import TRAILER_BUDGET_BYTES, to_status
from tests.unit.case.builders import caller

# ---- errors that fit -------------------------------------------------------------------------------------


def trailer_bytes(error: InvalidArgument) -> int:
    status = to_status(error)
    return 3 * len(status.message.encode()) + (4 * int(status.ByteSize()) + 2) // 3


def test_a_quoted_value_is_cut_to_a_short_prefix() -> None:
    assert quoted("kort") == "'kort'"
    assert quoted("x" * 20_000) == f"{'x' * 40!r}… (20,000 characters)"


def test_an_error_with_huge_texts_and_many_violations_stays_within_the_trailer_budget() -> None:
    huge = "å" * 20_000
    error = InvalidArgument([FieldViolation(f"files[{i}].{huge}", huge) for i in range(500)])

    status = to_status(error)
    bad_request = error_details_pb2.BadRequest()
    status.details[1].Unpack(bad_request)

    assert trailer_bytes(error) <= TRAILER_BUDGET_BYTES
    assert 1 <= len(bad_request.field_violations) <= 11
    assert bad_request.field_violations[-1].description.startswith("and ")


def test_an_error_with_few_short_violations_keeps_them_all() -> None:
    error = InvalidArgument([FieldViolation("a", "is required"), FieldViolation("b", "is required")])
    bad_request = error_details_pb2.BadRequest()
    to_status(error).details[1].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["a", "b"]


# ---- ranges, in one place ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [
        Timestamp(seconds=253_402_300_800),  # year 10000
        Timestamp(seconds=2**62),
        Timestamp(seconds=-(2**62)),
        Timestamp(seconds=1_700_000_000, nanos=1_000_000_000),
        Timestamp(seconds=1_700_000_000, nanos=-1),
    ],
)
def test_a_timestamp_out_of_range_is_a_field_violation(stamp: Timestamp) -> None:
    with pytest.raises(InvalidArgument) as refused:
        from_timestamp(stamp, "at_time")
    assert refused.value.violations[0].field == "at_time"


def test_a_timestamp_in_range_is_an_aware_utc_time() -> None:
    assert from_timestamp(Timestamp(seconds=1_700_000_000, nanos=5_000), "at_time") == datetime(
        2023, 11, 14, 22, 13, 20, 5, tzinfo=UTC
    )


@pytest.mark.parametrize(("year", "month", "day"), [(10_000, 1, 1), (0, 1, 1), (2026, 2, 30), (2026, 0, 0)])
def test_a_date_out_of_range_is_a_field_violation(year: int, month: int, day: int) -> None:
    with pytest.raises(InvalidArgument) as refused:
        from_date_message(date_pb2.Date(year=year, month=month, day=day), "start_date")
    assert refused.value.violations[0].field.startswith("start_date")


@pytest.mark.parametrize(
    "month", ["9999-12", "2200-01", "1899-12", "2026-00", "2026-13", "26-03", "２０２６-03"]
)
def test_a_month_out_of_range_is_a_field_violation(month: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_month(month, "month")
    assert refused.value.violations[0].field == "month"


# ---- page tokens -----------------------------------------------------------------------------------------


def test_a_page_token_continues_only_its_own_query_and_owner() -> None:
    tokens = PageTokens([development_key("case")], service="case")
    astrid, bertil = caller(Role.CITIZEN, person="194001011230"), caller(Role.CITIZEN, person="194102031234")
    first = tokens.page(1, "", {"mine": True}, owner=astrid)
    token = first.next_token(42, more=True)

    assert tokens.page(1, token, {"mine": True}, owner=astrid).after_int() == 42
    for query, owner in (({"mine": True}, bertil), ({"other": 1}, astrid)):
        with pytest.raises(InvalidArgument):
            tokens.page(1, token, query, owner=owner)


def test_a_token_signed_with_another_key_or_by_another_service_is_refused() -> None:
    ours = PageTokens([development_key("case")], service="case")
    theirs = PageTokens([development_key("directory")], service="directory")
    token = theirs.page(1, "", {}, owner=None).next_token("x", more=True)
    with pytest.raises(InvalidArgument):
        ours.page(1, token, {}, owner=None)


def test_during_a_key_rotation_tokens_of_the_old_key_still_continue() -> None:
    old, new = b"o" * 32, b"n" * 32
    token = PageTokens([old], service="case").page(1, "", {}, owner=None).next_token(7, more=True)
    rotated = PageTokens([new, old], service="case")
    assert rotated.page(1, token, {}, owner=None).after_int() == 7
    with pytest.raises(InvalidArgument):
        PageTokens([new], service="case").page(1, token, {}, owner=None)


@pytest.mark.parametrize("position", [{"a": 1}, [1, 2, 3], 10**40, True, "\ud800", "x" * 600])
def test_a_signed_position_of_the_wrong_shape_is_still_refused(position: object) -> None:
    tokens = PageTokens([development_key("case")], service="case")
    page = tokens.page(1, "", {}, owner=None)
    token = tokens.sign(page.query, position)
    opened = tokens.page(1, token, {}, owner=None)
    with pytest.raises(InvalidArgument):
        opened.after_int()
    with pytest.raises(InvalidArgument):
        opened.after_text_and_int()
    if not isinstance(position, str) or len(position) > 512:
        with pytest.raises(InvalidArgument):
            opened.after_text()


def test_page_size_above_the_maximum_is_lowered_not_refused() -> None:
    tokens = PageTokens([development_key("case")], service="case")
    assert tokens.page(2_000_000_000, "", {}, owner=None).size == 1000
    with pytest.raises(InvalidArgument):
        tokens.page(-1, "", {}, owner=None)


# ---- roles declared once per RPC ---------------------------------------------------------------------------


def test_a_servicer_method_without_declared_roles_is_never_served() -> None:
    class Servicer:
        @allow(Role.AGENT)
        async def GetCase(self) -> None: ...

    service = GrpcService(
        descriptor=case_pb2.DESCRIPTOR.services_by_name["CaseService"],
        add_to_server=lambda servicer, server: None,
        servicer=Servicer(),
    )
    with pytest.raises(TypeError, match="does not declare who may call it"):
        _ = service.roles


# ---- another service's refusals ----------------------------------------------------------------------------


class FakeRpcError(grpc.aio.AioRpcError):
    def __init__(self, error: Exception) -> None:
        from services.common.errors import DomainError

        assert isinstance(error, DomainError)
        status = rpc_status.to_status(to_status(error))
        super().__init__(
            status.code,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(*status.trailing_metadata),
            status.details,
            None,
        )


def test_a_refusal_is_read_from_its_details_with_the_fields_renamed() -> None:
    error = FakeRpcError(
        InvalidArgument([FieldViolation("district", "is retired")], reason="DISTRICT_RETIRED")
    )

    translated = domain_error(error, service="directory", field_of={"district": "case.district"})

    assert isinstance(translated, InvalidArgument)
    assert translated.violations == [FieldViolation("case.district", "is retired")]
    assert translated.reason == "DISTRICT_RETIRED"


def test_a_missing_resource_and_a_refusal_keep_their_kind_and_reason() -> None:
    missing = domain_error(FakeRpcError(NotFound("officers/x")), service="directory")
    denied = domain_error(FakeRpcError(PermissionDenied("no", reason="OTHER_UNIT")), service="directory")
    assert isinstance(missing, NotFound)
    assert missing.resource_name == "officers/x"
    assert isinstance(denied, PermissionDenied)
    assert denied.reason == "OTHER_UNIT"


def test_another_service_down_or_failing_is_unavailable() -> None:
    down = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down", None
    )
    failed = grpc.aio.AioRpcError(
        grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(), "boom", None
    )
    assert domain_error(down, service="directory").reason == "DIRECTORY_UNAVAILABLE"
    assert isinstance(domain_error(failed, service="directory"), Unavailable)
    assert domain_error(failed, service="directory").reason == "DIRECTORY_FAILED"


# ---- the issuer's keys ---------------------------------------------------------------------------------


async def test_calls_that_come_while_the_keys_are_first_read_all_get_them(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_document([key])))
    source = JwksSource(path)

    found = await asyncio.gather(*(source.key(key.kid) for _ in range(20)))

    assert all(k is not None and k.kid == key.kid for k in found)
