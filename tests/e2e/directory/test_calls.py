"""Calls over the wire: answers, errors with their google.rpc details, retries, pages and the access log."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from aldredirekt.directory.v1 import directory_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.audit import list_access, verify_chain
from services.common.errors import ERROR_DOMAIN
from services.directory import handlers
from services.directory.store import access_log
from synthcity.people import generate_people
from tests.rich_errors import error_info, field_violations, rich_status
from tests.unit.directory.cities import city_files

SUMMER = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)


async def refusal(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def resolve_request(person, **changes) -> pb.ResolveResponsibleRequest:
    at = Timestamp()
    at.FromDatetime(SUMMER)
    request = pb.ResolveResponsibleRequest(
        person_number=person.person_number,
        postal_code=person.postal_code,
        at_time=at,
        purpose="cases/2026-000042",
    )
    for name, value in changes.items():
        setattr(request, name, value)
    return request


def a_person_with_an_officer(city):
    people = generate_people(city, 50, seed=5, today=SUMMER.date())
    return next(p for p in people if p.officer_id and p.responsible_role is None)


async def test_a_bad_person_number_is_refused_with_a_field_violation_and_a_reason(running):
    person = a_person_with_an_officer(running.city)
    wrong_check_digit = person.person_number[:-1] + str((int(person.person_number[-1]) + 1) % 10)

    error = await refusal(
        running.stub.ResolveResponsible(
            resolve_request(person, person_number=wrong_check_digit), metadata=running.auth("agent")
        )
    )

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["person_number"]
    info = error_info(error)
    assert (info.reason, info.domain) == ("INVALID_PERSON_NUMBER", ERROR_DOMAIN)
    # The number is personal data and is not sent back, not even a wrong one.
    assert wrong_check_digit[2:] not in str(rich_status(error))
    assert wrong_check_digit[2:] not in (error.details() or "")


async def test_a_person_number_that_is_not_one_is_refused_naming_the_field(running):
    person = a_person_with_an_officer(running.city)

    error = await refusal(
        running.stub.ResolveResponsible(
            resolve_request(person, person_number="19121212-1213", postal_code="12345"),
            metadata=running.auth("agent"),
        )
    )

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["person_number"]
    assert error_info(error).reason == "INVALID_PERSON_NUMBER"


async def test_several_bad_fields_are_reported_in_one_answer(running):
    person = a_person_with_an_officer(running.city)

    error = await refusal(
        running.stub.ResolveResponsible(
            resolve_request(person, postal_code="1234", purpose=""), metadata=running.auth("agent")
        )
    )

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["postal_code", "purpose"]


async def test_an_unexpected_fault_is_internal_with_a_message_that_reveals_nothing(running, monkeypatch):
    async def broken(**kwargs):
        raise RuntimeError("password=hunter2 while reading 191212121212")

    monkeypatch.setattr(handlers, "get_unit", broken)
    request = pb.GetUnitRequest(name=f"units/{running.city.units[0].unit_id}")

    error = await refusal(running.stub.GetUnit(request, metadata=running.auth("agent")))

    assert error.code() is grpc.StatusCode.INTERNAL
    message = error.details() or ""
    assert message.startswith("internal error")
    for secret in ("hunter2", "191212121212", "RuntimeError", "password"):
        assert secret not in message
        assert secret not in str(error.trailing_metadata())
    monkeypatch.undo()
    assert (await running.stub.GetUnit(request, metadata=running.auth("agent"))).unit.name == request.name


async def test_an_import_with_a_bad_row_is_refused_naming_file_line_and_column(running):
    admin = running.auth("directory_admin")
    before = await running.stub.ExportDirectory(pb.ExportDirectoryRequest(), metadata=admin)
    files = dict(city_files(7))
    lines = files["officers.csv"].splitlines(keepends=True)
    lines[6] = lines[6].replace(",true,", ",kanske,", 1)
    files["officers.csv"] = "".join(lines)
    request = pb.ImportDirectoryRequest(
        files=[pb.CsvFile(file_name=name, content=content) for name, content in files.items()]
    )

    error = await refusal(running.stub.ImportDirectory(request, metadata=admin))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["officers.csv:7:active"]
    assert error_info(error).reason == "BAD_CSV"
    assert await running.stub.ExportDirectory(pb.ExportDirectoryRequest(), metadata=admin) == before


def create_officer_request(running, request_id: str, caseload: int = 10) -> pb.CreateOfficerRequest:
    return pb.CreateOfficerRequest(
        officer_id="ny-handlaggare",
        request_id=request_id,
        officer=pb.Officer(
            given_name="Ny",
            family_name="Handläggare",
            unit=f"units/{running.city.units[0].unit_id}",
            role=pb.OFFICER_ROLE_ORDINARY_HOUSING,
            languages=["sv"],
            active=True,
            caseload=caseload,
        ),
    )


async def test_a_retried_create_gets_the_first_answer(running):
    admin = running.auth("directory_admin")

    first = await running.stub.CreateOfficer(create_officer_request(running, "c0ffee-1"), metadata=admin)
    again = await running.stub.CreateOfficer(create_officer_request(running, "c0ffee-1"), metadata=admin)

    assert again == first
    assert first.officer.name == "officers/ny-handlaggare"


async def test_a_request_id_reused_with_another_payload_is_refused(running):
    admin = running.auth("directory_admin")
    await running.stub.CreateOfficer(create_officer_request(running, "c0ffee-2"), metadata=admin)

    error = await refusal(
        running.stub.CreateOfficer(create_officer_request(running, "c0ffee-2", caseload=11), metadata=admin)
    )

    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert error_info(error).reason == "IDEMPOTENCY_KEY_REUSED"


async def test_listing_officers_seven_at_a_time_over_the_wire_returns_each_once(running):
    agent = running.auth("agent")
    names: list[str] = []
    token = ""
    while True:
        page = await running.stub.ListOfficers(
            pb.ListOfficersRequest(page_size=7, page_token=token), metadata=agent
        )
        names.extend(o.name for o in page.officers)
        token = page.next_page_token
        if not token:
            break

    assert names == sorted(f"officers/{o.officer_id}" for o in running.city.officers if o.active)


async def test_a_negative_page_size_and_a_foreign_page_token_are_refused(running):
    agent = running.auth("agent")
    units = running.city.units
    first = await running.stub.ListOfficers(
        pb.ListOfficersRequest(page_size=2, unit=f"units/{units[0].unit_id}"), metadata=agent
    )

    negative = await refusal(running.stub.ListOfficers(pb.ListOfficersRequest(page_size=-1), metadata=agent))
    foreign = await refusal(
        running.stub.ListOfficers(
            pb.ListOfficersRequest(
                page_size=2, unit=f"units/{units[1].unit_id}", page_token=first.next_page_token
            ),
            metadata=agent,
        )
    )

    assert (negative.code(), field_violations(negative)) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_size"])
    assert (foreign.code(), field_violations(foreign)) == (grpc.StatusCode.INVALID_ARGUMENT, ["page_token"])


async def test_resolve_responsible_over_the_wire_on_postgresql_names_the_officer_and_logs_the_look_up(
    start_directory, postgres_url
):
    running = await start_directory(postgres_url)
    person = a_person_with_an_officer(running.city)

    response = await running.stub.ResolveResponsible(
        resolve_request(person), metadata=running.auth("service")
    )

    assert response.decision == pb.DECISION_ASSIGNMENT_RULE
    assert response.officer.name == f"officers/{person.officer_id}"
    assert (response.rule_id, response.area_id) == (person.rule_id, person.area_id)
    assert response.unit.name == f"units/{person.unit_id}"
    assert response.unit.mailbox
    async with running.engine.connect() as conn:
        entries = await list_access(
            conn, access_log, person_number=person.person_number, limit=5, before_seq=None
        )
        chain = await verify_chain(conn, access_log)
    assert [(e.purpose, e.actor_role) for e in entries] == [("cases/2026-000042", "service")]
    assert chain.ok
    assert chain.entries == 1
