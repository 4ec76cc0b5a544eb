"""Two case-service processes on one PostgreSQL: the overdue escalation and the outbox run in one of them
at a time under a lease; when its holder is killed (kill -9, no chance to release), the other takes over
within the lease's time, and no case is escalated twice nor any escalation mailed twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.case import model
from services.case.main import DEFINITION, CaseSettings
from services.case.model import Routing
from services.case.store import cases as cases_table
from services.case.store import leases, outbox
from services.common.runtime import wired
from support.ports import free_port
from support.smtp_sink import MailStore
from tests.integration.case.support import smtp_sink
from tests.unit.case.builders import AGENT, ASTRID, contact, new_case

REPOSITORY = Path(__file__).resolve().parents[3]
LEASE_SECONDS = 2.0
CASES = 400

pytestmark = pytest.mark.postgres

ROUTING = Routing(
    unit_id="farsta-bestallarenhet",
    district_id="farsta",
    mailbox="farsta@stockholm.example",
    acute_phone="08-508 000 00",
    officer_id=None,
    team="",
    manager_emails=("chef@stockholm.example",),
)


def environment(url: str, tmp_path: Path, smtp_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "AUTH_DEV": "true",
        "AUTH_DEV_DIR": str(tmp_path / "dev"),
        "CASE_DATABASE_URL": url,
        "CASE_PORT": "0",
        "CASE_GRANT_KEY_FILE": str(tmp_path / "grant" / "grant-key.pem"),
        "CASE_SMTP_PORT": str(smtp_port),
        "CASE_DIRECTORY_ADDRESS": f"127.0.0.1:{free_port()}",
        "CASE_MIRROR_ADDRESS": f"127.0.0.1:{free_port()}",
        "CASE_LEASE_SECONDS": str(LEASE_SECONDS),
        "CASE_OVERDUE_INTERVAL_SECONDS": "0.2",
        "CASE_OUTBOX_INTERVAL_SECONDS": "0.2",
        "CASE_GRACE_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }


async def seed_overdue_cases(settings: CaseSettings) -> None:
    """Cases forwarded ten days ago, long past their deadlines and not yet escalated."""
    async with wired(DEFINITION, settings) as wiring:
        now = wiring.core.clock()
        then = now - timedelta(days=10)
        forwarded = [
            model.forward(
                model.register(new_case(person_number=ASTRID), contact(), actor=AGENT.subject, now=then),
                ROUTING,
                actor=AGENT.subject,
                now=then,
            )
            for _ in range(CASES)
        ]
        async with wiring.core.uow() as uow:
            await uow.cases.add_all(forwarded)
            await uow.commit()


async def lease_holders(settings: CaseSettings) -> dict[str, tuple[str, int]]:
    async with wired(DEFINITION, settings) as wiring, wiring.engine.connect() as conn:
        rows = await conn.execute(select(leases.c.name, leases.c.holder, leases.c.epoch))
        return {row.name: (row.holder, int(row.epoch)) for row in rows}


async def escalated(settings: CaseSettings) -> int:
    async with wired(DEFINITION, settings) as wiring, wiring.engine.connect() as conn:
        query = select(func.count()).select_from(cases_table).where(cases_table.c.overdue.is_(True))
        return int((await conn.execute(query)).scalar_one())


async def queued_escalations(settings: CaseSettings) -> Counter[str]:
    async with wired(DEFINITION, settings) as wiring, wiring.engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.subject_ref, outbox.c.delivery_key))
        return Counter(row.subject_ref for row in rows if ".overdue." in row.delivery_key)


def start_replica(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.case.main"],
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
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


async def test_the_other_replica_takes_over_when_the_holder_is_killed_and_nothing_goes_twice(
    postgres_url: str, tmp_path: Path
) -> None:
    smtp_port = free_port()
    env = environment(postgres_url, tmp_path, smtp_port)
    settings = CaseSettings.from_env({k: v for k, v in env.items() if k.startswith(("CASE_", "AUTH_"))})
    await seed_overdue_cases(settings)
    with smtp_sink(smtp_port) as mailbox:
        replicas = [start_replica(env), start_replica(env)]
        by_pid = {replica.pid: replica for replica in replicas}
        try:
            holders = await wait_for(lambda: _holder_of(settings, "case.overdue"), seconds=30)
            holder_name: str = holders[0]
            first_epoch: int = holders[1]
            holder_pid = int(holder_name.split(":")[1])
            assert holder_pid in by_pid
            # Killed while it works through the backlog: some cases escalated, not all.
            await wait_for(lambda: _some_escalated(settings), seconds=30)
            killed_at = time.monotonic()
            os.kill(holder_pid, signal.SIGKILL)
            by_pid[holder_pid].wait(10)

            taken = await wait_for(
                lambda: _holder_of(settings, "case.overdue", not_pid=holder_pid), seconds=LEASE_SECONDS * 5
            )
            took_over_after = time.monotonic() - killed_at
            await wait_for(lambda: _all_escalated(settings), seconds=60)
            await wait_for(lambda: _all_mailed(mailbox), seconds=60)
            queued = await queued_escalations(settings)
            survivor = next(r for r in replicas if r.pid != holder_pid)
            survivor.send_signal(signal.SIGTERM)
            # SIGTERM drains and stops the jobs; the process ends on its own, cleanly.
            assert survivor.wait(20) == 0
        finally:
            for replica in replicas:
                if replica.poll() is None:
                    replica.send_signal(signal.SIGTERM)
            for replica in replicas:
                replica.wait(20)

    new_holder: str = taken[0]
    new_epoch: int = taken[1]
    assert int(new_holder.split(":")[1]) != holder_pid
    assert new_epoch > first_epoch
    assert took_over_after <= LEASE_SECONDS * 3
    # Each case escalated once: one escalation mail queued per case, and one Message-ID per case received
    # (a mail sent again after the kill keeps its Message-ID, which the receiver drops as a duplicate).
    assert len(queued) == CASES
    assert set(queued.values()) == {1}
    ids_per_case = Counter(
        message["Message-ID"].split(".")[0]
        for message in {
            m["Message-ID"]: m for m in mailbox.messages if ".overdue." in m["Message-ID"]
        }.values()
    )
    assert len(ids_per_case) == CASES
    assert set(ids_per_case.values()) == {1}


async def _holder_of(
    settings: CaseSettings, name: str, *, not_pid: int | None = None
) -> tuple[str, int] | None:
    found = (await lease_holders(settings)).get(name)
    if found is None or (not_pid is not None and int(found[0].split(":")[1]) == not_pid):
        return None
    return found


async def _some_escalated(settings: CaseSettings) -> bool:
    return 0 < await escalated(settings) < CASES


async def _all_escalated(settings: CaseSettings) -> bool:
    return await escalated(settings) == CASES


async def _all_mailed(mailbox: MailStore) -> bool:
    return len({m["Message-ID"] for m in mailbox.messages if ".overdue." in m["Message-ID"]}) >= CASES
