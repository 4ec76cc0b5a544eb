"""The directory tried as a hostile client would: forged page tokens, times out of range, huge values."""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import pytest
from aldredirekt.directory.v1 import directory_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from tests.e2e.directory.conftest import RunningDirectory
from tests.rich_errors import field_violations, refused


def stub(running: RunningDirectory) -> Any:
    """The directory's asyncio stub (the fixture's annotation names the synchronous one)."""
    return running.stub


def forged(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize("position", ["\ud800", {"a": 1}, [1], 10**30, True])
async def test_a_forged_page_token_is_refused_naming_page_token(
    running: RunningDirectory, position: object
) -> None:
    agent = running.auth("agent")
    officer = running.city.officers[0]
    token = forged({"q": "x", "a": position})
    for call in (
        stub(running).ListUnits(pb.ListUnitsRequest(page_token=token), metadata=agent),
        stub(running).ListAbsences(
            pb.ListAbsencesRequest(parent=f"officers/{officer.officer_id}", page_token=token), metadata=agent
        ),
        stub(running).SearchOfficers(
            pb.SearchOfficersRequest(language="fi", page_token=token), metadata=agent
        ),
    ):
        error = await refused(call)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(error) == ["page_token"]


@pytest.mark.parametrize(
    "stamp",
    [Timestamp(seconds=253_402_300_800), Timestamp(seconds=1_700_000_000, nanos=2_000_000_000)],
)
async def test_a_time_out_of_range_is_a_field_violation(running: RunningDirectory, stamp: Timestamp) -> None:
    person = running.city.officers[0]
    resolve = await refused(
        stub(running).ResolveResponsible(
            pb.ResolveResponsibleRequest(postal_code="12314", purpose="test", at_time=stamp),
            metadata=running.auth("agent"),
        )
    )
    absence = await refused(
        stub(running).CreateAbsence(
            pb.CreateAbsenceRequest(
                parent=f"officers/{person.officer_id}",
                absence=pb.Absence(
                    start_time=stamp,
                    end_time=stamp,
                    substitute=f"officers/{running.city.officers[1].officer_id}",
                ),
            ),
            metadata=running.auth("directory_admin"),
        )
    )
    assert field_violations(resolve) == ["at_time"]
    assert field_violations(absence) == ["absence.start_time"]


async def test_a_huge_name_gets_its_violation_within_the_clients_metadata_limit(
    running: RunningDirectory,
) -> None:
    huge = "å" * 20_000
    error = await refused(
        stub(running).CreateUnit(
            pb.CreateUnitRequest(unit_id=huge, unit=pb.Unit(display_name=huge, district=huge)),
            metadata=running.auth("directory_admin"),
        )
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error)


async def test_a_postal_code_no_unit_covers_names_the_nearest_covered_areas(
    running: RunningDirectory,
) -> None:
    error = await refused(
        stub(running).ResolveResponsible(
            pb.ResolveResponsibleRequest(postal_code="99999", purpose="test"), metadata=running.auth("agent")
        )
    )
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "nearest covered postal codes" in (error.details() or "")
    assert "units/" in (error.details() or "")
