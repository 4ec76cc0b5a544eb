"""What the mirror's use cases share: their dependencies (`Mirror`, wired by bootstrap), the sources'
freshness and the agreements, both read often and kept for a moment, and the access log of reads."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.audit import AccessRecord
from services.common.audit_writer import AccessLog
from services.common.auth import Caller
from services.common.grants import AccessGrant, GrantVerifier
from services.mirror.clients import UpstreamClient
from services.mirror.handlers.sync import SourceSync, UowFactory
from services.mirror.model.overview import Agreement, Freshness
from services.mirror.store import SourceRow

SERVICE = "mirror"


@dataclass
class Snapshot:
    """Sources and agreements as last read, kept `max_age` seconds: every read answers with them."""

    max_age: float = 1.0
    sources: list[SourceRow] = field(default_factory=list)
    agreements: dict[str, Agreement] = field(default_factory=dict)
    loaded_at: float = -1e9


@dataclass
class Mirror:
    uow: UowFactory
    engine: AsyncEngine
    access_log: AccessLog
    grants: GrantVerifier
    clients: Mapping[str, UpstreamClient]
    syncs: Mapping[str, SourceSync]
    stale_seconds: float
    # This replica, as it holds leases, and how long it holds them.
    holder: str = "mirror"
    lease_seconds: float = 30.0
    # The configured sources as (name, kind, district), each with a row of its state.
    configured: tuple[tuple[str, str, str], ...] = ()
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    snapshot: Snapshot = field(default_factory=Snapshot)

    def today(self) -> date:
        return self.clock().date()

    async def current(self) -> Snapshot:
        snapshot = self.snapshot
        if time.monotonic() - snapshot.loaded_at >= snapshot.max_age:
            async with self.uow(write=False) as uow:
                rows = await uow.mirror.sources()
                snapshot.agreements = {a.district_id: a for a in await uow.mirror.agreements()}
            if {name for name, _, _ in self.configured} - {row.name for row in rows}:
                await self.ensure_sources()
                async with self.uow(write=False) as uow:
                    rows = await uow.mirror.sources()
            configured = {name for name, _, _ in self.configured}
            snapshot.sources = [row for row in rows if row.name in configured]
            snapshot.loaded_at = time.monotonic()
        return snapshot

    async def ensure_sources(self) -> None:
        """A row of state for every configured source (a source configured later gets one too)."""
        async with self.uow() as uow:
            await uow.mirror.ensure_sources(self.configured)
            await uow.commit()

    def forget_snapshot(self) -> None:
        self.snapshot.loaded_at = -1e9

    def freshness(self, rows: Iterable[SourceRow], *, refreshed: Iterable[str] = ()) -> list[Freshness]:
        now = self.clock()
        fresh = set(refreshed)
        found = []
        for row in rows:
            as_of = row.synced_through
            age = (now - as_of).total_seconds() if as_of is not None else None
            never = not row.full_sync_done or as_of is None
            state = "never_synced" if never and row.state == "ok" else row.state
            stale = never or age is None or age > self.stale_seconds
            if row.name in fresh:
                stale, age, as_of, state = False, 0.0, now, "ok"
            found.append(
                Freshness(
                    source=row.name,
                    district_id=row.district_id,
                    as_of=as_of,
                    age_seconds=max(0.0, age) if age is not None else None,
                    stale=stale,
                    state=state,
                    refreshed=row.name in fresh,
                )
            )
        return found


async def log_read(
    mirror: Mirror, caller: Caller, person: str, action: str, purpose: str, grant: AccessGrant | None = None
) -> None:
    """One access-log entry: who, in which role, what of the person (the sections), why, and under which
    grant and case."""
    why = purpose or "no purpose given"
    if grant is not None:
        why = f"{why[:180]} (grant {grant.grant_id[:40]} of {grant.case[:30]})"
    await mirror.access_log.record(
        AccessRecord(
            actor=caller.subject,
            actor_role=caller.primary_role,
            person_number=person,
            action=f"mirror.{action}"[:128],
            purpose=why[:255],
            occurred_at=mirror.clock(),
        )
    )
