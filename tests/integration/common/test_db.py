"""The unit of work on a real SQLite file.

Its PostgreSQL side is exercised where the databases differ, by the idempotency tests.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import UnitOfWork, create_engine, database_answers

metadata = MetaData()
counters = Table(
    "counters",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", Integer, nullable=False),
)


async def _with_tables(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(insert(counters).values(name="calls", value=0))
    return engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    created = await _with_tables(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'uow.db'}"))
    yield created
    await created.dispose()


async def calls(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        value: int = (await conn.execute(select(counters.c.value))).scalar_one()
    return value


async def add_call(uow: UnitOfWork) -> None:
    await uow.conn.execute(update(counters).values(value=counters.c.value + 1))


async def test_a_unit_of_work_rolls_back_unless_told_to_commit(engine: AsyncEngine):
    async with UnitOfWork(engine) as uow:
        await add_call(uow)

    assert await calls(engine) == 0
    assert not uow.committed


async def test_a_committed_unit_of_work_keeps_its_changes(engine: AsyncEngine):
    async with UnitOfWork(engine) as uow:
        await add_call(uow)
        await uow.commit()

    assert await calls(engine) == 1
    assert uow.committed


async def test_a_failure_inside_a_unit_of_work_rolls_back_and_is_raised(engine: AsyncEngine):
    async def failing_command() -> None:
        async with UnitOfWork(engine) as uow:
            await add_call(uow)
            raise LookupError("officer left")

    with pytest.raises(LookupError, match="officer left"):
        await failing_command()

    assert await calls(engine) == 0


async def test_a_unit_of_work_can_roll_back_explicitly_and_then_leave(engine: AsyncEngine):
    async with UnitOfWork(engine) as uow:
        await add_call(uow)
        await uow.rollback()

    assert await calls(engine) == 0


async def test_a_unit_of_work_hands_out_its_connection_only_while_entered(engine: AsyncEngine):
    uow = UnitOfWork(engine)
    with pytest.raises(RuntimeError, match="not entered"):
        _ = uow.conn
    with pytest.raises(RuntimeError, match="not entered"):
        await uow.commit()

    async with uow:
        pass

    with pytest.raises(RuntimeError, match="not entered"):
        _ = uow.conn


async def test_a_subclass_builds_its_repositories_on_the_connection_it_is_given(engine: AsyncEngine):
    class CounterUnitOfWork(UnitOfWork):
        def bind(self, conn: Any) -> None:
            self.bound_to = conn

    async with CounterUnitOfWork(engine) as uow:
        assert uow.bound_to is uow.conn


async def test_concurrent_sqlite_writers_that_read_first_wait_for_each_other_instead_of_failing(
    engine: AsyncEngine,
):
    async def read_then_write() -> None:
        async with UnitOfWork(engine) as uow:
            seen = (await uow.conn.execute(select(counters.c.value))).scalar_one()
            # Gives the other writer every chance to interleave between the read and the write.
            await asyncio.sleep(0.05)
            await uow.conn.execute(update(counters).values(value=seen + 1))
            await uow.commit()

    await asyncio.gather(*(read_then_write() for _ in range(4)))

    # No "database is locked" and no update lost.
    assert await calls(engine) == 4


async def test_a_sqlite_reader_does_not_wait_for_a_writer(engine: AsyncEngine):
    async with UnitOfWork(engine) as writer:
        await add_call(writer)

        async def read() -> int:
            async with UnitOfWork(engine, write=False) as reader:
                value: int = (await reader.conn.execute(select(counters.c.value))).scalar_one()
                return value

        # The reader sees the last committed value at once, while the writer holds the write lock.
        assert await asyncio.wait_for(read(), timeout=5) == 0
        await writer.commit()

    assert await calls(engine) == 1


async def test_a_sqlite_transaction_outside_a_unit_of_work_takes_the_write_lock_up_front(
    engine: AsyncEngine,
):
    begins: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def remember_begin(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement)

    # The pool hands the same connection to everyone below; a read-only unit of work must not leave
    # its deferred mode behind for the writer that comes next.
    async with UnitOfWork(engine, write=False):
        pass
    async with engine.begin() as conn:
        await conn.execute(update(counters).values(value=7))

    assert begins == ["BEGIN DEFERRED", "BEGIN IMMEDIATE"]


async def test_a_sqlite_database_gets_its_folder_created(tmp_path: Path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'nested' / 'case.db'}")
    try:
        assert await database_answers(engine)
    finally:
        await engine.dispose()

    assert (tmp_path / "var" / "nested" / "case.db").is_file()


async def test_a_database_that_cannot_be_read_does_not_answer(tmp_path: Path):
    broken = tmp_path / "case.db"
    broken.write_bytes(b"this is not a database" * 100)
    engine = create_engine(f"sqlite+aiosqlite:///{broken}")
    try:
        assert not await database_answers(engine)
    finally:
        await engine.dispose()


async def test_a_connection_closed_mid_statement_lets_go_of_the_write_lock(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    # What a cancelled task leaves behind: a write transaction whose UPDATE … RETURNING was run but never
    # read. SQLAlchemy terminates such a connection; sqlite3 alone would keep it open, and the lock held,
    # for as long as the unread cursor lives.
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute("BEGIN IMMEDIATE")
        unread = await driver.execute("UPDATE counters SET value = value + 1 RETURNING value")
        await conn.invalidate()

    def take_the_write_lock() -> None:
        other = sqlite3.connect(tmp_path / "uow.db", timeout=1, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()

    await asyncio.to_thread(take_the_write_lock)  # "database is locked" after a second without the fix
    assert await calls(engine) == 0  # and the unfinished update was rolled back, not committed
    del unread
