"""Group commit of the access log on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from services.common.audit import AccessLogTables, AccessRecord, access_log_tables, list_access, verify_chain
from services.common.audit_writer import AccessLogWriter, MemoryAccessLog
from services.common.db import UnitOfWork, create_engine
from services.common.errors import Unavailable

TOLVAN = "191212121212"
READ_AT = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


def read_of(case: int, person_number: str = TOLVAN) -> AccessRecord:
    return AccessRecord(
        actor="handlaggare-7",
        actor_role="officer",
        person_number=person_number,
        action="case.GetCase",
        purpose=f"cases/{case}",
        occurred_at=READ_AT,
    )


async def create_tables(engine: AsyncEngine) -> AccessLogTables:
    metadata = MetaData()
    tables = access_log_tables(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return tables


def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'case.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


# Where the databases differ (how appenders wait for each other), a test runs on both.
on_both_databases = pytest.mark.parametrize(
    "engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    created = create_engine(database_url(request, tmp_path))
    yield created
    await created.dispose()


@pytest.fixture
async def tables(engine: AsyncEngine) -> AccessLogTables:
    return await create_tables(engine)


@pytest.fixture
async def writer(engine: AsyncEngine, tables: AccessLogTables) -> AsyncIterator[AccessLogWriter]:
    created = AccessLogWriter(engine, tables, service="case")
    yield created
    await created.close()


@contextlib.asynccontextmanager
async def writing(
    engine: AsyncEngine, tables: AccessLogTables, **options: Any
) -> AsyncIterator[AccessLogWriter]:
    """A writer for one test, closed at its end so that the connection it keeps goes back to the pool."""
    created = AccessLogWriter(engine, tables, service="case", **options)
    try:
        yield created
    finally:
        await created.close()


async def committed_purposes(engine: AsyncEngine, tables: AccessLogTables) -> list[str]:
    async with UnitOfWork(engine, write=False) as uow:
        entries = await list_access(uow.conn, tables, person_number=TOLVAN, limit=1000, before_seq=None)
    return [entry.purpose for entry in reversed(entries)]


async def chain_length(engine: AsyncEngine, tables: AccessLogTables) -> int:
    async with UnitOfWork(engine, write=False) as uow:
        report = await verify_chain(uow.conn, tables)
    assert report.ok, report.problem
    return report.entries


def count_transactions(engine: AsyncEngine) -> list[int]:
    begun = [0]

    @event.listens_for(engine.sync_engine, "begin")
    def _count(_conn: Any) -> None:
        begun[0] += 1

    return begun


@on_both_databases
async def test_concurrent_reads_each_return_only_once_their_entry_is_committed(
    engine: AsyncEngine, tables: AccessLogTables, writer: AccessLogWriter
):
    looking = asyncio.Semaphore(5)

    async def read(case: int) -> bool:
        await writer.record(read_of(case))
        # Another connection must already see the entry: the read may now be answered.
        async with looking, UnitOfWork(engine, write=False) as uow:
            found = await uow.conn.execute(
                select(func.count())
                .select_from(tables.access_log)
                .where(tables.access_log.c.purpose == f"cases/{case}")
            )
            return found.scalar_one() == 1

    committed = await asyncio.wait_for(asyncio.gather(*(read(case) for case in range(200))), timeout=20)

    assert all(committed)
    assert await chain_length(engine, tables) == 200
    assert sorted(await committed_purposes(engine, tables)) == sorted(f"cases/{case}" for case in range(200))


@on_both_databases
async def test_concurrent_reads_share_transactions(
    engine: AsyncEngine, tables: AccessLogTables, writer: AccessLogWriter
):
    transactions = count_transactions(engine)

    await asyncio.wait_for(asyncio.gather(*(writer.record(read_of(case)) for case in range(200))), timeout=20)

    assert 1 <= transactions[0] < 20
    assert await chain_length(engine, tables) == 200


async def test_a_batch_never_grows_beyond_its_limit(engine: AsyncEngine, tables: AccessLogTables):
    transactions = count_transactions(engine)

    async with writing(engine, tables, max_batch=50) as writer:
        await asyncio.wait_for(
            asyncio.gather(*(writer.record(read_of(case)) for case in range(200))), timeout=20
        )

    assert transactions[0] >= 4
    assert await chain_length(engine, tables) == 200


async def test_the_entries_of_one_read_go_together_even_beyond_the_limit(
    engine: AsyncEngine, tables: AccessLogTables
):
    transactions = count_transactions(engine)

    async with writing(engine, tables, max_batch=50) as writer:
        # A page of 80 people, then two single reads that arrive while it is written.
        page = asyncio.create_task(writer.record(*(read_of(case) for case in range(80))))
        singles = [asyncio.create_task(writer.record(read_of(case))) for case in (80, 81)]
        await asyncio.wait_for(asyncio.gather(page, *singles), timeout=20)

    assert transactions[0] == 2  # the page alone, then both singles
    assert await committed_purposes(engine, tables) == [f"cases/{case}" for case in range(82)]


async def test_a_read_made_after_a_flush_starts_its_own_flush(
    engine: AsyncEngine, tables: AccessLogTables, writer: AccessLogWriter
):
    await writer.record(read_of(1))
    await writer.record(read_of(2))

    assert await committed_purposes(engine, tables) == ["cases/1", "cases/2"]
    assert await chain_length(engine, tables) == 2


@on_both_databases
async def test_one_read_at_a_time_is_written_at_once_and_concurrent_reads_wait_to_be_gathered(
    engine: AsyncEngine, tables: AccessLogTables
):
    batches: list[list[str]] = []
    second_queued = asyncio.Event()
    async with writing(engine, tables, linger_s=1.0) as writer:
        append = writer._append

        async def watched(conn: Any, records: Any) -> None:
            batches.append([r.purpose for r in records])
            if batches[-1] == ["cases/3"]:
                await second_queued.wait()  # the next read comes while this one is written
            await append(conn, records)

        writer._append = watched  # type: ignore[method-assign]
        # One read after the other: none waits for a linger, each is written alone.
        for case in (1, 2):
            await asyncio.wait_for(writer.record(read_of(case)), timeout=0.9)

        # A read comes while another is written: from then on reads are gathered.
        third = asyncio.create_task(writer.record(read_of(3)))
        await asyncio.sleep(0.05)
        fourth = asyncio.create_task(writer.record(read_of(4)))
        await asyncio.sleep(0)
        second_queued.set()

        async def read_after(case: int, delay: float) -> None:
            await asyncio.sleep(delay)
            await writer.record(read_of(case))

        await asyncio.wait_for(
            asyncio.gather(third, fourth, read_after(5, 0.02), read_after(6, 0.04)), timeout=10
        )

    assert batches == [["cases/1"], ["cases/2"], ["cases/3"], ["cases/4", "cases/5", "cases/6"]]
    assert await chain_length(engine, tables) == 6


@on_both_databases
async def test_a_caller_that_gives_up_does_not_strand_the_others(
    engine: AsyncEngine, tables: AccessLogTables, writer: AccessLogWriter
):
    # The first caller starts the flush; it is the one that gives up.
    impatient = asyncio.create_task(writer.record(read_of(1)))
    patient = [asyncio.create_task(writer.record(read_of(case))) for case in range(2, 12)]
    await asyncio.sleep(0)

    impatient.cancel()
    await asyncio.wait_for(asyncio.gather(*patient), timeout=10)

    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert {f"cases/{case}" for case in range(2, 12)} <= set(await committed_purposes(engine, tables))
    assert await chain_length(engine, tables) >= 10


async def test_closing_waits_for_entries_still_being_written(engine: AsyncEngine, tables: AccessLogTables):
    writer = AccessLogWriter(engine, tables, service="case")
    pending = [asyncio.create_task(writer.record(read_of(case))) for case in range(20)]
    await asyncio.sleep(0)

    await asyncio.wait_for(writer.close(), timeout=10)

    assert await chain_length(engine, tables) == 20
    assert all(task.done() for task in pending)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(params=["sqlite", "postgres"])
async def unreachable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A database that cannot be written: a file that is no database, or a server that is not there."""
    if request.param == "sqlite":
        broken = tmp_path / "case.db"
        broken.write_bytes(b"not a database" * 200)
        url = f"sqlite+aiosqlite:///{broken}"
    else:
        url = f"postgresql+asyncpg://case@127.0.0.1:{closed_port()}/case"
    created = create_engine(url)
    yield created
    await created.dispose()


async def test_when_the_database_is_down_every_waiting_read_is_refused_and_none_hangs(
    unreachable: AsyncEngine,
):
    writer = AccessLogWriter(unreachable, access_log_tables(MetaData()), service="case", max_batch=20)

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(writer.record(read_of(case)) for case in range(50)), return_exceptions=True),
        timeout=20,
    )

    assert all(isinstance(outcome, Unavailable) for outcome in outcomes), outcomes
    assert {outcome.reason for outcome in outcomes if isinstance(outcome, Unavailable)} == {"ACCESS_LOG_DOWN"}
    await writer.close()


async def test_the_log_writes_again_once_the_database_is_back(engine: AsyncEngine):
    metadata = MetaData()
    tables = access_log_tables(metadata)
    writer = AccessLogWriter(engine, tables, service="case")
    # The tables are not there yet: every write fails.
    with pytest.raises(Unavailable):
        await writer.record(read_of(1))

    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await asyncio.wait_for(writer.record(read_of(2)), timeout=10)

    assert await committed_purposes(engine, tables) == ["cases/2"]
    await writer.close()


async def test_the_memory_log_keeps_what_it_is_given():
    log = MemoryAccessLog()

    await log.record(read_of(1))
    await log.record(read_of(2))

    assert [r.purpose for r in log.records] == ["cases/1", "cases/2"]


@on_both_databases
async def test_two_writers_on_one_log_interleave_without_forking_the_chain(
    engine: AsyncEngine, tables: AccessLogTables
):
    # Two replicas of a service: each keeps the tip it last wrote; when the other moved it, the one-statement
    # append must write nothing and the writer fall back to reading the head under its lock.
    async with writing(engine, tables) as first, writing(engine, tables) as second:
        for round_number in range(5):
            await asyncio.gather(*(first.record(read_of(round_number * 100 + n)) for n in range(7)))
            await asyncio.gather(*(second.record(read_of(round_number * 100 + 50 + n)) for n in range(7)))

    async with engine.connect() as conn:
        report = await verify_chain(conn, tables)
    assert report.ok, report.problem
    assert report.entries == 70
    assert await chain_length(engine, tables) == 70


@pytest.mark.postgres
async def test_on_postgresql_a_writer_that_holds_the_tip_appends_in_one_statement(
    postgres_url: str,
):
    engine = create_engine(postgres_url)
    try:
        tables = await create_tables(engine)
        async with writing(engine, tables) as writer:
            await writer.record(read_of(1))  # learns the tip
            begun = count_transactions(engine)
            await writer.record(read_of(2))
            await writer.record(read_of(3))
        async with engine.connect() as conn:
            report = await verify_chain(conn, tables)
        assert report.ok
        assert report.entries == 3
        # The two appends at the tip began no transaction through SQLAlchemy (verify_chain began one).
        assert begun == [1]
    finally:
        await engine.dispose()


def checked_out(engine: AsyncEngine) -> int:
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout()


async def eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - a pool offers nothing to wait on
            await asyncio.sleep(0.01)


@on_both_databases
async def test_the_writer_keeps_one_connection_between_flushes_and_gives_it_back_when_closed(
    engine: AsyncEngine, tables: AccessLogTables
):
    async with writing(engine, tables) as writer:
        for case in range(5):
            await writer.record(read_of(case))
        # One connection served all five flushes, and is still held.
        assert checked_out(engine) == 1
    assert checked_out(engine) == 0
    assert await chain_length(engine, tables) == 5


async def test_a_connection_that_has_served_its_time_goes_back_to_the_pool(
    engine: AsyncEngine, tables: AccessLogTables
):
    async with writing(engine, tables, keep_connection_s=0) as writer:
        await writer.record(read_of(1))
        await eventually(lambda: checked_out(engine) == 0)
        await writer.record(read_of(2))
    assert await committed_purposes(engine, tables) == ["cases/1", "cases/2"]
