"""The shared outbox on a real SQLite file and a real PostgreSQL database.

The receivers here count what they accepted per delivery key, which is what "exactly once" means to a
receiver that drops duplicates by that key; most tests also check that nothing arrived twice at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import UnitOfWork, create_engine
from services.common.outbox import (
    DeliveryFailed,
    OutboxEntry,
    OutboxMessage,
    OutboxSender,
    State,
    add_outbox_table,
    counts,
    enqueue,
    list_messages,
    retry_dead,
)

START = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)

metadata = MetaData()
outbox = add_outbox_table(metadata)


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Receiver:
    """Accepts messages and counts them per delivery key; refuses while it has refusals queued."""

    def __init__(self, *refusals: Exception):
        self.accepted: Counter[str] = Counter()
        self.refusals = list(refusals)
        self.arrived = asyncio.Event()

    async def __call__(self, message: OutboxMessage) -> None:
        if self.refusals:
            raise self.refusals.pop(0)
        self.accepted[message.delivery_key] += 1
        self.arrived.set()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
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


async def enqueue_committed(engine: AsyncEngine, clock: Clock, *keys: str, kind: str = "mail") -> list[int]:
    async with UnitOfWork(engine) as uow:
        ids = [
            await enqueue(
                uow.conn,
                outbox,
                kind=kind,
                payload=f"Ärende att återkoppla: {key}".encode(),
                delivery_key=key,
                subject_ref="cases/12",
                now=clock(),
            )
            for key in keys
        ]
        await uow.commit()
    return ids


async def listed(engine: AsyncEngine, state: State, **options: int) -> list[OutboxEntry]:
    async with UnitOfWork(engine, write=False) as uow:
        return await list_messages(uow.conn, outbox, state=state, **options)


async def state_counts(engine: AsyncEngine) -> dict[State, int]:
    async with UnitOfWork(engine, write=False) as uow:
        return await counts(uow.conn, outbox)


async def stopped(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def sender(
    engine: AsyncEngine, clock: Clock, receiver: Receiver, *, worker: str = "case-0", **options: float
) -> OutboxSender:
    return OutboxSender(
        engine,
        outbox,
        {"mail": receiver},
        worker=worker,
        clock=clock,
        backoff=lambda attempts: timedelta(minutes=attempts),
        **options,  # type: ignore[arg-type]
    )


async def test_a_message_enqueued_in_a_rolled_back_transaction_is_never_sent(
    engine: AsyncEngine, clock: Clock
):
    async with UnitOfWork(engine) as uow:
        await enqueue(uow.conn, outbox, kind="mail", payload=b"x", delivery_key="<undone@ad>", now=clock())
        # No commit: the business change failed, so its message must not exist either.
    receiver = Receiver()

    assert await sender(engine, clock, receiver).send_due() == 0
    assert receiver.accepted == Counter()
    assert await state_counts(engine) == {"pending": 0, "dead": 0, "sent": 0}


async def test_a_delivery_key_names_one_message_only(engine: AsyncEngine, clock: Clock):
    await enqueue_committed(engine, clock, "<forward-12@ad>")

    with pytest.raises(IntegrityError):
        await enqueue_committed(engine, clock, "<forward-12@ad>")

    assert await state_counts(engine) == {"pending": 1, "dead": 0, "sent": 0}


async def test_a_delivered_message_is_marked_sent_and_never_sent_again(engine: AsyncEngine, clock: Clock):
    [message_id] = await enqueue_committed(engine, clock, "<forward-12@ad>")
    receiver = Receiver()
    outbox_sender = sender(engine, clock, receiver, claim_seconds=60)

    assert await outbox_sender.send_due() == 1
    clock.advance(hours=1)  # long past any claim and any backoff
    assert await outbox_sender.send_due() == 0

    assert receiver.accepted == Counter({"<forward-12@ad>": 1})
    [entry] = await listed(engine, "sent")
    assert (entry.id, entry.state, entry.attempts, entry.last_error) == (message_id, "sent", 0, "")
    assert entry.sent_time == START
    assert entry.subject_ref == "cases/12"
    assert await state_counts(engine) == {"pending": 0, "dead": 0, "sent": 1}


async def test_a_retryable_failure_backs_off_and_is_retried_when_due(engine: AsyncEngine, clock: Clock):
    await enqueue_committed(engine, clock, "<forward-12@ad>")
    receiver = Receiver(ConnectionRefusedError("smtp.stad.example refused the connection"))
    outbox_sender = sender(engine, clock, receiver)

    assert await outbox_sender.send_due() == 0
    [failed] = await listed(engine, "pending")
    assert failed.attempts == 1
    assert failed.last_error == "ConnectionRefusedError: smtp.stad.example refused the connection"
    # The test's backoff is one minute per attempt.
    assert failed.next_attempt_time == START + timedelta(minutes=1)

    clock.advance(seconds=59)
    assert await outbox_sender.send_due() == 0
    assert receiver.accepted == Counter()

    clock.advance(seconds=1)
    assert await outbox_sender.send_due() == 1
    assert receiver.accepted == Counter({"<forward-12@ad>": 1})
    [sent] = await listed(engine, "sent")
    assert (sent.attempts, sent.last_error) == (1, "")


async def test_a_permanent_failure_makes_the_message_dead_at_once(engine: AsyncEngine, clock: Clock):
    await enqueue_committed(engine, clock, "<forward-12@ad>")
    receiver = Receiver(DeliveryFailed("550 mailbox unknown", permanent=True))
    outbox_sender = sender(engine, clock, receiver)

    assert await outbox_sender.send_due() == 0
    clock.advance(hours=1)
    assert await outbox_sender.send_due() == 0

    assert receiver.accepted == Counter()
    [dead] = await listed(engine, "dead")
    assert (dead.state, dead.attempts, dead.dead_time) == ("dead", 1, START)
    assert dead.last_error == "DeliveryFailed: 550 mailbox unknown"
    assert await state_counts(engine) == {"pending": 0, "dead": 1, "sent": 0}


async def test_a_message_goes_dead_when_it_reaches_max_attempts(engine: AsyncEngine, clock: Clock):
    await enqueue_committed(engine, clock, "<forward-12@ad>")
    receiver = Receiver(*(DeliveryFailed("451 try again later") for _ in range(5)))
    outbox_sender = sender(engine, clock, receiver, max_attempts=3)

    for _ in range(5):
        await outbox_sender.send_due()
        clock.advance(hours=1)

    # Three attempts were made, the third one made it dead, and no fourth came.
    assert len(receiver.refusals) == 2
    [dead] = await listed(engine, "dead")
    assert dead.attempts == 3
    assert dead.last_error == "DeliveryFailed: 451 try again later"
    assert await listed(engine, "pending") == []


async def test_dead_messages_are_listed_and_retry_dead_makes_them_deliverable_again(
    engine: AsyncEngine, clock: Clock
):
    keys = [f"<forward-{n}@ad>" for n in range(5)]
    ids = await enqueue_committed(engine, clock, *keys)
    refusing = Receiver(*(DeliveryFailed("550 mailbox unknown", permanent=True) for _ in keys))
    await sender(engine, clock, refusing).send_due()

    first_page = await listed(engine, "dead", limit=3)
    second_page = await listed(engine, "dead", after_id=first_page[-1].id, limit=3)
    assert [e.id for e in first_page + second_page] == ids
    assert {e.state for e in first_page + second_page} == {"dead"}

    clock.advance(minutes=10)
    async with UnitOfWork(engine) as uow:
        assert await retry_dead(uow.conn, outbox, ids[1], now=clock())
        assert not await retry_dead(uow.conn, outbox, ids[-1] + 100, now=clock())
        await uow.commit()
    [revived] = await listed(engine, "pending")
    assert (revived.id, revived.attempts, revived.dead_time) == (ids[1], 0, None)
    assert revived.next_attempt_time == clock()

    receiver = Receiver()
    assert await sender(engine, clock, receiver).send_due() == 1
    assert receiver.accepted == Counter({keys[1]: 1})
    async with UnitOfWork(engine) as uow:
        # Sent is not dead: nothing to retry.
        assert not await retry_dead(uow.conn, outbox, ids[1], now=clock())
    assert await state_counts(engine) == {"pending": 0, "dead": 4, "sent": 1}


async def test_two_senders_racing_deliver_each_message_exactly_once(database_url: str, clock: Clock):
    # Two engines, as two replicas would have: the race is between database connections.
    first, second = create_engine(database_url), create_engine(database_url)
    try:
        async with first.begin() as conn:
            await conn.run_sync(metadata.create_all)
        keys = [f"<forward-{n}@ad>" for n in range(200)]
        await enqueue_committed(first, clock, *keys)

        accepted: Counter[str] = Counter()
        by_worker: Counter[str] = Counter()

        def receiver_for(worker: str) -> Receiver:
            class Counting(Receiver):
                async def __call__(self, message: OutboxMessage) -> None:
                    await asyncio.sleep(0.001)  # a delivery takes time, so the senders interleave
                    accepted[message.delivery_key] += 1
                    by_worker[worker] += 1

            return Counting()

        senders = [
            sender(engine, clock, receiver_for(worker), worker=worker)
            for engine, worker in ((first, "case-a"), (second, "case-b"))
        ]

        async def drain(outbox_sender: OutboxSender) -> None:
            while await outbox_sender.send_due(limit=5):
                pass

        # Several rounds of each sender at once, so claims keep colliding.
        await asyncio.wait_for(asyncio.gather(*(drain(s) for s in senders for _ in range(4))), timeout=20)

        assert accepted == Counter(dict.fromkeys(keys, 1))
        assert set(by_worker) == {"case-a", "case-b"}
        assert await state_counts(first) == {"pending": 0, "dead": 0, "sent": 200}
    finally:
        await first.dispose()
        await second.dispose()


@pytest.mark.parametrize("late_outcome", ["refused for good", "accepted"])
async def test_a_sender_whose_claim_expired_cannot_mark_a_message_another_sender_delivered(
    engine: AsyncEngine, clock: Clock, late_outcome: str
):
    await enqueue_committed(engine, clock, "<forward-12@ad>")
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_delivery(message: OutboxMessage) -> None:
        entered.set()
        await release.wait()
        if late_outcome == "refused for good":
            raise DeliveryFailed("550 mailbox unknown", permanent=True)

    slow = OutboxSender(
        engine, outbox, {"mail": slow_delivery}, worker="case-a", claim_seconds=60, clock=clock
    )
    prompt_receiver = Receiver()
    prompt = sender(engine, clock, prompt_receiver, worker="case-b", claim_seconds=60)

    slow_round = asyncio.create_task(slow.send_due())
    await asyncio.wait_for(entered.wait(), timeout=5)
    delivered_at = clock.advance(seconds=61)
    assert await prompt.send_due() == 1
    clock.advance(seconds=30)
    release.set()

    assert await asyncio.wait_for(slow_round, timeout=5) == 0
    [entry] = await listed(engine, "sent")
    assert (entry.sent_time, entry.attempts, entry.last_error, entry.dead_time) == (delivered_at, 0, "", None)
    assert prompt_receiver.accepted == Counter({"<forward-12@ad>": 1})


async def test_the_next_lease_holder_frees_the_claims_of_the_one_before_and_sends_at_once(
    engine: AsyncEngine, clock: Clock
):
    await enqueue_committed(engine, clock, "<forward-12@ad>", "<forward-13@ad>")
    entered = asyncio.Event()

    async def stuck(message: OutboxMessage) -> None:
        entered.set()
        await asyncio.Event().wait()  # the process dies here

    crashed = OutboxSender(engine, outbox, {"mail": stuck}, worker="case-a", claim_seconds=120, clock=clock)
    crashed_round = asyncio.create_task(crashed.send_due())
    await asyncio.wait_for(entered.wait(), timeout=5)
    await stopped(crashed_round)

    receiver = Receiver()
    taker = sender(engine, clock, receiver, worker="case-b", claim_seconds=120)
    assert await taker.send_due() == 0  # claimed by case-a for two minutes
    await taker.send_under_lease(epoch=2, interval=0)

    assert receiver.accepted == Counter({"<forward-12@ad>": 1, "<forward-13@ad>": 1})
    assert len(await listed(engine, "sent")) == 2
    # Under the same epoch nothing is freed again: the claims it meets then are its own.
    assert await taker.free_others_claims() == 0


async def test_a_message_of_a_kind_without_deliverer_stays_pending_and_is_logged_once(
    engine: AsyncEngine, clock: Clock, caplog: pytest.LogCaptureFixture
):
    [finance_id, _] = await enqueue_committed(engine, clock, "finance-1", "finance-2", kind="finance")
    await enqueue_committed(engine, clock, "<forward-12@ad>")
    receiver = Receiver()
    mail_only = sender(engine, clock, receiver)

    with caplog.at_level(logging.WARNING, logger="aldredirekt.outbox"):
        assert await mail_only.send_due() == 1
        clock.advance(hours=1)
        assert await mail_only.send_due() == 0

    assert receiver.accepted == Counter({"<forward-12@ad>": 1})
    pending = await listed(engine, "pending")
    assert [(e.kind, e.attempts, e.last_error) for e in pending] == [("finance", 0, "")] * 2
    about_finance = [r for r in caplog.records if "'finance'" in r.getMessage()]
    assert len(about_finance) == 1

    finance_receiver = Receiver()
    finance = OutboxSender(engine, outbox, {"finance": finance_receiver}, worker="fees-0", clock=clock)
    assert await finance.send_due() == 2
    assert finance_receiver.accepted == Counter({"finance-1": 1, "finance-2": 1})
    assert finance_id in {e.id for e in await listed(engine, "sent")}


async def test_a_running_sender_delivers_as_soon_as_it_is_woken(engine: AsyncEngine, clock: Clock):
    receiver = Receiver()
    outbox_sender = sender(engine, clock, receiver)
    running = asyncio.create_task(outbox_sender.run(interval=60))
    try:
        await asyncio.sleep(0.1)  # its first round finds nothing and waits a minute
        await enqueue_committed(engine, clock, "<forward-12@ad>")
        outbox_sender.wake()
        await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
    finally:
        await stopped(running)
    assert receiver.accepted == Counter({"<forward-12@ad>": 1})


async def test_a_running_sender_outlives_failing_rounds(database_url: str, clock: Clock):
    engine = create_engine(database_url)
    receiver = Receiver()
    outbox_sender = sender(engine, clock, receiver)
    try:
        # No table yet: every round fails until the migration has run.
        running = asyncio.create_task(outbox_sender.run(interval=0.05))
        await asyncio.sleep(0.3)
        assert not running.done()
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await enqueue_committed(engine, clock, "<forward-12@ad>")
        await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
        await stopped(running)
    finally:
        await engine.dispose()
    assert receiver.accepted == Counter({"<forward-12@ad>": 1})
