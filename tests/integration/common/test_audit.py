from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import MetaData, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from services.common import audit
from services.common.audit import (
    GENESIS_HASH,
    AccessLogTables,
    AccessRecord,
    access_log_tables,
    list_access,
    record_access,
    record_accesses,
    verify_chain,
)
from services.common.db import create_engine as create_service_engine
from services.common.errors import InvalidArgument

TOLVAN = "191212121212"
SVEN = "195001011234"
START = datetime(2025, 3, 3, 8, 0, 0, 123456, tzinfo=UTC)


def access(person_number: str = TOLVAN, *, minute: int = 0, purpose: str = "cases/1") -> AccessRecord:
    return AccessRecord(
        actor="handlaggare-7",
        actor_role="case_officer",
        person_number=person_number,
        action="directory.ResolveResponsible",
        purpose=purpose,
        occurred_at=START + timedelta(minutes=minute),
    )


async def _create_tables(engine: AsyncEngine) -> AccessLogTables:
    metadata = MetaData()
    tables = access_log_tables(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return tables


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
        created = create_async_engine(url, connect_args={"timeout": 30}, poolclass=NullPool)
    else:
        created = create_async_engine(request.getfixturevalue("postgres_url"), poolclass=NullPool)
    yield created
    await created.dispose()


@pytest.fixture
async def tables(engine: AsyncEngine) -> AccessLogTables:
    return await _create_tables(engine)


async def _append(engine: AsyncEngine, tables: AccessLogTables, count: int) -> None:
    async with engine.begin() as conn:
        await record_accesses(conn, tables, [access(minute=i) for i in range(count)], service="case")


async def _verify(engine: AsyncEngine, tables: AccessLogTables) -> audit.ChainReport:
    async with engine.connect() as conn:
        return await verify_chain(conn, tables)


async def test_entries_appended_one_by_one_and_in_batches_form_one_intact_chain(engine, tables):
    async with engine.begin() as conn:
        first = await record_access(conn, tables, access(minute=0), service="case")
        second = await record_access(conn, tables, access(SVEN, minute=1), service="case")
    async with engine.begin() as conn:
        await record_accesses(conn, tables, [access(minute=2), access(minute=3)], service="directory")
        third = await record_access(conn, tables, access(minute=4), service="case")

    report = await _verify(engine, tables)

    assert (first, second, third) == (1, 2, 5)
    assert report == audit.ChainReport(ok=True, entries=5, first_bad_seq=None, problem=None)


async def test_an_empty_log_verifies(engine, tables):
    report = await _verify(engine, tables)

    assert report.ok
    assert report.entries == 0


async def test_each_entry_chains_onto_the_hash_of_the_one_before(engine, tables):
    await _append(engine, tables, 3)

    async with engine.connect() as conn:
        rows = (await conn.execute(select(tables.access_log).order_by(tables.access_log.c.seq))).all()

    assert [row.prev_hash for row in rows] == [GENESIS_HASH, rows[0].hash, rows[1].hash]
    assert len({row.hash for row in rows}) == 3


async def test_a_changed_field_is_detected(engine, tables):
    await _append(engine, tables, 5)
    async with engine.begin() as conn:
        await conn.execute(
            update(tables.access_log).where(tables.access_log.c.seq == 3).values(purpose="cases/999")
        )

    report = await _verify(engine, tables)

    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.entries == 2
    assert report.problem is not None
    assert "changed" in report.problem


async def test_a_changed_time_is_detected(engine, tables):
    await _append(engine, tables, 3)
    async with engine.begin() as conn:
        await conn.execute(
            update(tables.access_log)
            .where(tables.access_log.c.seq == 2)
            .values(occurred_at=START + timedelta(minutes=1, microseconds=1))
        )

    report = await _verify(engine, tables)

    assert (report.ok, report.first_bad_seq) == (False, 2)


async def test_a_deleted_entry_is_detected(engine, tables):
    await _append(engine, tables, 5)
    async with engine.begin() as conn:
        await conn.execute(delete(tables.access_log).where(tables.access_log.c.seq == 2))

    report = await _verify(engine, tables)

    assert not report.ok
    assert report.first_bad_seq == 2
    assert report.problem == "entry 2 is missing"


async def test_deleting_the_newest_entries_is_detected_through_the_head(engine, tables):
    await _append(engine, tables, 5)
    async with engine.begin() as conn:
        await conn.execute(delete(tables.access_log).where(tables.access_log.c.seq >= 4))

    report = await _verify(engine, tables)

    assert not report.ok
    assert report.first_bad_seq == 4
    assert report.entries == 3


async def test_a_forged_hash_is_detected_at_the_entry_after_it(engine, tables):
    """Rewriting an entry and recomputing its own hash still breaks the link from the next entry."""
    await _append(engine, tables, 4)
    async with engine.begin() as conn:
        row = (await conn.execute(select(tables.access_log).where(tables.access_log.c.seq == 2))).one()
        fields = {**audit._stored_fields(row), "purpose": "cases/999"}
        forged = audit._entry_hash(row.seq, row.prev_hash, fields)
        await conn.execute(
            update(tables.access_log)
            .where(tables.access_log.c.seq == 2)
            .values(purpose="cases/999", hash=forged)
        )

    report = await _verify(engine, tables)

    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.entries == 2


async def test_a_forged_previous_hash_is_detected(engine, tables):
    await _append(engine, tables, 4)
    async with engine.begin() as conn:
        await conn.execute(
            update(tables.access_log).where(tables.access_log.c.seq == 3).values(prev_hash="f" * 64)
        )

    report = await _verify(engine, tables)

    assert (report.ok, report.first_bad_seq) == (False, 3)


async def test_swapped_entries_are_detected(engine, tables):
    await _append(engine, tables, 4)
    log = tables.access_log
    async with engine.begin() as conn:
        await conn.execute(update(log).where(log.c.seq == 2).values(seq=-2))
        await conn.execute(update(log).where(log.c.seq == 3).values(seq=2))
        await conn.execute(update(log).where(log.c.seq == -2).values(seq=3))

    report = await _verify(engine, tables)

    assert (report.ok, report.first_bad_seq) == (False, 2)


async def test_an_entry_slipped_in_before_the_first_is_detected(engine, tables):
    await _append(engine, tables, 2)
    async with engine.begin() as conn:
        first = (await conn.execute(select(tables.access_log).where(tables.access_log.c.seq == 1))).one()
        forged = {**first._asdict(), "id": 1000, "seq": 0}
        await conn.execute(tables.access_log.insert().values(forged))

    report = await _verify(engine, tables)

    assert (report.ok, report.first_bad_seq) == (False, 0)


async def test_an_entry_added_past_the_head_is_detected(engine, tables):
    await _append(engine, tables, 2)
    async with engine.begin() as conn:
        last = (await conn.execute(select(tables.access_log).where(tables.access_log.c.seq == 2))).one()
        fields = audit._stored_fields(last)
        forged_hash = audit._entry_hash(3, last.hash, fields)
        await conn.execute(
            tables.access_log.insert().values(
                {**fields, "seq": 3, "prev_hash": last.hash, "hash": forged_hash}
            )
        )

    report = await _verify(engine, tables)

    assert (report.ok, report.first_bad_seq, report.entries) == (False, 3, 2)


async def test_a_break_deep_in_a_long_chain_is_found_across_batches(engine, tables, monkeypatch):
    monkeypatch.setattr(audit, "_VERIFY_BATCH", 7)
    await _append(engine, tables, 30)
    assert (await _verify(engine, tables)).entries == 30

    async with engine.begin() as conn:
        await conn.execute(update(tables.access_log).where(tables.access_log.c.seq == 22).values(actor="x"))

    report = await _verify(engine, tables)

    assert (report.ok, report.first_bad_seq, report.entries) == (False, 22, 21)


async def test_an_access_rolled_back_with_its_read_leaves_no_entry(engine, tables):
    async with engine.connect() as conn, conn.begin() as transaction:
        await record_access(conn, tables, access(), service="case")
        await transaction.rollback()

    async with engine.begin() as conn:
        seq = await record_access(conn, tables, access(), service="case")

    assert seq == 1
    assert (await _verify(engine, tables)).entries == 1


async def test_concurrent_appenders_produce_one_unbroken_chain(engine, tables):
    async def appender(index: int) -> int:
        async with engine.begin() as conn:
            return await record_access(conn, tables, access(minute=index), service="case")

    # The first wave races to create the head, the second to move an existing one.
    first_wave = await asyncio.gather(*(appender(i) for i in range(50)))
    second_wave = await asyncio.gather(*(appender(i) for i in range(50, 100)))

    assert sorted(first_wave) == list(range(1, 51))
    assert sorted(second_wave) == list(range(51, 101))
    assert await _verify(engine, tables) == audit.ChainReport(
        ok=True, entries=100, first_bad_seq=None, problem=None
    )


async def test_concurrent_appenders_chain_through_the_service_engine(tmp_path):
    engine = create_service_engine(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}")
    try:
        tables = await _create_tables(engine)

        async def appender(index: int) -> None:
            async with engine.begin() as conn:
                await record_accesses(conn, tables, [access(minute=index)] * 2, service="case")

        await asyncio.gather(*(appender(i) for i in range(25)))
        await asyncio.gather(*(appender(i) for i in range(25)))

        assert (await _verify(engine, tables)).entries == 100
    finally:
        await engine.dispose()


async def test_a_persons_entries_are_listed_newest_first_a_page_at_a_time(engine, tables):
    async with engine.begin() as conn:
        for minute in range(5):
            await record_access(
                conn, tables, access(TOLVAN, minute=minute, purpose=f"cases/{minute}"), service="case"
            )
            await record_access(conn, tables, access(SVEN, minute=minute), service="case")

    async with engine.connect() as conn:
        first_page = await list_access(conn, tables, person_number=TOLVAN, limit=3, before_seq=None)
        second_page = await list_access(
            conn, tables, person_number=TOLVAN, limit=3, before_seq=first_page[-1].seq
        )

    assert [entry.purpose for entry in first_page + second_page] == [f"cases/{m}" for m in reversed(range(5))]
    assert {entry.person_number for entry in first_page + second_page} == {TOLVAN}
    assert [entry.seq for entry in first_page] == [9, 7, 5]


async def test_a_listed_entry_gives_back_what_was_recorded_with_its_time_in_utc(engine, tables):
    stockholm_morning = datetime(2025, 7, 1, 9, 30, 15, 654321, tzinfo=ZoneInfo("Europe/Stockholm"))
    record = AccessRecord(
        actor="medborgare",
        actor_role="citizen",
        person_number=TOLVAN,
        action="case.ListMyCases",
        purpose="own data",
        occurred_at=stockholm_morning,
    )
    async with engine.begin() as conn:
        await record_access(conn, tables, record, service="case")
    async with engine.connect() as conn:
        [entry] = await list_access(conn, tables, person_number=TOLVAN, limit=10, before_seq=None)

    assert entry.occurred_at == stockholm_morning
    assert entry.occurred_at.utcoffset() == timedelta(0)
    assert (entry.actor, entry.actor_role, entry.action, entry.purpose, entry.service) == (
        "medborgare",
        "citizen",
        "case.ListMyCases",
        "own data",
        "case",
    )
    assert (await _verify(engine, tables)).ok


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"person_number": "121212-1212"}, "person_number"),
        ({"purpose": ""}, "purpose"),
        ({"actor": "x" * 256}, "actor"),
        ({"occurred_at": datetime(2025, 1, 1)}, "occurred_at"),
    ],
)
def test_a_record_that_could_not_be_stored_is_refused_when_made(changes, field):
    values = {**access().__dict__, **changes}

    with pytest.raises(InvalidArgument) as refused:
        AccessRecord(**values)

    assert refused.value.violations[0].field == field


async def test_an_entry_without_a_service_is_refused_and_nothing_is_written(engine, tables):
    async with engine.begin() as conn:
        with pytest.raises(InvalidArgument) as refused:
            await record_access(conn, tables, access(), service="")

    assert refused.value.violations[0].field == "service"
    assert (await _verify(engine, tables)).entries == 0


async def test_listing_refuses_a_limit_out_of_range(engine, tables):
    # Callers clamp the page size before they list; a limit out of range is a defect of theirs.
    async with engine.connect() as conn:
        with pytest.raises(ValueError, match="limit"):
            await list_access(conn, tables, person_number=TOLVAN, limit=0, before_seq=None)


def test_adding_the_tables_twice_to_one_metadata_gives_the_same_tables():
    metadata = MetaData()

    assert access_log_tables(metadata) == access_log_tables(metadata)
