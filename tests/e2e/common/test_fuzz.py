"""Every RPC of every service, sent random and malformed requests by a caller it allows: none may answer
INTERNAL or UNKNOWN.

The RPCs are found from the descriptors of the services each deployable serves (tests.live_services
starts them all), so a new service or RPC is fuzzed without a change here. Values are drawn by hypothesis
from each field's type: text of every kind and length, integers at their limits, unknown enum numbers,
times past year 9999 and nanos out of range, nested messages, repeated fields; and raw bytes that are no
message at all. Bounded per RPC so that the whole run takes well under a minute.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf import message_factory
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.case import handlers as case_handlers
from services.common.auth import Role
from services.common.devissuer import DevIssuer
from services.common.ocr import generate_ocr
from services.directory import handlers as directory_handlers
from tests.live_services import LiveServices, live_services
from tests.person_numbers import person_number
from tests.unit.case.builders import AGENT, contact, new_case
from tests.unit.directory.cities import city_files, small_city

BROKEN = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
EXAMPLES_PER_RPC = 40
MAX_DEPTH = 3
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

# Text that looks like what the services parse, at and past their edges.
SHAPED_TEXT = [
    "",
    " ",
    "cases/1",
    "cases/0",
    "cases/-1",
    "cases/99999999999999999999999",
    "cases/1/consents/1",
    "units/norra-innerstaden-bestallarenhet",
    "units/",
    "districts/bromma",
    "officers/x",
    "officers/a/absences/b",
    "outboxMessages/1",
    "19400101-1230",
    "194001011230",
    "400101+1230",
    "16270",
    "162 70",
    "2026-03",
    "9999-12",
    "0000-00",
    "a" * 20_000,
    "å" * 5_000,
    "\x00",
    "\u202e",
    "../../etc/passwd",
    "' OR 1=1 --",
    "eyJxIjoiYSIsImEiOnt9fQ",
    "eyJxIjoiYSIsImEiOnt9fQ.AAAA",
]


# Names and values that exist in the services under test (filled once they run), so that requests get
# past the first check more often and reach deeper code.
REAL_TEXT: list[str] = []


def text() -> st.SearchStrategy[str]:
    real = st.sampled_from(REAL_TEXT) if REAL_TEXT else st.nothing()
    return st.one_of(real, real, st.sampled_from(SHAPED_TEXT), st.text(max_size=80))


def scalar(field: d.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == d.FieldDescriptor.TYPE_STRING:
        return text()
    if kind == d.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (d.FieldDescriptor.TYPE_INT32, d.FieldDescriptor.TYPE_SINT32, d.FieldDescriptor.TYPE_SFIXED32):
        return st.one_of(st.sampled_from([0, 1, -1, *INT32]), st.integers(*INT32))
    if kind in (d.FieldDescriptor.TYPE_INT64, d.FieldDescriptor.TYPE_SINT64, d.FieldDescriptor.TYPE_SFIXED64):
        return st.one_of(st.sampled_from([0, 1, -1, *INT64, 253402300800]), st.integers(*INT64))
    if kind in (d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (d.FieldDescriptor.TYPE_UINT64, d.FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if kind in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == d.FieldDescriptor.TYPE_ENUM:
        enum: Any = field.enum_type
        known = [v.number for v in enum.values]
        return st.one_of(st.sampled_from(known), st.sampled_from(known), st.integers(*INT32))
    raise AssertionError(f"no strategy for field type {kind}")


def value(field: d.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == d.FieldDescriptor.TYPE_MESSAGE:
        nested: Any = field.message_type
        return message(nested, depth + 1)
    return scalar(field)


def message(descriptor: d.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Random messages of a type: each field left unset or given a drawn value."""
    kind = message_factory.GetMessageClass(descriptor)
    if depth > MAX_DEPTH:
        return st.just(kind())
    fields = {}
    for field in descriptor.fields:
        one = value(field, depth)
        # proto3 cannot express a repeated field inside a map's value here; maps are lists of entries.
        fields[field.name] = st.lists(one, max_size=3) if field.is_repeated else one

    def build(values: dict[str, Any]) -> Message:
        built = kind()
        for name, drawn in values.items():
            field = descriptor.fields_by_name[name]
            if field.is_repeated:
                target = getattr(built, name)
                entry_type: Any = field.message_type
                if entry_type is not None and entry_type.GetOptions().map_entry:
                    for entry in drawn:
                        if entry_type.fields_by_name["value"].type == d.FieldDescriptor.TYPE_MESSAGE:
                            target[entry.key].CopyFrom(entry.value)
                        else:
                            target[entry.key] = entry.value
                elif entry_type is not None:
                    for item in drawn:
                        target.add().CopyFrom(item)
                else:
                    target.extend(drawn)
            elif field.type == d.FieldDescriptor.TYPE_MESSAGE:
                getattr(built, name).CopyFrom(drawn)
            else:
                setattr(built, name, drawn)
        return built

    return st.fixed_dictionaries({}, optional=fields).map(build)


@dataclass(frozen=True)
class Rpc:
    deployable: str
    path: str
    method: d.MethodDescriptor
    roles: frozenset[Role]

    def __str__(self) -> str:
        return f"{self.deployable}{self.path}"


def rpcs_of(live: LiveServices) -> list[Rpc]:
    found = []
    for deployable, services in live.services.items():
        for service in services:
            roles = service.roles
            for method in service.descriptor.methods:
                path = f"/{service.full_name}/{method.name}"
                found.append(Rpc(deployable, path, method, roles[path]))
    return found


def token_for(live: LiveServices, roles: frozenset[Role], chooser: random.Random) -> str:
    role = chooser.choice(sorted(roles))
    unit = None
    if role in (Role.OFFICER, Role.UNIT_MANAGER):
        unit = f"units/{chooser.choice(sorted(u.unit_id for u in small_city().units))}"
    person = person_number(date(1938, 4, 12), serial="242") if role is Role.CITIZEN else None
    return live.issuer.mint(role=role.value, unit=unit, person_number=person)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServices]:
    city = small_city()
    unit_ids = sorted(u.unit_id for u in city.units)
    REAL_TEXT[:] = [
        *(f"units/{u}" for u in unit_ids[:5]),
        *(f"officers/{o.officer_id}" for o in city.officers[:5]),
        *sorted({f"districts/{u.district_id}" for u in city.units})[:5],
        *(f"cases/{n}" for n in range(1, 7)),
        "cases/1/consents/1",
        *(area.postal_code_ranges[0].first for area in city.areas[:3]),
        "aldreomsorg",
        "hemtjanst",
        "information-och-vagledning",
        person_number(date(1938, 4, 12), serial="242"),
        "request-1",
        "2026-11",
        "sources/agresso",
        "sources/paraply-bromma",
        "sources/paraply-bromma/quarantine/p-bromma-000001",
        "sources/agresso/sweeps/1",
        generate_ocr("2026110001"),
    ]

    async def seed(name: str, running: Any) -> None:
        if name == "directory":
            await directory_handlers.import_directory(
                directory=running.core, files=city_files(), validate_only=False
            )
        if name == "case":
            # A few real cases, some forwarded, so that unit-side calls meet cases that exist.
            issuer = DevIssuer.load_or_create(Path(running.settings.auth.dev_dir))
            agent = replace(AGENT, token=issuer.mint(role="agent", subject=AGENT.subject))
            for index in range(6):
                case = await case_handlers.create_case(
                    cases=running.core,
                    caller=agent,
                    case=new_case(person_number=person_number(date(1938, 4, 12), serial="242")),
                    contact=contact(),
                    anonymous=False,
                )
                if index % 2:
                    await case_handlers.forward_case(
                        cases=running.core,
                        caller=agent,
                        case_id=case.case_id,
                        postal_code="",
                        named_officer=f"officers/{city.officers[0].officer_id}",
                        note="",
                    )

    with live_services(Path(tmp_path_factory.mktemp("fuzz")), prepare=seed) as started:
        yield started
    for channel in _channels.values():
        channel.close()
    _channels.clear()


_channels: dict[str, grpc.Channel] = {}


def call(live: LiveServices, rpc: Rpc, body: bytes, token: str) -> grpc.StatusCode:
    address = live.addresses[rpc.deployable]
    channel = _channels.get(address)
    if channel is None:
        # The client's default limit on trailers: an error must fit in it to reach the caller as itself.
        channel = _channels[address] = grpc.insecure_channel(
            address, options=[("grpc.max_metadata_size", 8192)]
        )
    stub = channel.unary_unary(rpc.path, request_serializer=None, response_deserializer=None)
    try:
        stub(body, metadata=(("authorization", f"Bearer {token}"),), timeout=20)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


def _nested(depth: int) -> bytes:
    """Field 1 holding field 1 holding field 1 …: deeper than any decoder's recursion limit."""
    body = b""
    for _ in range(depth):
        size, length = len(body), b""
        while True:
            byte = size & 0x7F
            size >>= 7
            length += bytes([byte | (0x80 if size else 0)])
            if not size:
                break
        body = b"\x0a" + length + body
    return body


def test_every_rpc_is_found_from_the_descriptors(live: LiveServices) -> None:
    found = {str(rpc) for rpc in rpcs_of(live)}
    assert "case/aldredirekt.case.v1.CaseService/CreateCase" in found
    assert "directory/aldredirekt.directory.v1.DirectoryService/ResolveResponsible" in found
    assert "directory/aldredirekt.common.v1.AccessLogService/ListAccessLog" in found


def fuzzer(live: LiveServices, rpc: Rpc) -> Any:
    """A hypothesis test of one RPC: random requests by a caller it allows."""
    chooser = random.Random(rpc.path)

    @settings(
        max_examples=EXAMPLES_PER_RPC,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=message(rpc.method.input_type))
    def fuzz(request: Message) -> None:
        code = call(live, rpc, request.SerializeToString(), token_for(live, rpc.roles, chooser))
        assert code not in BROKEN, f"{rpc} answered {code.name} to {request!r:.300}"

    return fuzz


def test_no_rpc_answers_internal_or_unknown_to_random_requests(live: LiveServices) -> None:
    broken: list[str] = []
    for rpc in rpcs_of(live):
        try:
            fuzzer(live, rpc)()
        except AssertionError as error:
            broken.append(str(error).splitlines()[0])
    assert not broken, "\n".join(broken)


@settings(
    max_examples=12, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(
    body=st.one_of(
        st.binary(min_size=1, max_size=200),
        st.sampled_from(
            [_nested(200), _nested(2000), b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05ab", b"\xff" * 64]
        ),
    )
)
def test_bytes_that_are_no_message_get_invalid_argument_from_every_rpc(
    live: LiveServices, body: bytes
) -> None:
    for rpc in rpcs_of(live):
        code = call(live, rpc, body, token_for(live, rpc.roles, random.Random(rpc.path)))
        assert code not in BROKEN, f"{rpc} answered {code.name} to {body[:60]!r}"
