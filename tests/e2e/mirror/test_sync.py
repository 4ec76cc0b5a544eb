"""Keeping the mirror in step with the sources over real HTTP: the first full sync, ties across pages, a
late commit, garbage, a crash in the middle of a page, deletes found by reconciliation and the 5 % hold, a
person who moved. The test drives each source's sync itself, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aldredirekt.mirror.v1 import mirror_pb2

from services.mirror.clients import FailureKind, SourceFailure
from synthcity.care import DecisionStatus
from tests.e2e.mirror.conftest import MODULE_LOOP, MirrorStack, start_mirror, upstream_record
from upstreams import Running as Upstreams

pytestmark = MODULE_LOOP

BROMMA = "paraply-bromma"


@pytest_asyncio.fixture(loop_scope="module")
async def mirror(tmp_path: Path, upstreams: Upstreams, database: str) -> AsyncIterator[MirrorStack]:
    """A mirror whose sync the test drives, with small pages so that a few records span several."""
    running = await start_mirror(
        tmp_path / "mirror", upstreams, database, run_sync=False, MIRROR_PAGE_SIZE="10"
    )
    yield running
    await running.close()


def upstream_ids(upstreams: Upstreams, name: str) -> set[str]:
    return {entry.record.record_id for entry in upstreams.store(name).entries()}


async def mirrored_ids(mirror: MirrorStack, name: str) -> set[str]:
    async with mirror.mirror.uow(write=False) as uow:
        return await uow.mirror.record_ids(name)


async def decision_ids(mirror: MirrorStack, person: str) -> set[str]:
    return {d.decision_id for d in (await mirror.overview(person)).decisions}


async def settled(mirror: MirrorStack) -> None:
    """Waits past the settle period, so that what a source changed just now is inside the next window."""
    await asyncio.sleep(mirror.settings.sync.settle_seconds + 0.05)


async def test_a_full_sync_brings_every_record_once_and_a_second_run_writes_nothing(
    tmp_path: Path, upstreams: Upstreams, database: str
) -> None:
    mirror = await start_mirror(tmp_path / "full", upstreams, database, run_sync=False)
    try:
        first = await mirror.sync()
        for name in mirror.mirror.syncs:
            assert await mirrored_ids(mirror, name) == upstream_ids(upstreams, name), name
            assert first[name].quarantined == 0
        # Agresso's invoices take several pages of a thousand.
        assert first["agresso"].pages == len(upstream_ids(upstreams, "agresso")) // 1000 + 1
        rows = await mirror.sources()
        assert all(row.full_sync_done and row.state == "ok" for row in rows.values())

        again = await mirror.sync()
        assert all(result.changed == 0 for result in again.values()), {
            name: result.changed for name, result in again.items()
        }
    finally:
        await mirror.close()


async def test_records_tied_on_their_update_time_across_a_page_boundary_all_arrive(
    mirror: MirrorStack, upstreams: Upstreams
) -> None:
    await mirror.sync(BROMMA)
    # 25 records saved in one transaction: pages of ten split the tie twice.
    changed = upstreams.mutate(BROMMA, "tie", count=25)["changes"]
    assert len({c["updated_at"] for c in changed}) == 1
    await settled(mirror)
    result = (await mirror.sync(BROMMA))[BROMMA]
    assert result.read >= 25
    assert result.changed == 25
    # The bookmark is past the tie: nothing of it is read again as changed.
    assert (await mirror.sync(BROMMA))[BROMMA].changed == 0


async def test_a_row_committed_late_with_an_earlier_update_time_is_still_found(
    mirror: MirrorStack, upstreams: Upstreams
) -> None:
    record = mirror.care.records_of("bromma")[0]
    await mirror.sync(BROMMA)
    before = await decision_ids(mirror, record.person_number)
    # A new decision whose transaction commits 0.6 s late: its update time is earlier than that of a change
    # served in the meantime.
    late = upstreams.mutate(BROMMA, "late_commit", change="add_decision", id=record.record_id, seconds=0.6)[
        "changes"
    ][0]
    await asyncio.sleep(0.05)
    other = upstreams.mutate(BROMMA, "add_decision")["changes"][0]
    assert late["updated_at"] < other["updated_at"]
    await settled(mirror)
    await mirror.sync(BROMMA)  # serves the later change; the late one is not visible yet
    assert await decision_ids(mirror, record.person_number) == before
    await asyncio.sleep(0.7)
    await mirror.sync(BROMMA)  # the overlap reads back over it
    after = await decision_ids(mirror, record.person_number)
    assert before < after
    assert len(after - before) == 1


async def test_garbage_is_quarantined_the_cursor_moves_on_and_an_operator_can_retry_it(
    mirror: MirrorStack, upstreams: Upstreams
) -> None:
    await mirror.sync(BROMMA)
    broken = [
        upstreams.mutate(BROMMA, "malformed_record", kind=kind)["changes"][0]["id"]
        for kind in ("missing_field", "wrong_type", "bad_person_number")
    ]
    good = upstreams.mutate(BROMMA, "add_decision")["changes"][0]  # a good change after the bad ones
    await settled(mirror)
    result = (await mirror.sync(BROMMA))[BROMMA]
    assert result.quarantined == 3
    assert result.changed == 1
    synced = (await mirror.sources())[BROMMA].synced_through
    assert synced is not None
    assert synced >= datetime.fromisoformat(good["updated_at"])
    listed = await mirror.stub.ListQuarantinedRecords(
        mirror_pb2.ListQuarantinedRecordsRequest(source=f"sources/{BROMMA}"), metadata=mirror.operator()
    )
    assert sorted(r.name for r in listed.records) == sorted(
        f"sources/{BROMMA}/quarantine/{i}" for i in broken
    )
    for record in listed.records:
        assert record.reason
        assert len(record.payload_hash) == 64
        # What a quarantined record held is not shown: a hash and a reason, never its person number.
        held = upstream_record(upstreams, BROMMA, record.name.rsplit("/", 1)[1])
        assert held.person_number not in record.reason

    # Read again within the overlap, they stay quarantined once each.
    await mirror.sync(BROMMA)
    again = await mirror.stub.ListQuarantinedRecords(
        mirror_pb2.ListQuarantinedRecordsRequest(source=f"sources/{BROMMA}"), metadata=mirror.operator()
    )
    assert len(again.records) == 3

    # Fixed upstream (the record saved again, readable): a retry stores and releases it.
    store = upstreams.store(BROMMA)
    store.put(upstream_record(upstreams, BROMMA, broken[0]))
    retried = await mirror.stub.RetryQuarantinedRecord(
        mirror_pb2.RetryQuarantinedRecordRequest(name=f"sources/{BROMMA}/quarantine/{broken[0]}"),
        metadata=mirror.operator(),
    )
    assert retried.released
    # Still broken upstream: stays in quarantine, its attempts counted.
    still = await mirror.stub.RetryQuarantinedRecord(
        mirror_pb2.RetryQuarantinedRecordRequest(name=f"sources/{BROMMA}/quarantine/{broken[1]}"),
        metadata=mirror.operator(),
    )
    assert not still.released
    assert still.record.attempts >= 2


async def test_a_crash_in_the_middle_of_a_page_loses_nothing_and_duplicates_nothing(
    mirror: MirrorStack, upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = mirror.mirror.syncs[BROMMA]
    real_store = sync._store
    calls = {"n": 0}

    async def store_then_crash(uow: Any, records: list[Any], now: Any) -> int:
        calls["n"] += 1
        written = await real_store(uow, records, now)
        if calls["n"] == 3:
            raise ConnectionResetError("the process died with half a page written")
        return written

    monkeypatch.setattr(sync, "_store", store_then_crash)
    with pytest.raises(ConnectionResetError):
        await mirror.sync(BROMMA)
    # Two pages are in with their bookmark; the third page's rows were rolled back with it.
    assert len(await mirrored_ids(mirror, BROMMA)) == 20
    monkeypatch.setattr(sync, "_store", real_store)

    await mirror.sync(BROMMA)
    assert await mirrored_ids(mirror, BROMMA) == upstream_ids(upstreams, BROMMA)
    async with mirror.mirror.uow(write=False) as uow:
        counted = (await uow.mirror.count_records())[BROMMA]
    assert counted == len(upstream_ids(upstreams, BROMMA))


async def test_a_source_failing_between_pages_keeps_the_bookmark_at_what_was_read(
    mirror: MirrorStack, upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = mirror.mirror.clients[BROMMA]
    real_changes = client.changes
    calls = {"n": 0}

    async def changes_then_down(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise SourceFailure(BROMMA, FailureKind.DOWN, "ConnectError")
        return await real_changes(**kwargs)

    monkeypatch.setattr(client, "changes", changes_then_down)
    with pytest.raises(SourceFailure):
        await mirror.sync(BROMMA)
    rows = await mirror.sources()
    assert not rows[BROMMA].full_sync_done
    assert len(await mirrored_ids(mirror, BROMMA)) == 30
    monkeypatch.setattr(client, "changes", real_changes)
    await mirror.sync(BROMMA)
    assert await mirrored_ids(mirror, BROMMA) == upstream_ids(upstreams, BROMMA)


async def test_reconciliation_removes_what_the_source_deleted_and_holds_a_large_sweep(
    mirror: MirrorStack, upstreams: Upstreams
) -> None:
    await mirror.sync(BROMMA, "paraply-farsta")
    # One record deleted upstream: the change feed never says so (no tombstones).
    gone = upstreams.mutate(BROMMA, "delete_person")["changes"][0]
    await settled(mirror)
    await mirror.sync(BROMMA)
    assert gone["id"] in await mirrored_ids(mirror, BROMMA)

    answer = await mirror.stub.ReconcileSource(
        mirror_pb2.ReconcileSourceRequest(source=f"sources/{BROMMA}"), metadata=mirror.operator()
    )
    assert (answer.removed, answer.held_sweep) == (1, "")
    assert await mirrored_ids(mirror, BROMMA) == upstream_ids(upstreams, BROMMA)

    # A tenth of Farsta's records disappear at once: more than 5 %, so it waits for an operator.
    farsta = "paraply-farsta"
    before = upstream_ids(upstreams, farsta)
    for _ in range(len(before) // 10 + 1):
        upstreams.mutate(farsta, "delete_person")
    held = await mirror.stub.ReconcileSource(
        mirror_pb2.ReconcileSourceRequest(source=f"sources/{farsta}"), metadata=mirror.operator()
    )
    assert held.removed == 0
    assert held.held_sweep.startswith(f"sources/{farsta}/sweeps/")
    assert await mirrored_ids(mirror, farsta) == before
    listed = await mirror.stub.ListSources(mirror_pb2.ListSourcesRequest(), metadata=mirror.operator())
    assert [s.held_sweeps for s in listed.sources if s.name == f"sources/{farsta}"] == [[held.held_sweep]]

    applied = await mirror.stub.ResolveHeldSweep(
        mirror_pb2.ResolveHeldSweepRequest(name=held.held_sweep, apply=True), metadata=mirror.operator()
    )
    assert applied.removed == len(before) // 10 + 1
    assert await mirrored_ids(mirror, farsta) == upstream_ids(upstreams, farsta)
    # Decided once: it cannot be applied again.
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await mirror.stub.ResolveHeldSweep(
            mirror_pb2.ResolveHeldSweepRequest(name=held.held_sweep, apply=True), metadata=mirror.operator()
        )
    assert again.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)


async def test_a_person_who_moved_has_current_decisions_where_they_live_now(
    mirror: MirrorStack, upstreams: Upstreams
) -> None:
    await mirror.sync(BROMMA, "paraply-farsta")
    moved = upstreams.mutate(BROMMA, "move_person", to_district="farsta")["changes"]
    person = moved[0]["person_number"]
    await settled(mirror)
    await mirror.sync(BROMMA, "paraply-farsta")
    overview = await mirror.overview(person)
    assert overview.found
    assert set(overview.home_districts) >= {"districts/farsta"}
    current = [d for d in overview.decisions if d.current]
    assert current
    assert {d.district for d in current} == {"districts/farsta"}
    assert all(not d.current for d in overview.decisions if d.district == "districts/bromma")
    assert overview.responsible_officer.district == "districts/farsta"


async def test_people_who_moved_in_the_generated_city_show_the_district_they_live_in(
    mirror: MirrorStack, upstreams: Upstreams
) -> None:
    # Every Paraply (pages of ten make Agresso's invoices slow to read, and they are not needed here).
    await mirror.sync(*(name for name in mirror.mirror.syncs if name != "agresso"))
    person, left = next(iter(mirror.care.moved_from.items()))
    records = [r for r in mirror.care.records if r.person_number == person]
    now_in = next(r.district_id for r in records if r.current_decisions)
    assert now_in != left
    overview = await mirror.overview(person)
    assert {d.district for d in overview.decisions if d.current} == {f"districts/{now_in}"}
    assert all(
        d.status is DecisionStatus.ENDED for r in records if r.district_id == left for d in r.decisions
    )
