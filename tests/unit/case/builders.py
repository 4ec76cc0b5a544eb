"""Small, valid case objects, callers, a settable clock and a fake directory, for the case service's tests.

Shared by the case service's unit, integration and end-to-end tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.case.model import (
    Case,
    Channel,
    Contact,
    ContactParty,
    FeedbackChannel,
    Routing,
)
from services.common.auth import Caller, Role
from services.common.business_calendar import STOCKHOLM
from services.common.errors import DomainError, InvalidArgument, Unavailable
from tests.person_numbers import person_number

ASTRID = person_number(date(1938, 4, 12), serial="242")
BERTIL = person_number(date(1941, 9, 3), serial="157")
CARIN = person_number(date(1935, 1, 27), serial="366")


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Stockholm wall-clock time, as the UTC instant the service stores."""
    return datetime(year, month, day, hour, minute, tzinfo=STOCKHOLM).astimezone(UTC)


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def caller(
    role: Role,
    *,
    subject: str | None = None,
    unit: str | None = None,
    person: str | None = None,
) -> Caller:
    return Caller(
        subject=subject or f"test-{role.value}",
        roles=frozenset({role}),
        unit=unit,
        person_number=person,
        token="",
    )


AGENT = caller(Role.AGENT, subject="agent-anna")
OTHER_AGENT = caller(Role.AGENT, subject="agent-bo")
AUDITOR = caller(Role.AUDITOR, subject="auditor-ida")
FINANCE = caller(Role.FINANCE, subject="finance-fia")


def officer(unit_id: str, subject: str = "officer-olle") -> Caller:
    return caller(Role.OFFICER, subject=subject, unit=f"units/{unit_id}")


def manager(unit_id: str, subject: str = "manager-maja") -> Caller:
    return caller(Role.UNIT_MANAGER, subject=subject, unit=f"units/{unit_id}")


def citizen(person: str, subject: str = "citizen") -> Caller:
    return caller(Role.CITIZEN, subject=subject, person=person)


def contact(**changes: Any) -> Contact:
    values: dict[str, Any] = {
        "channel": Channel.PHONE,
        "party": ContactParty.SELF,
        "summary": "Undrar när hemtjänsten kommer på fredag.",
    }
    return Contact(**(values | changes))


def new_case(**changes: Any) -> Case:
    """A case as CreateCase receives it: the person number is passed beside it."""
    values: dict[str, Any] = {
        "category": "aldreomsorg",
        "case_type": "hemtjanst",
        "case_class": "information-och-vagledning",
        "district_id": "farsta",
        "person_number": None,
        "acute": False,
        "feedback_channel": FeedbackChannel.PHONE,
    }
    return Case(**(values | changes))


def unit_id_of(district_id: str) -> str:
    return f"{district_id}-bestallarenhet"


def routing_for(district_id: str) -> Routing:
    return Routing(
        unit_id=unit_id_of(district_id),
        district_id=district_id,
        mailbox=f"aldreomsorg.{district_id}@stockholm.example",
        acute_phone="08-508 00 000",
        officer_id=f"{district_id}-handlaggare",
        team="",
        manager_emails=(f"chef.{district_id}@stockholm.example",),
    )


CURRENT_DISTRICTS = ("farsta", "bromma", "jarva", "sodermalm", "kungsholmen")


@dataclass
class ResolveCall:
    person_number: str | None
    district_id: str | None
    postal_code: str
    named_officer: str
    need_role: str
    purpose: str


@dataclass
class FakeDirectory:
    """The directory as the case service sees it: every district has one unit, officers belong where told.

    `down` makes every call fail as an unreachable directory does.
    """

    districts: dict[str, str] = field(
        default_factory=lambda: {d: d for d in CURRENT_DISTRICTS} | {"spanga-tensta": "jarva"}
    )
    officers: dict[str, str] = field(
        default_factory=lambda: (
            {f"{d}-handlaggare": unit_id_of(d) for d in CURRENT_DISTRICTS}
            | {f"{d}-handlaggare-2": unit_id_of(d) for d in CURRENT_DISTRICTS}
        )
    )
    # Postal code prefixes, for forwarding a case without a district.
    postal_prefixes: dict[str, str] = field(default_factory=lambda: {"123": "farsta", "167": "bromma"})
    down: bool = False
    resolved: list[ResolveCall] = field(default_factory=list)

    def _check_up(self) -> None:
        if self.down:
            raise Unavailable(
                "the directory does not answer; nothing was changed", reason="DIRECTORY_UNAVAILABLE"
            )

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
        self._check_up()
        self.resolved.append(
            ResolveCall(person_number, district_id, postal_code, named_officer, need_role, purpose)
        )
        if named_officer:
            unit = self.officers[named_officer.removeprefix("officers/")]
            district = unit.removesuffix("-bestallarenhet")
            return replace(routing_for(district), officer_id=named_officer.removeprefix("officers/"))
        if district_id:
            return routing_for(self.districts[district_id])
        by_postal_code = self.postal_prefixes.get(postal_code[:3])
        if by_postal_code is None:
            raise InvalidArgument.field("postal_code", "no unit's area covers it")
        return routing_for(by_postal_code)

    async def district_ids(self, caller: Caller) -> dict[str, str]:
        self._check_up()
        return dict(self.districts)

    async def officer_unit(self, caller: Caller, officer_id: str) -> str | None:
        self._check_up()
        return self.officers.get(officer_id)


def violated_fields(error: DomainError) -> list[str]:
    assert isinstance(error, InvalidArgument), f"expected InvalidArgument, got {error!r}"
    return [v.field for v in error.violations]
