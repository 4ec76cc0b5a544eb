"""The case service's adapters to other services, over gRPC, with the caller's own token passed on.

Passing the caller's token on keeps the other service's access log and authorisation about the agent who
forwards, not about this service. Their refusals become our domain errors in one place
(services.common.remote).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from aldredirekt.directory.v1 import directory_pb2 as pb
from aldredirekt.directory.v1 import directory_pb2_grpc
from aldredirekt.mirror.v1 import mirror_pb2, mirror_pb2_grpc

from services.case.model import Routing
from services.common.auth import Caller
from services.common.remote import domain_error

# The directory's fields as the case service's callers named them.
_FORWARD_FIELDS = {"district": "case.district"}


class Directory(Protocol):
    async def resolve(
        self,
        caller: Caller,
        *,
        person_number: str | None,
        district_id: str | None,
        postal_code: str,
        named_officer: str,
        need_role: str,
        purpose: str,
    ) -> Routing: ...

    async def district_ids(self, caller: Caller) -> dict[str, str]:
        """Every district id, retired ones mapped to their current successor, current ones to themselves."""
        ...

    async def officer_unit(self, caller: Caller, officer_id: str) -> str | None: ...


@dataclass
class GrpcDirectory:
    channel: grpc.aio.Channel
    timeout: float = 3.0
    district_cache_seconds: float = 600.0
    _districts: dict[str, str] = field(default_factory=dict)
    _districts_at: float = 0.0

    @property
    def stub(self) -> directory_pb2_grpc.DirectoryServiceAsyncStub:
        return directory_pb2_grpc.DirectoryServiceStub(self.channel)

    @staticmethod
    def _metadata(caller: Caller) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {caller.token}"),)

    async def resolve(
        self,
        caller: Caller,
        *,
        person_number: str | None,
        district_id: str | None,
        postal_code: str,
        named_officer: str,
        need_role: str,
        purpose: str,
    ) -> Routing:
        request = pb.ResolveResponsibleRequest(
            person_number=person_number or "",
            district=f"districts/{district_id}" if district_id else "",
            postal_code=postal_code,
            named_officer=named_officer,
            need_role=pb.OfficerRole.Value(
                f"OFFICER_ROLE_{need_role.upper()}" if need_role else "OFFICER_ROLE_UNSPECIFIED"
            ),
            purpose=purpose,
        )
        try:
            answer = await self.stub.ResolveResponsible(
                request, metadata=self._metadata(caller), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as error:
            raise domain_error(error, service="directory", field_of=_FORWARD_FIELDS) from None
        officer = answer.officer.name.removeprefix("officers/") if answer.HasField("officer") else None
        managers = tuple(m.email for m in answer.unit_managers if m.email)
        return Routing(
            unit_id=answer.unit.name.removeprefix("units/"),
            district_id=answer.district.name.removeprefix("districts/"),
            mailbox=answer.unit.mailbox,
            acute_phone=answer.unit.acute_phone,
            officer_id=officer,
            team=answer.team,
            manager_emails=managers,
        )

    async def district_ids(self, caller: Caller) -> dict[str, str]:
        if self._districts and time.monotonic() - self._districts_at < self.district_cache_seconds:
            return self._districts
        try:
            answer = await self.stub.ListDistricts(
                pb.ListDistrictsRequest(include_retired=True, page_size=1000),
                metadata=self._metadata(caller),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if self._districts:
                return self._districts  # a stale list beats refusing every new case
            raise domain_error(error, service="directory") from None
        by_id = {d.name.removeprefix("districts/"): d for d in answer.districts}
        mapping: dict[str, str] = {}
        for district_id, district in by_id.items():
            current = district
            for _ in range(10):
                successor = current.successor.removeprefix("districts/")
                if not successor or successor not in by_id:
                    break
                current = by_id[successor]
            mapping[district_id] = current.name.removeprefix("districts/")
        self._districts, self._districts_at = mapping, time.monotonic()
        return mapping

    async def officer_unit(self, caller: Caller, officer_id: str) -> str | None:
        try:
            answer = await self.stub.GetOfficer(
                pb.GetOfficerRequest(name=f"officers/{officer_id}"),
                metadata=self._metadata(caller),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise domain_error(error, service="directory") from None
        unit: str = answer.officer.unit
        return unit.removeprefix("units/")


@dataclass(frozen=True)
class CareSystemRouting:
    """What the district's care system says of a person, through the mirror: their district and named
    officer (or team)."""

    district_id: str
    officer_id: str
    team: str
    postal_code: str


class CareSystem(Protocol):
    async def routing(self, caller: Caller, *, person_number: str, purpose: str) -> CareSystemRouting | None:
        """None when no district's Paraply holds the person with a current decision; Unavailable when the
        mirror does not answer."""
        ...


@dataclass
class GrpcMirror:
    """The mirror's GetRouting, with the agent's own token passed on (the mirror logs the read as theirs)."""

    channel: grpc.aio.Channel
    timeout: float = 2.0

    async def routing(self, caller: Caller, *, person_number: str, purpose: str) -> CareSystemRouting | None:
        stub = mirror_pb2_grpc.MirrorServiceStub(self.channel)
        try:
            answer = await stub.GetRouting(
                mirror_pb2.GetRoutingRequest(person_number=person_number, purpose=purpose),
                metadata=(("authorization", f"Bearer {caller.token}"),),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise domain_error(error, service="mirror") from None
        if not answer.found:
            return None
        return CareSystemRouting(
            district_id=answer.district.removeprefix("districts/"),
            officer_id=answer.named_officer.removeprefix("officers/"),
            team=answer.team,
            postal_code=answer.postal_code,
        )
