"""The case service's view of the directory, over gRPC, with the caller's own token passed on.

Passing the caller's token on keeps the directory's access log and authorisation about the agent who
forwards, not about this service.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from aldredirekt.directory.v1 import directory_pb2 as pb
from aldredirekt.directory.v1 import directory_pb2_grpc

from services.case.model import Routing
from services.common.auth import Caller
from services.common.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied, Unavailable


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


_UNAVAILABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


def _translate(error: grpc.aio.AioRpcError, *, field_of: dict[str, str] | None = None) -> Exception:
    code, details = error.code(), error.details() or ""
    if code in _UNAVAILABLE:
        return Unavailable(
            "the directory does not answer; nothing was changed, try again", reason="DIRECTORY_DOWN"
        )
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(details.removesuffix(" was not found"), message=details)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        field, _, description = details.partition(": ")
        mapped = (field_of or {}).get(field, field)
        return InvalidArgument([FieldViolation(mapped or "request", description or details)])
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(details or "the directory refused", reason="DIRECTORY_REFUSED")
    return Unavailable(f"the directory failed ({code.name})", reason="DIRECTORY_FAILED")


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
            raise _translate(error, field_of={"district": "case.district"}) from None
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
            raise _translate(error) from None
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
            raise _translate(error) from None
        unit: str = answer.officer.unit
        return unit.removeprefix("units/")
