"""The gate in front of a database's connections: at most its size inside, the others in arrival order."""

from __future__ import annotations

import asyncio

import pytest

from services.common.gate import FairGate


async def hold(gate: FairGate, name: str, entered: list[str], release: asyncio.Event) -> None:
    async with gate:
        entered.append(name)
        await release.wait()


async def test_no_more_than_its_size_are_inside_at_once():
    gate = FairGate(2)
    entered: list[str] = []
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(gate, str(n), entered, release)) for n in range(5)]
    await asyncio.sleep(0.01)

    assert entered == ["0", "1"]
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(entered) == ["0", "1", "2", "3", "4"]


async def test_a_freed_place_goes_to_the_longest_waiter_not_to_a_newcomer():
    gate = FairGate(1)
    order: list[str] = []
    first_out = asyncio.Event()

    async def first() -> None:
        async with gate:
            order.append("first")
            await first_out.wait()

    async def waiter(name: str) -> None:
        async with gate:
            order.append(name)

    holder = asyncio.create_task(first())
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(waiter(f"waiter-{n}")) for n in range(3)]
    await asyncio.sleep(0)

    # The holder leaves and, in the same turn of the loop, a newcomer asks: it must queue behind.
    first_out.set()
    await holder
    newcomer = asyncio.create_task(waiter("newcomer"))
    await asyncio.gather(*waiting, newcomer)

    assert order == ["first", "waiter-0", "waiter-1", "waiter-2", "newcomer"]


async def test_a_waiter_that_gives_up_leaves_its_place_in_the_queue():
    gate = FairGate(1)
    order: list[str] = []
    release = asyncio.Event()
    holder = asyncio.create_task(hold(gate, "holder", order, release))
    await asyncio.sleep(0)
    impatient = asyncio.create_task(hold(gate, "impatient", order, asyncio.Event()))
    patient = asyncio.create_task(hold(gate, "patient", order, release))
    await asyncio.sleep(0)

    impatient.cancel()
    release.set()
    await asyncio.gather(holder, patient)

    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert order == ["holder", "patient"]


async def test_a_place_handed_over_as_its_waiter_gives_up_is_passed_on():
    gate = FairGate(1)
    order: list[str] = []
    await gate.__aenter__()  # this test holds the place
    unlucky = asyncio.create_task(hold(gate, "unlucky", order, asyncio.Event()))
    after = asyncio.create_task(hold(gate, "after", order, asyncio.Event()))
    await asyncio.sleep(0)

    # Leaving hands the place to "unlucky", which is cancelled before it gets to run.
    await gate.__aexit__(None, None, None)
    unlucky.cancel()
    await asyncio.sleep(0.01)

    with pytest.raises(asyncio.CancelledError):
        await unlucky
    assert order == ["after"]
    after.cancel()
    with pytest.raises(asyncio.CancelledError):
        await after
    async with asyncio.timeout(1), gate:  # every place came back: the gate is not one short
        pass


def test_a_gate_without_places_is_refused():
    with pytest.raises(ValueError, match="at least one place"):
        FairGate(0)
