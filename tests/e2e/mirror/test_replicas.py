"""Two mirror processes on one PostgreSQL: each source is synced by one of them at a time, under its lease.
The one syncing Agresso is killed (kill -9, no chance to release) in the middle of the first full sync;
the other takes over within the lease's time and finishes it, with nothing lost and nothing twice, and
changes made upstream meanwhile arrive."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.common.auth import SigningKey
from services.common.runtime import wired
from services.mirror.main import DEFINITION, MirrorSettings
from services.mirror.model.records import invoice_from_stored
from services.mirror.store.tables import invoices, leases
from tests.e2e.mirror.conftest import MODULE_LOOP, mirror_environment
from upstreams import Running as Upstreams

REPOSITORY = Path(__file__).resolve().parents[3]
LEASE_SECONDS = 2.0

pytestmark = [pytest.mark.postgres, MODULE_LOOP]


def start_replica(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.mirror.main"],
        cwd=REPOSITORY,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("REPLICA_LOG", os.devnull), "ab"),
    )


async def wait_for(check: Callable[[], Awaitable[Any]], *, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


async def test_the_other_replica_takes_over_a_sync_killed_mid_way_and_nothing_is_lost_or_twice(
    postgres_url: str, tmp_path: Path, upstreams: Upstreams
) -> None:
    environment = mirror_environment(
        tmp_path / "mirror",
        upstreams,
        postgres_url,
        SigningKey.generate(),
        MIRROR_PORT="0",
        MIRROR_LEASE_SECONDS=str(LEASE_SECONDS),
        MIRROR_SYNC_INTERVAL_SECONDS="0.2",
        # Small pages: the first full sync of Agresso takes many, so that the kill falls in the middle.
        MIRROR_PAGE_SIZE="50",
        MIRROR_GRACE_SECONDS="1",
        LOG_LEVEL="WARNING",
    )
    settings = MirrorSettings.from_env(environment)
    agresso_total = len(upstreams.store("agresso"))
    async with wired(DEFINITION, settings, run_sync=False) as wiring:  # migrated once, before both start

        async def holder(name: str, *, not_pid: int | None = None) -> tuple[int, int] | None:
            async with wiring.engine.connect() as conn:
                row = (
                    await conn.execute(select(leases.c.holder, leases.c.epoch).where(leases.c.name == name))
                ).first()
            if row is None:
                return None
            pid = int(row.holder.split(":")[1])
            return None if pid == not_pid else (pid, int(row.epoch))

        async def stored_invoices() -> tuple[int, int]:
            async with wiring.engine.connect() as conn:
                rows = await conn.execute(
                    select(func.count(), func.count(func.distinct(invoices.c.record_id))).where(
                        invoices.c.source == "agresso"
                    )
                )
                total, distinct = rows.one()
            return int(total), int(distinct)

        replicas = [start_replica({**os.environ, **environment}) for _ in range(2)]
        by_pid = {replica.pid: replica for replica in replicas}
        try:
            first = await wait_for(lambda: holder("mirror.sync.agresso"), seconds=30)
            assert first[0] in by_pid

            async def part_way() -> bool:
                total, _ = await stored_invoices()
                return 0 < total < agresso_total

            await wait_for(part_way, seconds=30)
            killed_at = time.monotonic()
            os.kill(first[0], signal.SIGKILL)
            by_pid[first[0]].wait(10)
            # A change upstream while nobody syncs Agresso.
            paid = upstreams.mutate("agresso", "pay_invoice")["changes"][0]

            taken = await wait_for(
                lambda: holder("mirror.sync.agresso", not_pid=first[0]), seconds=LEASE_SECONDS * 5
            )
            took_over_after = time.monotonic() - killed_at

            async def complete() -> bool:
                return await stored_invoices() == (agresso_total, agresso_total)

            await wait_for(complete, seconds=60)

            async def paid_arrived() -> bool:
                async with wiring.core.uow(write=False) as uow:
                    text = await uow.mirror.invoice_by(
                        invoice_number=None, ocr=paid_ocr(upstreams, paid["id"])
                    )
                return text is not None and invoice_from_stored(text).remaining_ore == 0

            await wait_for(paid_arrived, seconds=30)
            survivor = next(r for r in replicas if r.pid != first[0])
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(20) == 0
        finally:
            for replica in replicas:
                if replica.poll() is None:
                    replica.send_signal(signal.SIGTERM)
            for replica in replicas:
                replica.wait(20)

    assert taken[0] != first[0]
    assert taken[1] > first[1]
    assert took_over_after <= LEASE_SECONDS * 3
    # The mirror holds exactly what Agresso holds: every invoice once.
    assert {r.record.record_id for r in upstreams.store("agresso").entries()} == await _ids(settings)


def paid_ocr(upstreams: Upstreams, record_id: str) -> str:
    entry = upstreams.store("agresso").get(record_id)
    assert entry is not None
    return str(entry.record.ocr)


async def _ids(settings: MirrorSettings) -> set[str]:
    async with wired(DEFINITION, settings, run_sync=False) as wiring, wiring.core.uow(write=False) as uow:
        return await uow.mirror.record_ids("agresso")
