"""Keeping the mirror in step with each source: incremental sync by cursor, full reconciliation, the
quarantine, and the state each source is in.

Incremental sync reads a source's change feed, ordered by (update time, id):
- The window's end is fixed before anything is applied: the source's own time (its first answer's
  X-Server-Time) minus a settle period, so that a change still being committed upstream, whose time may be
  earlier than rows already served, is not stepped over; records beyond the end wait for the next run.
- It reads from the bookmark minus an overlap, so late commits the settle period missed are still found.
- Each page is stored with the bookmark in one transaction: the bookmark never passes what was read in
  full; an unchanged record writes nothing; a bad record is quarantined and never stops the cursor.

Reconciliation lists every id the source has; only after a complete listing does it remove what the mirror
holds but the source no longer has (sources keep no tombstones), and only records older than the listing,
so a record that arrived meanwhile is never taken for a deleted one. A removal of more than the threshold
(5 %) of a source's records is held for an operator instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.mirror.clients import AGRESSO, ChangePage, FailureKind, SourceFailure, UpstreamClient
from services.mirror.model.records import (
    InvoiceRecord,
    MalformedRecord,
    PersonRecord,
    parse_invoice,
    parse_person,
    parse_source_time,
)
from services.mirror.store import MirrorUnitOfWork

log = logging.getLogger("aldredirekt.mirror.sync")

UowFactory = Callable[..., MirrorUnitOfWork]


@dataclass(frozen=True)
class SyncSettings:
    page_size: int = 1000
    settle_seconds: float = 2.0
    overlap_seconds: float = 60.0
    sweep_threshold: float = 0.05
    ids_page_size: int = 10_000


@dataclass
class SyncResult:
    pages: int = 0
    read: int = 0
    changed: int = 0
    quarantined: int = 0
    synced_through: datetime | None = None


@dataclass(frozen=True)
class Reconciliation:
    listed: int
    removed: int
    added: int
    held_sweep: int | None


def _payload_hash(raw: object) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()


def _record_key(raw: object) -> str:
    """A quarantined record's key: its id when it has a usable one, else the hash of what came."""
    if isinstance(raw, dict):
        key = raw.get("id")
        if isinstance(key, str) and 0 < len(key) <= 100:
            return key
    return "sha256-" + _payload_hash(raw)[:40]


def _position(raw: object) -> tuple[datetime, str] | None:
    """A raw record's place in the feed, when it can be read."""
    if not isinstance(raw, dict):
        return None
    try:
        moment = parse_source_time(raw.get("updated_at"), "updated_at")
    except MalformedRecord:
        return None
    key = raw.get("id")
    return (moment, key) if isinstance(key, str) else None


def _beyond(items: list[Any], end: datetime) -> bool:
    """Whether a page reaches past the window's end (its last record does), so no page after it is read."""
    position = _position(items[-1]) if items else None
    return position is not None and position[0] > end


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class SourceSync:
    """The sync of one source. One replica at a time runs it, under the source's lease."""

    def __init__(
        self,
        client: UpstreamClient,
        uow: UowFactory,
        *,
        settings: SyncSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.client = client
        self.config = client.config
        self.uow = uow
        self.settings = settings
        self.clock = clock

    @property
    def is_agresso(self) -> bool:
        return self.config.kind == AGRESSO

    def parse(self, raw: object) -> PersonRecord | InvoiceRecord:
        return parse_invoice(raw) if self.is_agresso else parse_person(raw)

    async def _store(self, uow: MirrorUnitOfWork, records: list[Any], now: datetime) -> int:
        if self.is_agresso:
            return await uow.mirror.store_invoices(self.config.name, records, now)
        return await uow.mirror.store_people(self.config.name, self.config.district_id, records, now)

    async def incremental(self, *, fence: Any = None) -> SyncResult:
        """Reads the change feed from the bookmark (less the overlap) to the settled end, page by page."""
        async with self.uow(write=False) as uow:
            state = await uow.mirror.source(self.config.name)
        result = SyncResult(synced_through=state.synced_through)
        bookmark = (state.synced_through, state.bookmark_id) if state.synced_through else None
        since: str | None = None
        if bookmark is not None:
            since = _iso(bookmark[0] - timedelta(seconds=self.settings.overlap_seconds))
        page = await self.client.changes(since=since, after="", limit=self.settings.page_size)
        end = page.server_time - timedelta(seconds=self.settings.settle_seconds)
        # The next page is asked for while this one is parsed and stored: the source's time to answer and
        # the mirror's to store overlap, which a source of a quarter of a million invoices needs to be read
        # in full within a minute. Pages are still stored one after another, each with its bookmark.
        ahead: asyncio.Task[ChangePage] | None = None
        try:
            while True:
                if page.next_since is not None and not _beyond(page.items, end):
                    ahead = asyncio.create_task(
                        self.client.changes(
                            since=page.next_since, after=page.next_after, limit=self.settings.page_size
                        ),
                        name=f"{self.config.name}-next-page",
                    )
                bookmark, reached_end = await self._apply(page, end, bookmark, result, fence=fence)
                if reached_end or ahead is None:
                    break
                page, ahead = await ahead, None
        finally:
            if ahead is not None:
                # The run ended before it needed the page asked for (or failed): it is not waited for.
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)
        # Everything up to the settled end is in: the source's state is known up to there.
        synced = max(bookmark[0], end) if bookmark is not None else end
        # The bookmark and the outcome in one statement.
        through = (
            {"synced_through": synced, "bookmark_id": ""} if bookmark is None or synced > bookmark[0] else {}
        )
        async with self.uow(fence=fence) as uow:
            await uow.mirror.record_outcome(
                self.config.name,
                **through,
                last_success_time=self.clock(),
                last_attempt_time=self.clock(),
                state="ok",
                circuit=self.client.breaker.state,
                last_error="",
                full_sync_done=1,
            )
            await uow.commit()
        result.synced_through = synced
        return result

    async def _apply(
        self,
        page: ChangePage,
        end: datetime,
        bookmark: tuple[datetime, str] | None,
        result: SyncResult,
        *,
        fence: Any,
    ) -> tuple[tuple[datetime, str] | None, bool]:
        """Stores a page's records up to the window's end, quarantines its bad ones and moves the bookmark,
        in one transaction; returns the bookmark and whether the end was reached."""
        good: list[Any] = []
        bad: list[tuple[str, str, str]] = []
        last: tuple[datetime, str] | None = None
        reached_end = False
        for raw in page.items:
            position = _position(raw)
            if position is not None and position[0] > end:
                reached_end = True
                break
            try:
                good.append(self.parse(raw))
            except MalformedRecord as error:
                bad.append((_record_key(raw), error.reason, _payload_hash(raw)))
            if position is not None:
                last = position
        advanced = last is not None and (bookmark is None or last > bookmark)
        # A page with nothing in it (a run while nothing changes upstream) writes nothing: no transaction
        # for it. The run's last transaction still checks the fence.
        if good or bad or advanced:
            now = self.clock()
            async with self.uow(fence=fence) as uow:
                result.changed += await self._store(uow, good, now)
                for key, reason, digest in bad:
                    await uow.mirror.quarantine(self.config.name, key, reason, digest, now)
                await uow.mirror.release(self.config.name, [record.record_id for record in good])
                if advanced:
                    assert last is not None
                    await uow.mirror.set_bookmark(self.config.name, last[0], last[1])
                    bookmark = last
                await uow.commit()
        result.pages += 1
        result.read += len(good) + len(bad)
        result.quarantined += len(bad)
        return bookmark, reached_end

    async def failed(self, failure: SourceFailure) -> None:
        """Records why a run failed, for ListSources and every answer's freshness."""
        state = {
            FailureKind.CREDENTIALS: "credentials_refused",
            FailureKind.THROTTLED: "degraded",
            FailureKind.SERVER: "degraded",
            FailureKind.BAD_RESPONSE: "degraded",
        }.get(failure.kind, "down")
        if (
            failure.kind in (FailureKind.SERVER, FailureKind.BAD_RESPONSE)
            and self.client.breaker.state != "closed"
        ):
            state = "down"
        async with self.uow() as uow:
            await uow.mirror.record_outcome(
                self.config.name,
                last_attempt_time=self.clock(),
                state=state,
                circuit=self.client.breaker.state,
                last_error=str(failure),
            )
            await uow.commit()

    async def reconcile(self, *, fence: Any = None) -> Reconciliation:
        """Lists every id the source has; removes what it no longer has (or holds a large removal), reads
        what the mirror lacks."""
        started = self.clock()
        listed: set[str] = set()
        cursor: str | None = None
        while True:
            ids, cursor, _ = await self.client.ids(cursor=cursor, limit=self.settings.ids_page_size)
            listed.update(ids)
            if cursor is None:
                break
        async with self.uow(write=False) as uow:
            held = await uow.mirror.record_ids_before(self.config.name, started)
            everything = await uow.mirror.record_ids(self.config.name)
        gone = sorted(held - listed)
        missing = sorted(listed - everything)
        added = 0
        for record_id in missing[:1000]:
            raw = await self.client.record(record_id)
            if raw is None:
                continue
            now = self.clock()
            try:
                record = self.parse(raw)
            except MalformedRecord as error:
                async with self.uow(fence=fence) as uow:
                    await uow.mirror.quarantine(
                        self.config.name, _record_key(raw), error.reason, _payload_hash(raw), now
                    )
                    await uow.commit()
                continue
            async with self.uow(fence=fence) as uow:
                added += await self._store(uow, [record], now)
                await uow.commit()
        held_sweep = None
        removed = 0
        threshold = max(1, int(len(everything) * self.settings.sweep_threshold))
        async with self.uow(fence=fence) as uow:
            if len(gone) > threshold:
                held_sweep = await uow.mirror.hold_sweep(self.config.name, len(listed), gone, self.clock())
                log.warning(
                    "reconciliation of %s would remove %d of %d records: held for an operator",
                    self.config.name,
                    len(gone),
                    len(everything),
                )
            elif gone:
                removed = await uow.mirror.remove(self.config.name, gone)
            await uow.mirror.record_outcome(self.config.name, last_reconciliation_time=self.clock())
            await uow.commit()
        return Reconciliation(listed=len(listed), removed=removed, added=added, held_sweep=held_sweep)


async def run_sync_loop(
    sync: SourceSync,
    *,
    interval: float,
    reconcile_every: float,
    reconcile: Callable[[], Awaitable[object]],
    fence: Any = None,
) -> None:
    """What the lease holder of a source does: incremental runs every `interval`, a reconciliation every
    `reconcile_every` seconds, backing off as the source asks or its circuit says. Runs until cancelled."""
    last_reconciliation = time.monotonic()
    backoff = interval
    while True:
        try:
            result = await sync.incremental(fence=fence)
            backoff = interval
            if result.changed:
                log.info("%s: %d records changed", sync.config.name, result.changed)
            if time.monotonic() - last_reconciliation >= reconcile_every:
                await reconcile()
                last_reconciliation = time.monotonic()
            await asyncio.sleep(interval)
        except SourceFailure as failure:
            await sync.failed(failure)
            log.warning("%s", failure)
            wait = failure.retry_after if failure.retry_after is not None else backoff
            backoff = min(60.0, backoff * 2)
            await asyncio.sleep(wait)
