"""Who may call and what they see: tokens, roles, and direct numbers kept to those allowed them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import grpc
import pytest
from aldredirekt.directory.v1 import directory_pb2 as pb
from google.protobuf import field_mask_pb2

from services.common.auth import SigningKey
from services.common.devissuer import DevIssuer
from synthcity.city import ContactPolicy
from tests.e2e.directory.conftest import bearer
from tests.person_numbers import person_number
from tests.rich_errors import error_info

CITIZEN_NUMBER = person_number(date(1938, 4, 12))


def closed_unit_officer(city):
    """An officer with a direct number in a unit the public reaches only through Äldre direkt."""
    closed = {u.unit_id for u in city.units if u.contact_policy is ContactPolicy.CONTACT_CENTER_ONLY}
    return next(o for o in city.officers if o.unit_id in closed and o.phone and o.active)


async def refusal(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def get_district(running, metadata=None):
    return running.stub.GetDistrict(pb.GetDistrictRequest(name="districts/farsta"), metadata=metadata)


async def test_a_call_with_a_valid_token_is_answered(running):
    response = await get_district(running, running.auth("agent"))

    assert response.district.display_name == "Farsta"


async def test_a_call_without_a_token_is_unauthenticated(running):
    error = await refusal(get_district(running))

    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_info(error).reason == "TOKEN_MISSING"


async def test_a_call_with_an_expired_token_is_unauthenticated(running):
    error = await refusal(get_district(running, bearer(running.expired_token())))

    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_info(error).reason == "TOKEN_EXPIRED"


async def test_a_token_signed_by_another_issuers_key_is_unauthenticated(running, tmp_path: Path):
    stranger = DevIssuer.load_or_create(tmp_path / "another-issuer")

    error = await refusal(get_district(running, bearer(stranger.mint(role="directory_admin"))))

    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_info(error).reason == "TOKEN_INVALID"


async def test_a_token_signed_by_another_key_under_the_issuers_key_id_is_unauthenticated(running, tmp_path):
    impostor = DevIssuer(SigningKey.generate("ES256", kid=running.issuer.key.kid), tmp_path)

    error = await refusal(get_district(running, bearer(impostor.mint(role="directory_admin"))))

    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error_info(error).reason == "TOKEN_INVALID"


async def test_a_citizen_sees_only_how_the_public_reaches_a_unit(running):
    unit = running.city.units[0]
    request = pb.GetUnitRequest(name=f"units/{unit.unit_id}")

    as_citizen = await running.stub.GetUnit(
        request, metadata=running.auth("citizen", person_number=CITIZEN_NUMBER)
    )
    as_agent = await running.stub.GetUnit(request, metadata=running.auth("agent"))

    public = as_citizen.unit
    assert (public.name, public.display_name, public.district) == (
        f"units/{unit.unit_id}",
        unit.display_name,
        f"districts/{unit.district_id}",
    )
    assert public.public_route.phone
    assert public.public_route == as_agent.unit.public_route
    assert (public.mailbox, public.acute_phone, public.etag, list(public.acute_hours)) == ("", "", "", [])
    assert as_agent.unit.mailbox == unit.mailbox
    assert as_agent.unit.acute_phone == unit.acute_phone


async def test_a_citizen_may_not_look_up_officers(running):
    citizen = running.auth("citizen", person_number=CITIZEN_NUMBER)
    officer_id = running.city.officers[0].officer_id

    get = await refusal(
        running.stub.GetOfficer(pb.GetOfficerRequest(name=f"officers/{officer_id}"), metadata=citizen)
    )
    listing = await refusal(running.stub.ListOfficers(pb.ListOfficersRequest(), metadata=citizen))

    assert get.code() is grpc.StatusCode.PERMISSION_DENIED
    assert listing.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_an_agent_does_not_see_direct_numbers_of_a_unit_reached_only_through_the_contact_center(
    running,
):
    officer = closed_unit_officer(running.city)
    request = pb.GetOfficerRequest(name=f"officers/{officer.officer_id}")

    found = (await running.stub.GetOfficer(request, metadata=running.auth("agent"))).officer
    listed = await running.stub.SearchOfficers(
        pb.SearchOfficersRequest(unit=f"units/{officer.unit_id}", page_size=1000),
        metadata=running.auth("agent"),
    )

    assert (found.phone, found.phone_withheld) == ("", True)
    assert found.email == officer.email
    assert listed.officers
    assert all(o.phone == "" and o.phone_withheld for o in listed.officers if o.name == found.name)


@pytest.mark.parametrize("who", ["own-unit-officer", "directory-admin"])
async def test_the_units_own_staff_and_directory_admins_see_its_direct_numbers(running, who):
    officer = closed_unit_officer(running.city)
    metadata = (
        running.auth("officer", unit=f"units/{officer.unit_id}")
        if who == "own-unit-officer"
        else running.auth("directory_admin")
    )

    found = await running.stub.GetOfficer(
        pb.GetOfficerRequest(name=f"officers/{officer.officer_id}"), metadata=metadata
    )

    assert (found.officer.phone, found.officer.phone_withheld) == (officer.phone, False)


async def test_an_officer_of_another_unit_does_not_see_those_direct_numbers(running):
    officer = closed_unit_officer(running.city)
    other_unit = next(u.unit_id for u in running.city.units if u.unit_id != officer.unit_id)

    found = await running.stub.GetOfficer(
        pb.GetOfficerRequest(name=f"officers/{officer.officer_id}"),
        metadata=running.auth("officer", unit=f"units/{other_unit}"),
    )

    assert (found.officer.phone, found.officer.phone_withheld) == ("", True)


async def test_an_agent_may_not_write_to_the_directory(running):
    request = pb.CreateUnitRequest(
        unit_id="ny-enhet",
        unit=pb.Unit(
            display_name="Ny enhet",
            district="districts/farsta",
            mailbox="ny@example.stockholm.se",
            acute_phone="08-508 00 000",
            contact_policy=pb.CONTACT_POLICY_CONTACT_CENTER_ONLY,
        ),
    )

    error = await refusal(running.stub.CreateUnit(request, metadata=running.auth("agent")))

    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_info(error).reason == "ROLE_NOT_ALLOWED"


UPDATE_MISSING_UNIT = pb.UpdateUnitRequest(
    unit=pb.Unit(name="units/does-not-exist", mailbox="ny@example.stockholm.se", etag="0123456789abcdef0123"),
    update_mask=field_mask_pb2.FieldMask(paths=["mailbox"]),
)


async def test_permission_is_checked_before_existence(running):
    as_agent = await refusal(running.stub.UpdateUnit(UPDATE_MISSING_UNIT, metadata=running.auth("agent")))
    as_admin = await refusal(
        running.stub.UpdateUnit(UPDATE_MISSING_UNIT, metadata=running.auth("directory_admin"))
    )

    assert as_agent.code() is grpc.StatusCode.PERMISSION_DENIED
    assert as_admin.code() is grpc.StatusCode.NOT_FOUND


async def test_only_directory_administrators_export_the_directory_with_its_direct_numbers(running):
    error = await refusal(
        running.stub.ExportDirectory(pb.ExportDirectoryRequest(), metadata=running.auth("agent"))
    )
    exported = await running.stub.ExportDirectory(
        pb.ExportDirectoryRequest(), metadata=running.auth("directory_admin")
    )

    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_info(error).reason == "ROLE_NOT_ALLOWED"
    assert {f.file_name for f in exported.files} >= {"units.csv", "officers.csv"}


async def test_a_citizen_may_not_resolve_who_is_responsible(running):
    unit = running.city.units[0]
    request = pb.ResolveResponsibleRequest(
        person_number=CITIZEN_NUMBER, district=f"districts/{unit.district_id}", purpose="Mina sidor"
    )

    error = await refusal(
        running.stub.ResolveResponsible(
            request, metadata=running.auth("citizen", person_number=CITIZEN_NUMBER)
        )
    )

    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_info(error).reason == "ROLE_NOT_ALLOWED"
