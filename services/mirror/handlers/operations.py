"""What platform engineers do with the mirror: see each source's state, look at the quarantine and read a
record again, reconcile a source now, decide on a held sweep, read the agreements. Nothing here shows a
person's data."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.common.auth import Caller
from services.common.errors import FailedPrecondition, NotFound
from services.common.leases import Lease
from services.common.pagination import PageRequest
from services.mirror.clients import SourceFailure
from services.mirror.handlers.mirror import Mirror
from services.mirror.handlers.sync import Reconciliation, _payload_hash, _record_key
from services.mirror.model.overview import Agreement, Freshness
from services.mirror.model.records import MalformedRecord
from services.mirror.store import HeldSweep, Quarantined, SourceRow
from services.mirror.store.tables import leases

SYNC_LEASE = "mirror.sync."
RECONCILE_LEASE = "mirror.reconcile."


@dataclass(frozen=True)
class SourceStatus:
    row: SourceRow
    records: int
    quarantined: int
    lease_holder: str
    held_sweeps: tuple[int, ...]


async def list_sources(*, mirror: Mirror) -> tuple[list[SourceStatus], list[Freshness]]:
    now = mirror.clock()
    async with mirror.uow(write=False) as uow:
        rows = await uow.mirror.sources()
        records = await uow.mirror.count_records()
        quarantined = await uow.mirror.quarantined_counts()
        holders = await uow.mirror.lease_holders(SYNC_LEASE, now)
        sweeps = await uow.mirror.held_sweeps()
    statuses = [
        SourceStatus(
            row=row,
            records=records.get(row.name, 0),
            quarantined=quarantined.get(row.name, 0),
            lease_holder=holders.get(row.name, ""),
            held_sweeps=tuple(s.sweep_id for s in sweeps if s.source == row.name),
        )
        for row in rows
    ]
    return statuses, list(mirror.freshness(rows))


def _known(mirror: Mirror, source: str) -> None:
    if source not in mirror.clients:
        raise NotFound(f"sources/{source}")


async def list_quarantine(
    *, mirror: Mirror, source: str | None, page: PageRequest
) -> tuple[list[Quarantined], str]:
    if source is not None:
        _known(mirror, source)
    after = page.after_text_pair()
    async with mirror.uow(write=False) as uow:
        found = await uow.mirror.quarantined(source=source, after=after, limit=page.size + 1)
    items = found[: page.size]
    last = items[-1] if items else None
    return items, page.next_token(
        [last.source, last.record_id] if last else None, more=len(found) > page.size
    )


async def retry_quarantined(
    *, mirror: Mirror, source: str, record_id: str
) -> tuple[bool, Quarantined | None]:
    """Reads the record from its source again: stored and released when it can be read now."""
    _known(mirror, source)
    async with mirror.uow(write=False) as uow:
        held = await uow.mirror.get_quarantined(source, record_id)
    if held is None:
        raise NotFound(f"sources/{source}/quarantine/{record_id}")
    sync = mirror.syncs[source]
    try:
        raw = await sync.client.record(record_id)
    except SourceFailure as failure:
        raise FailedPrecondition(
            f"sources/{source} does not answer now: {failure.kind.value}", reason="SOURCE_DOWN"
        ) from None
    now = mirror.clock()
    async with mirror.uow() as uow:
        if raw is None:
            # Gone from the source meanwhile: nothing left to quarantine.
            await uow.mirror.release(source, [record_id])
            await uow.commit()
            return True, None
        try:
            record = sync.parse(raw)
        except MalformedRecord as error:
            await uow.mirror.quarantine(source, _record_key(raw), error.reason, _payload_hash(raw), now)
            await uow.commit()
            return False, await _quarantined(mirror, source, record_id)
        await sync._store(uow, [record], now)
        await uow.mirror.release(source, [record_id])
        await uow.commit()
    return True, None


async def _quarantined(mirror: Mirror, source: str, record_id: str) -> Quarantined | None:
    async with mirror.uow(write=False) as uow:
        return await uow.mirror.get_quarantined(source, record_id)


async def reconcile_source(*, mirror: Mirror, source: str) -> Reconciliation:
    """A full reconciliation now, under the source's reconciliation lease (one at a time across replicas)."""
    _known(mirror, source)
    lease = Lease(
        mirror.engine,
        leases,
        name=RECONCILE_LEASE + source,
        holder=mirror.holder,
        ttl_seconds=mirror.lease_seconds,
        clock=mirror.clock,
    )
    if await lease.acquire() is None:
        raise FailedPrecondition(
            f"a reconciliation of sources/{source} is under way", reason="RECONCILIATION_RUNNING"
        )

    async def keep_holding() -> None:
        while True:
            await asyncio.sleep(mirror.lease_seconds / 3)
            await lease.renew()

    holding = asyncio.create_task(keep_holding())
    try:
        return await mirror.syncs[source].reconcile()
    except SourceFailure as failure:
        raise FailedPrecondition(
            f"sources/{source} does not answer now: {failure.kind.value}", reason="SOURCE_DOWN"
        ) from None
    finally:
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
        await lease.release()
        mirror.forget_snapshot()


async def resolve_held_sweep(
    *, mirror: Mirror, caller: Caller, source: str, sweep_id: int, apply: bool
) -> int:
    _known(mirror, source)
    async with mirror.uow() as uow:
        sweep: HeldSweep | None = next(
            (s for s in await uow.mirror.held_sweeps(source) if s.sweep_id == sweep_id), None
        )
        if sweep is None:
            raise NotFound(f"sources/{source}/sweeps/{sweep_id}")
        removed = await uow.mirror.remove(source, list(sweep.record_ids)) if apply else 0
        await uow.mirror.resolve_sweep(
            sweep_id, state="applied" if apply else "discarded", by=caller.subject, now=mirror.clock()
        )
        await uow.commit()
    return removed


async def list_agreements(*, mirror: Mirror) -> list[Agreement]:
    return list((await mirror.current()).agreements.values())
