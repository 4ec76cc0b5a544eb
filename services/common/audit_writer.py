"""Group commit for the access log: many concurrent reads, one transaction per batch of entries.

A read is answered only after its entry is committed, so no answer ever leaves without its trace in
the log; but the chain's head is a single row every entry must pass through, so writing each entry in
its own transaction would make the log the bottleneck of every service. Whoever finds no flush under
way starts a flush that writes everything that queued up meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.audit import (
    AccessLogTables,
    AccessRecord,
    ChainTip,
    append_at_tip,
    chain_tip,
    record_accesses,
)
from services.common.errors import Unavailable


class AccessLog(Protocol):
    async def record(self, *records: AccessRecord) -> None:
        """Returns once every entry is committed."""


class AccessLogWriter:
    def __init__(self, engine: AsyncEngine, tables: AccessLogTables, *, service: str, max_batch: int = 500):
        self.engine = engine
        self.tables = tables
        self.service = service
        self.max_batch = max_batch
        self._pending: list[tuple[Sequence[AccessRecord], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._tip: ChainTip | None = None

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
        while self._pending:
            # Whole calls, up to max_batch entries (at least one call, however large).
            taken, size = 0, 0
            while taken < len(self._pending) and (
                taken == 0 or size + len(self._pending[taken][0]) <= self.max_batch
            ):
                size += len(self._pending[taken][0])
                taken += 1
            batch = self._pending[:taken]
            del self._pending[:taken]
            await self._write(batch)

    async def close(self) -> None:
        """Waits for entries still being written."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _append(self, records: Sequence[AccessRecord]) -> None:
        async with self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql" and self._tip is not None:
                # The common case: this writer wrote the last entry, so one round trip suffices.
                raw = await conn.get_raw_connection()
                tip = await append_at_tip(raw.driver_connection, records, service=self.service, tip=self._tip)
                if tip is not None:
                    self._tip = tip
                    return
            async with conn.begin():
                await record_accesses(conn, self.tables, records, service=self.service)
                self._tip = await chain_tip(conn, self.tables)

    async def _write(self, batch: Sequence[tuple[Sequence[AccessRecord], asyncio.Future[None]]]) -> None:
        try:
            await self._append([record for records, _ in batch for record in records])
        except Exception as error:
            self._tip = None
            failure = Unavailable(
                "the access log could not be written; nothing was read", reason="ACCESS_LOG_DOWN"
            )
            failure.__cause__ = error
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)


class MemoryAccessLog:
    """An access log kept in memory, for unit tests on fakes."""

    def __init__(self) -> None:
        self.records: list[AccessRecord] = []

    async def record(self, *records: AccessRecord) -> None:
        self.records.extend(records)
