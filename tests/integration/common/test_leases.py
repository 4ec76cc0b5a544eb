"""Leases for work that must run once, on a real SQLite file and a real PostgreSQL database.

The statements are tested with a clock the test moves by hand; the runner with the real clock and a TTL
of a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import UnitOfWork, create_engine, utc
from services.common.leases import Lease, LeaseLost, add_lease_table, check_fence, run_under_lease

START = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
NAME = "case.overdue-escalation"
TTL = 30.0

metadata = MetaData()
leases = add_lease_table(metadata)
# What the fenced work writes: one row per run, with the epoch it ran under.
escalations = Table(
    "escalations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("holder", String(50), nullable=False),
    Column("epoch", BigInteger, nullable=False),
)


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'leases.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_engine(database_url)
    async with created.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield created
    await created.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


def lease_for(engine: AsyncEngine, holder: str, clock: Clock | None = None, ttl: float = TTL) -> Lease:
    if clock is None:
        return Lease(engine, leases, name=NAME, holder=holder, ttl_seconds=ttl)
    return Lease(engine, leases, name=NAME, holder=holder, ttl_seconds=ttl, clock=clock)


async def escalate(engine: AsyncEngine, holder: str, epoch: int) -> None:
    """A unit of work under the lease: it writes, and commits only if its epoch still holds."""
    async with UnitOfWork(engine) as uow:
        await uow.conn.execute(insert(escalations).values(holder=holder, epoch=epoch))
        await check_fence(uow.conn, leases, name=NAME, epoch=epoch)
        await uow.commit()


async def escalated(engine: AsyncEngine) -> list[tuple[str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(escalations.c.holder, escalations.c.epoch).order_by(escalations.c.id)
        )
        return [(r.holder, int(r.epoch)) for r in rows]


async def lease_row(engine: AsyncEngine) -> tuple[str, int, datetime]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(leases).where(leases.c.name == NAME))).one()
    return row.holder, int(row.epoch), utc(row.expire_time)


async def test_only_one_of_several_contenders_holds_the_lease(engine: AsyncEngine, clock: Clock):
    contenders = [lease_for(engine, f"case-{n}", clock) for n in range(6)]

    first = await asyncio.gather(*(c.acquire() for c in contenders))
    clock.advance(seconds=TTL / 2)
    again = await asyncio.gather(*(c.acquire() for c in contenders))

    assert sorted(first, key=lambda e: e is None) == [1, None, None, None, None, None]
    # The holder keeps it, at the same epoch; the others still find it taken.
    assert again == first
    holder = contenders[first.index(1)]
    assert [c.epoch for c in contenders if c is not holder] == [None] * 5
    assert (await lease_row(engine))[:2] == (holder.holder, 1)


async def test_the_epoch_increases_on_every_take_over(engine: AsyncEngine, clock: Clock):
    a, b = lease_for(engine, "case-a", clock), lease_for(engine, "case-b", clock)

    taken = [await a.acquire()]
    clock.advance(seconds=TTL + 1)
    taken.append(await b.acquire())
    clock.advance(seconds=TTL + 1)
    taken.append(await a.acquire())
    taken.append(await a.acquire())  # still ours and valid: no take-over
    clock.advance(seconds=TTL + 1)
    taken.append(await a.acquire())  # ours, but expired: a take-over all the same
    await a.release()
    taken.append(await b.acquire())

    assert taken == [1, 2, 3, 3, 4, 5]
    assert (await lease_row(engine))[:2] == ("case-b", 5)


async def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_renew(
    engine: AsyncEngine, clock: Clock
):
    a, b = lease_for(engine, "case-a", clock), lease_for(engine, "case-b", clock)
    assert await a.acquire() == 1

    clock.advance(seconds=TTL - 1)
    assert await b.acquire() is None
    clock.advance(seconds=1)
    assert await b.acquire() == 2

    assert not await a.renew()
    assert a.epoch is None
    assert b.epoch == 2


async def test_renewing_keeps_the_lease_past_its_first_ttl(engine: AsyncEngine, clock: Clock):
    a, b = lease_for(engine, "case-a", clock), lease_for(engine, "case-b", clock)
    await a.acquire()

    clock.advance(seconds=TTL * 0.6)
    assert await a.renew()
    clock.advance(seconds=TTL * 0.6)

    assert await b.acquire() is None
    assert a.epoch == 1
    assert (await lease_row(engine))[2] == START + timedelta(seconds=TTL * 1.6)


async def test_a_released_lease_is_free_for_another_at_once(engine: AsyncEngine, clock: Clock):
    a, b = lease_for(engine, "case-a", clock), lease_for(engine, "case-b", clock)
    await a.acquire()

    await a.release()

    assert a.epoch is None
    assert not await a.renew()
    assert await b.acquire() == 2


async def test_check_fence_refuses_a_stale_epoch_and_nothing_of_that_transaction_commits(
    engine: AsyncEngine, clock: Clock
):
    a, b = lease_for(engine, "case-a", clock), lease_for(engine, "case-b", clock)
    await a.acquire()
    await escalate(engine, "case-a", 1)
    clock.advance(seconds=TTL + 1)
    await b.acquire()

    with pytest.raises(LeaseLost) as lost:
        await escalate(engine, "case-a", 1)  # the old holder, back from a long pause
    await escalate(engine, "case-b", 2)

    assert (lost.value.epoch, lost.value.current) == (1, 2)
    assert await escalated(engine) == [("case-a", 1), ("case-b", 2)]


async def test_check_fence_refuses_a_lease_that_was_never_taken(engine: AsyncEngine):
    with pytest.raises(LeaseLost) as lost:
        await escalate(engine, "case-a", 1)

    assert lost.value.current is None
    assert await escalated(engine) == []


async def test_a_take_over_waits_for_a_work_transaction_that_passed_the_fence(
    engine: AsyncEngine, clock: Clock
):
    a, b = lease_for(engine, "case-a", clock), lease_for(engine, "case-b", clock)
    await a.acquire()

    async with UnitOfWork(engine) as uow:
        await check_fence(uow.conn, leases, name=NAME, epoch=1)
        clock.advance(seconds=TTL + 1)  # the lease expires while the work is under way
        take_over = asyncio.create_task(b.acquire())
        await asyncio.sleep(0.3)
        assert not take_over.done()
        await uow.conn.execute(insert(escalations).values(holder="case-a", epoch=1))
        await uow.commit()

    assert await asyncio.wait_for(take_over, timeout=10) == 2
    assert await escalated(engine) == [("case-a", 1)]


# ---------------------------------------------------------------------------------------------------------
# The runner, on the real clock
# ---------------------------------------------------------------------------------------------------------

RUNNER_TTL = 0.6


@dataclass
class Jobs:
    """Fenced work that notes who ran it, when, and whether two ever ran at once."""

    engine: AsyncEngine
    running: int = 0
    most_at_once: int = 0
    runs: list[tuple[str, int, datetime]] = field(default_factory=list)
    first_run: dict[str, asyncio.Event] = field(default_factory=dict)

    def job_for(self, holder: str) -> Callable[[int], Awaitable[None]]:
        self.first_run[holder] = asyncio.Event()

        async def job(epoch: int) -> None:
            self.first_run[holder].set()
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.runs.append((holder, epoch, datetime.now(UTC)))
            try:
                await asyncio.sleep(0.03)
                await escalate(self.engine, holder, epoch)
            finally:
                self.running -= 1

        return job

    def ran(self, holder: str) -> list[tuple[str, int, datetime]]:
        return [run for run in self.runs if run[0] == holder]


async def ended(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_two_runners_run_one_job_at_a_time_and_the_other_takes_over_after_a_crash(
    engine: AsyncEngine,
):
    jobs = Jobs(engine)
    a, b = lease_for(engine, "case-a", ttl=RUNNER_TTL), lease_for(engine, "case-b", ttl=RUNNER_TTL)
    stop_b = asyncio.Event()
    runner_a = asyncio.create_task(run_under_lease(a, jobs.job_for("case-a"), interval=0.02))
    await asyncio.wait_for(jobs.first_run["case-a"].wait(), timeout=5)
    runner_b = asyncio.create_task(run_under_lease(b, jobs.job_for("case-b"), interval=0.02, stop=stop_b))
    try:
        await asyncio.sleep(RUNNER_TTL * 1.3)  # a renews all along: b never gets a turn
        assert jobs.ran("case-b") == []

        await ended(runner_a)  # a crash: nothing is released
        crashed_at = datetime.now(UTC)
        runs_of_a = len(jobs.ran("case-a"))
        _, epoch_of_a, expire_time = await lease_row(engine)
        assert expire_time > crashed_at
        await asyncio.wait_for(jobs.first_run["case-b"].wait(), timeout=5)
        await asyncio.sleep(0.1)
    finally:
        stop_b.set()
        await asyncio.wait_for(runner_b, timeout=5)

    [(_, epoch_of_b, first_run_of_b), *_] = jobs.ran("case-b")
    assert first_run_of_b >= expire_time
    assert epoch_of_b == epoch_of_a + 1
    assert len(jobs.ran("case-a")) == runs_of_a
    assert jobs.most_at_once == 1
    # Every run that committed did so under the epoch of its holder, a's runs all before b's.
    written = await escalated(engine)
    assert set(written) == {("case-a", epoch_of_a), ("case-b", epoch_of_b)}
    assert written == sorted(written, key=lambda run: run[1])
    # b stopped and released: the next contender need not wait out the TTL.
    assert await lease_for(engine, "case-c", ttl=RUNNER_TTL).acquire() == epoch_of_b + 1


async def test_a_runner_whose_lease_was_taken_cancels_its_job_at_once(engine: AsyncEngine):
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def long_job(epoch: int) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    a = lease_for(engine, "case-a", ttl=RUNNER_TTL)
    runner = asyncio.create_task(run_under_lease(a, long_job, interval=0.02))
    try:
        await asyncio.wait_for(started.wait(), timeout=5)
        # Another replica takes it over (its clock ran ahead, say): a's next renewal is refused.
        async with engine.begin() as conn:
            await conn.execute(
                update(leases)
                .where(leases.c.name == NAME)
                .values(
                    holder="case-b",
                    epoch=leases.c.epoch + 1,
                    expire_time=datetime.now(UTC) + timedelta(minutes=5),
                )
            )
        taken_at = asyncio.get_running_loop().time()
        await asyncio.wait_for(cancelled.wait(), timeout=5)
        waited = asyncio.get_running_loop().time() - taken_at
        await asyncio.sleep(RUNNER_TTL / 2)  # a contends again meanwhile, and finds the lease taken
    finally:
        await ended(runner)

    assert waited < RUNNER_TTL / 3 + 0.2
    assert a.epoch is None
    assert (await lease_row(engine))[:2] == ("case-b", 2)


async def test_a_failing_job_runs_again_and_stopping_releases_the_lease(engine: AsyncEngine):
    attempts = 0
    failed_often = asyncio.Event()

    async def failing_job(epoch: int) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 5:
            failed_often.set()
        raise RuntimeError("the directory did not answer")

    stop = asyncio.Event()
    a = lease_for(engine, "case-a", ttl=RUNNER_TTL)
    runner = asyncio.create_task(run_under_lease(a, failing_job, interval=0.02, stop=stop))
    await asyncio.wait_for(failed_often.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(runner, timeout=5)

    assert a.epoch is None
    assert await lease_for(engine, "case-b", ttl=RUNNER_TTL).acquire() == 2
