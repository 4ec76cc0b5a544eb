"""Group commit for the access log: many concurrent reads, one transaction per batch of entries.

A read is answered only after its entry is committed, so no answer ever leaves without its trace in
the log; but the chain's head is a single row every entry must pass through, so writing each entry in
its own transaction would make the log the bottleneck of every service. Whoever finds no flush under
way starts a flush that writes everything that queued up meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.audit import (
    AccessLogTables,
    AccessRecord,
    ChainTip,
    append_at_tip,
    chain_tip,
    record_accesses,
    tip_now,
)
from services.common.errors import Unavailable

# Reads that come within this many lingers of the last write count as one stream of reads.
_BUSY_WITHIN = 5


class AccessLog(Protocol):
    async def record(self, *records: AccessRecord) -> None:
        """Returns once every entry is committed."""


class AccessLogWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        tables: AccessLogTables,
        *,
        service: str,
        max_batch: int = 500,
        keep_connection_s: float = 300.0,
        linger_s: float = 0.002,
    ):
        self.engine = engine
        self.tables = tables
        self.service = service
        self.max_batch = max_batch
        # When reads come faster than they are written, a batch waits this long for more before it is
        # written: each write costs the service about a tenth of a millisecond whatever its size, and
        # without waiting nearly every call made a write of its own (1.25 entries per batch at 1,500
        # calls a second). It waits only while that pays: once reads have come during a write, and
        # until a wait gathers nobody. One read at a time never waits.
        self.linger_s = linger_s
        self._gathering = False
        self._last_write = -1e9
        self._pending: list[tuple[Sequence[AccessRecord], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._tip: ChainTip | None = None
        self.keep_connection_s = keep_connection_s
        self._conn: AsyncConnection | None = None
        # The kept connection's asyncpg connection, fetched once rather than at every write.
        self._driver: Any = None
        self._conn_since = 0.0

    async def record(self, *records: AccessRecord) -> None:
        """Returns once the entries are committed; raises Unavailable when they could not be written.

        The entries of one call (a page of fifty people) wait on one future, and go in one batch unless
        they are more than `max_batch`.
        """
        if not records:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((records, future))
        if self._flusher is None or self._flusher.done():
            # A task of its own, so a caller that gives up cannot strand the entries of the others.
            self._flusher = asyncio.create_task(self._flush(), name=f"{self.service}-access-log")
        await future

    async def _flush(self) -> None:
        # The connection is kept from one flush to the next, which under load comes within the
        # millisecond: a pooled connection taken for each batch cost more than the append itself. It is
        # given back once it has served `keep_connection_s`, so the pool's recycling still reaches it.
        # Between the last look at `_pending` and the end of this task there is no await, or `record`
        # could see a flusher still running and leave its entry to one that has already stopped.
        conn, self._conn = self._conn, None
        try:
            while self._pending:
                conn = await self._write_pending(conn)
                if conn is not None and time.monotonic() - self._conn_since >= self.keep_connection_s:
                    await _close_quietly(conn)
                    conn = None
        finally:
            self._conn = conn

    async def _write_pending(self, conn: AsyncConnection | None) -> AsyncConnection | None:
        """Writes batches until none is waiting; returns the connection, or None if it had to go."""
        while self._pending:
            lingered = self._gathering and time.monotonic() - self._last_write < _BUSY_WITHIN * self.linger_s
            if lingered:
                await asyncio.sleep(self.linger_s)  # let the calls under way add their entries
            # Whole calls, up to max_batch entries (at least one call, however large).
            taken, size = 0, 0
            while taken < len(self._pending) and (
                taken == 0 or size + len(self._pending[taken][0]) <= self.max_batch
            ):
                size += len(self._pending[taken][0])
                taken += 1
            batch = self._pending[:taken]
            del self._pending[:taken]
            if lingered and taken == 1:
                self._gathering = False  # nobody came while it waited: waiting only delays
            try:
                if conn is None:
                    conn = await self.engine.connect()
                    self._conn_since = time.monotonic()
                    self._driver = None
                await self._append(conn, [record for records, _ in batch for record in records])
            except Exception as error:
                # A connection that failed is not trusted with the next batch.
                self._tip = None
                if conn is not None:
                    await _close_quietly(conn)
                    conn = None
                _settle(batch, error)
            else:
                _settle(batch, None)
            self._last_write = time.monotonic()
            if self._pending:
                self._gathering = True  # reads came while this batch was written
        return conn

    async def close(self) -> None:
        """Waits for entries still being written, then gives the connection back."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._conn is not None:
            await _close_quietly(self._conn)
            self._conn = None

    async def _append(self, conn: AsyncConnection, records: Sequence[AccessRecord]) -> None:
        if self.engine.dialect.name == "postgresql" and self._tip is not None:
            # The common case: this writer wrote the last entry, so one round trip suffices.
            if self._driver is None:
                self._driver = (await conn.get_raw_connection()).driver_connection
            tip = await append_at_tip(self._driver, records, service=self.service, tip=self._tip)
            if tip is None:
                # Another writer (a second worker or replica of the service) moved the chain: from where
                # it ends now, once more in one round trip, before the transaction that locks the head.
                now = await tip_now(self._driver)
                if now is not None:
                    tip = await append_at_tip(self._driver, records, service=self.service, tip=now)
            if tip is not None:
                self._tip = tip
                return
        async with conn.begin():
            await record_accesses(conn, self.tables, records, service=self.service)
            self._tip = await chain_tip(conn, self.tables)


def _settle(
    batch: Sequence[tuple[Sequence[AccessRecord], asyncio.Future[None]]], error: Exception | None
) -> None:
    """Answers the reads of a batch: written, or Unavailable (nothing may be read without its entry)."""
    failure: Unavailable | None = None
    if error is not None:
        failure = Unavailable(
            "the access log could not be written; nothing was read", reason="ACCESS_LOG_DOWN"
        )
        failure.__cause__ = error
    for _, future in batch:
        if future.done():
            continue
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(failure)


async def _close_quietly(conn: AsyncConnection) -> None:
    # Closing a broken connection can fail too; the pool discards it either way.
    with contextlib.suppress(Exception):
        await conn.close()


class MemoryAccessLog:
    """An access log kept in memory, for unit tests on fakes."""

    def __init__(self) -> None:
        self.records: list[AccessRecord] = []

    async def record(self, *records: AccessRecord) -> None:
        self.records.extend(records)
