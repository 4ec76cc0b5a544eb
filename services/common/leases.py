"""Work that must run once across replicas (overdue escalation, a source's sync): a lease row per job.

A lease is a row with a holder, an expiry and an epoch. Taking it is one statement that succeeds only
when the lease is free, expired, or already held by the same holder; every take-over (a new holder, or
the same one after its lease expired) increments the epoch. The epoch is the fencing token: the work
calls `check_fence` in each transaction before committing, and a holder that lost the lease while it was
still working (a long pause, a slow network) finds its epoch refused and its writes rolled back.

No session advisory locks: they belong to a server session, which PgBouncer's transaction pooling hands
to whoever comes next.

Times come from the injectable clock. Replicas are assumed to have clocks within a small fraction of the
TTL of each other: expiry is judged by whoever takes the lease over, by its own clock, so a clock running
ahead takes a lease over early. That costs only efficiency, never correctness, for work that fences its
writes with `check_fence`; the job's other effects (a mail, a call) are only as exclusive as the clocks.
`holder` names must be unique per `Lease` object among everything that may contend (a pod name plus a
random suffix, say): two objects under one name are one holder to the lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, and_, case, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.db import UnitOfWork, utc

log = logging.getLogger("aldredirekt.leases")

lease_metadata = MetaData()

# Each service adds this table to its own database through a migration; the metadata object here only
# serves to copy it from (see add_lease_table).
leases = Table(
    "leases",
    lease_metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("expire_time", DateTime(timezone=True), nullable=False),
    Column("acquire_time", DateTime(timezone=True), nullable=False),
    Column("renew_time", DateTime(timezone=True), nullable=False),
)


def add_lease_table(metadata: MetaData) -> Table:
    """The lease table in a service's own metadata, for its migrations and tests."""
    return leases.to_metadata(metadata)


class LeaseLost(Exception):
    """The lease has moved on: work fenced with `epoch` must not commit."""

    def __init__(self, name: str, epoch: int, current: int | None):
        super().__init__(f"lease {name!r} is no longer at epoch {epoch} (now {current})")
        self.name = name
        self.epoch = epoch
        self.current = current


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Lease:
    """One contender for the lease `name`.

    It only knows what its own statements told it: `epoch` is the epoch it last took or renewed, or
    None; `seconds_left()` is how long that lasts by its own clock, counted from before the statement.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        *,
        name: str,
        holder: str,
        ttl_seconds: float,
        clock: Callable[[], datetime] = _utc_now,
    ):
        if not 0 < len(name) <= 100:
            raise ValueError("a lease needs a name of 1 to 100 characters")
        if not 0 < len(holder) <= 200:
            raise ValueError("a lease needs a holder of 1 to 200 characters")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.engine = engine
        self.table = table
        self.name = name
        self.holder = holder
        self.ttl_seconds = ttl_seconds
        self.ttl = timedelta(seconds=ttl_seconds)
        self.clock = clock
        self._epoch: int | None = None
        self._valid_until: datetime | None = None

    @property
    def epoch(self) -> int | None:
        return self._epoch

    def seconds_left(self) -> float:
        """How long the lease is still ours by our own clock; 0 when we do not hold it."""
        if self._epoch is None or self._valid_until is None:
            return 0.0
        return max(0.0, (self._valid_until - utc(self.clock())).total_seconds())

    def _forget(self) -> None:
        self._epoch = None
        self._valid_until = None

    async def acquire(self) -> int | None:
        """Takes the lease if it is free, expired or ours; returns the epoch, or None when another holds it.

        Ours and still valid: the same epoch, extended. Any other take-over: the epoch plus one.
        """
        t = self.table
        now = utc(self.clock())
        expire = now + self.ttl
        insert = postgresql_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        proposed = insert(t).values(
            name=self.name, holder=self.holder, epoch=1, expire_time=expire, acquire_time=now, renew_time=now
        )
        still_ours = and_(t.c.holder == self.holder, t.c.expire_time > now)
        statement = proposed.on_conflict_do_update(
            index_elements=[t.c.name],
            set_={
                "holder": proposed.excluded.holder,
                "epoch": case((still_ours, t.c.epoch), else_=t.c.epoch + 1),
                "expire_time": proposed.excluded.expire_time,
                "acquire_time": case((still_ours, t.c.acquire_time), else_=proposed.excluded.acquire_time),
                "renew_time": proposed.excluded.renew_time,
            },
            where=or_(t.c.expire_time <= now, t.c.holder == self.holder),
        ).returning(t.c.epoch, t.c.holder)
        async with UnitOfWork(self.engine) as uow:
            row = (await uow.conn.execute(statement)).first()
            await uow.commit()
        if row is None or row.holder != self.holder:
            self._forget()
            return None
        self._epoch = int(row.epoch)
        self._valid_until = expire
        return self._epoch

    async def renew(self) -> bool:
        """Extends the lease by the TTL; False, and the lease forgotten, unless it is ours and unexpired."""
        if self._epoch is None:
            return False
        t = self.table
        now = utc(self.clock())
        expire = now + self.ttl
        async with UnitOfWork(self.engine) as uow:
            row = (
                await uow.conn.execute(
                    update(t)
                    .where(
                        t.c.name == self.name,
                        t.c.holder == self.holder,
                        t.c.epoch == self._epoch,
                        t.c.expire_time > now,
                    )
                    .values(expire_time=expire, renew_time=now)
                    .returning(t.c.epoch)
                )
            ).first()
            await uow.commit()
        if row is None:
            self._forget()
            return False
        self._valid_until = expire
        return True

    async def release(self) -> None:
        """Lets the lease expire now, if it is still ours, so another holder need not wait out the TTL."""
        if self._epoch is None:
            return
        t = self.table
        now = utc(self.clock())
        epoch = self._epoch
        self._forget()
        async with UnitOfWork(self.engine) as uow:
            await uow.conn.execute(
                update(t)
                .where(
                    t.c.name == self.name,
                    t.c.holder == self.holder,
                    t.c.epoch == epoch,
                    t.c.expire_time > now,
                )
                .values(expire_time=now)
            )
            await uow.commit()


async def check_fence(conn: AsyncConnection, table: Table, *, name: str, epoch: int) -> None:
    """Raises LeaseLost unless lease `name` is still at `epoch`; call it inside the work's transaction.

    The guarantee: a writing transaction that passed `check_fence(epoch=e)` and then commits commits
    before the take-over to epoch e + 1 does, so no write fenced at epoch e ever commits after a write
    fenced at a later epoch, and a holder's writes never interleave with a successor's. How:

    - PostgreSQL: the lease row is read FOR SHARE and stays locked until the transaction ends. A
      take-over (its upsert locks the row for update) waits for the work transaction to end; a work
      transaction that comes after a committed take-over reads the new epoch (READ COMMITTED, the
      default) and is refused, or fails to serialise under a stricter isolation level.
    - SQLite: the work transaction must be a writing one (the house UnitOfWork begins those IMMEDIATE),
      so it holds the database's write lock from its start, and a take-over, itself a write, waits.

    The fence covers the transaction it runs in, wherever in it it is called, as long as that is before
    the commit: a refusal raises, and the caller's unit of work rolls everything back. It says nothing
    about effects outside the database. A lease that expired but that nobody took over yet still passes:
    the epoch, not the clock, is the fence. Keep fenced transactions short next to the TTL: on
    PostgreSQL the holder's own renewal waits for them too.
    """
    query = select(table.c.epoch).where(table.c.name == name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    current = (await conn.execute(query)).scalar_one_or_none()
    if current is None or int(current) != epoch:
        raise LeaseLost(name, epoch, None if current is None else int(current))


async def run_under_lease(
    lease: Lease,
    job: Callable[[int], Awaitable[object]],
    *,
    interval: float,
    stop: asyncio.Event | None = None,
) -> None:
    """Runs `job(epoch)` while `lease` is held, with `interval` seconds between the end of a run and the
    start of the next; contends for the lease again whenever it is lost. Returns once `stop` is set.

    Renewal runs on its own timer, every third of the TTL. When a renewal is refused, when the lease's
    time by our clock runs out before a renewal succeeded, or when the job raises LeaseLost for this
    lease, the running job is cancelled at once. An exception in the job is logged and the job runs
    again at the next interval; nothing the job or the database raises ends this function.

    Setting `stop` cancels the job and releases the lease, for a successor to take over at once.
    Cancelling the task instead cancels the job but leaves the lease to expire, as a crash would.
    """
    stop = stop if stop is not None else asyncio.Event()
    retry = lease.ttl_seconds / 3
    while not stop.is_set():
        epoch = await _try_acquire(lease)
        if epoch is None:
            await _wait_for_stop(stop, retry)
            continue
        log.info("lease %s taken by %s at epoch %d", lease.name, lease.holder, epoch)
        if await _hold(lease, job, epoch, interval=interval, stop=stop):
            break
    try:
        await lease.release()
    except Exception:
        log.exception("lease %s could not be released by %s; it expires by itself", lease.name, lease.holder)


async def _try_acquire(lease: Lease) -> int | None:
    try:
        return await lease.acquire()
    except Exception:
        log.exception("lease %s could not be contended for by %s", lease.name, lease.holder)
        return None


async def _wait_for_stop(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def _repeat(lease: Lease, job: Callable[[int], Awaitable[object]], epoch: int, interval: float) -> None:
    """Runs the job forever; returns only when the job says the lease is lost."""
    while True:
        try:
            await job(epoch)
        except LeaseLost as lost:
            if lost.name == lease.name:
                log.warning("the job under lease %s found epoch %d fenced off", lease.name, epoch)
                return
            log.exception("the job under lease %s failed", lease.name)
        except Exception:
            log.exception("the job under lease %s failed", lease.name)
        await asyncio.sleep(interval)


async def _hold(
    lease: Lease,
    job: Callable[[int], Awaitable[object]],
    epoch: int,
    *,
    interval: float,
    stop: asyncio.Event,
) -> bool:
    """Runs the job while the lease stays ours; True when stopped, False when the lease was lost."""
    loop = asyncio.get_running_loop()
    renew_every = lease.ttl_seconds / 3
    work = asyncio.create_task(_repeat(lease, job, epoch, interval), name=f"lease-{lease.name}-job")
    stopping = asyncio.create_task(stop.wait(), name=f"lease-{lease.name}-stop")
    next_renewal = loop.time() + renew_every
    try:
        while True:
            timeout = min(max(0.0, next_renewal - loop.time()), lease.seconds_left())
            done, _ = await asyncio.wait(
                {work, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if stopping in done:
                return True
            if work in done:
                lease._forget()
                return False
            if lease.seconds_left() <= 0:
                log.warning("lease %s ran out before %s could renew it", lease.name, lease.holder)
                lease._forget()
                return False
            if loop.time() < next_renewal:
                continue
            try:
                # A renewal that comes back after the lease ran out comes back too late.
                renewed = await asyncio.wait_for(lease.renew(), timeout=lease.seconds_left())
            except TimeoutError:
                log.warning("lease %s ran out while %s was renewing it", lease.name, lease.holder)
                lease._forget()
                return False
            except Exception:
                log.exception("lease %s could not be renewed by %s; trying again", lease.name, lease.holder)
                next_renewal = loop.time() + renew_every / 3
                continue
            if not renewed:
                log.warning("lease %s was taken from %s at epoch %d", lease.name, lease.holder, epoch)
                return False
            next_renewal = loop.time() + renew_every
    finally:
        work.cancel()
        stopping.cancel()
        await asyncio.gather(work, stopping, return_exceptions=True)
