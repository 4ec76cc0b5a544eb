"""The transactional outbox: messages to other systems (mail, hand-offs to finance) for every service.

A message is written with `enqueue` in the transaction of the business change that causes it, so it
exists exactly when that change commits. An `OutboxSender` then delivers it, outside any transaction,
through the deliverer of its kind, and records the outcome.

What this guarantees:

- At least once. A message is marked sent only after its deliverer returned. A sender that crashes
  between the two, or whose claim ran out during a slow delivery, leaves the message to be delivered
  again, under the same `delivery_key`: receivers drop the duplicate by that key (the Message-ID of a
  mail, the Idempotency-Key of an HTTP hand-off). Nothing is dropped: a message is either sent, or
  dead and listed for operators, or still pending.
- One sender at a time per message. Any number of senders (processes, replicas) may run: a claim is
  taken in one short transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock on SQLite),
  and lasts `claim_seconds`. Deliverers must give up well within that time.
- Fenced outcomes. A sender records an outcome only while the message is still claimed by it in the
  state it claimed it in; a sender whose claim ran out and was taken over cannot overwrite the outcome
  of the sender that took it. `worker` names must therefore be unique among live senders (a pod name
  plus a random suffix, say).

- Prompt after a crash. Where senders take turns under a lease (the services' outbox jobs), the sender that
  takes the lease at a new epoch first frees the claims of the others (`send_under_lease`): the lease says
  their holder has stopped, so its messages need not wait out `claim_seconds`.

No personal data in logs: messages are logged by id, kind and delivery key. The payload is opaque
here; `subject_ref` names what a message is about (`cases/12`), never a person. Operators read
`last_error`, so deliverers keep personal data out of their failure reasons too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    case,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.db import UnitOfWork, utc

log = logging.getLogger("aldredirekt.outbox")

State = Literal["pending", "dead", "sent"]
STATES: tuple[State, ...] = ("pending", "dead", "sent")

_ID = BigInteger().with_variant(Integer, "sqlite")
_NOT_DONE = "sent_time IS NULL AND dead_time IS NULL"
_ERROR_LENGTH = 500

outbox_metadata = MetaData()

# Each service adds this table to its own database through a migration; the metadata object here only
# serves to copy it from (see add_outbox_table).
outbox_messages = Table(
    "outbox_messages",
    outbox_metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),
    # Fixed at enqueue, so a retry after an unknown outcome is recognisably the same message.
    Column("delivery_key", String(200), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("subject_ref", String(200), nullable=False, default="", server_default=""),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("next_attempt_time", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=0, server_default=text("0")),
    Column("claimed_by", String(200)),
    Column("claimed_until", DateTime(timezone=True)),
    Column("sent_time", DateTime(timezone=True)),
    Column("dead_time", DateTime(timezone=True)),
    Column("last_error", String(_ERROR_LENGTH), nullable=False, default="", server_default=""),
    UniqueConstraint("delivery_key", name="uq_outbox_messages_delivery_key"),
    # Partial indexes: the rows not yet done are few next to the sent ones, which pile up, so both the
    # senders' search for due messages and the operators' list of dead ones stay small.
    Index(
        "ix_outbox_messages_due",
        "next_attempt_time",
        "id",
        postgresql_where=text(_NOT_DONE),
        sqlite_where=text(_NOT_DONE),
    ),
    Index(
        "ix_outbox_messages_dead",
        "id",
        postgresql_where=text("dead_time IS NOT NULL"),
        sqlite_where=text("dead_time IS NOT NULL"),
    ),
)


def add_outbox_table(metadata: MetaData) -> Table:
    """The outbox table in a service's own metadata, for its migrations and tests."""
    return outbox_messages.to_metadata(metadata)


async def enqueue(
    conn: AsyncConnection,
    table: Table,
    *,
    kind: str,
    payload: bytes,
    delivery_key: str,
    subject_ref: str = "",
    now: datetime,
) -> int:
    """Writes a message in the caller's transaction and returns its id; it is due at once.

    The caller commits (or rolls back) the message together with the change it announces, and may wake
    its sender after the commit. A `delivery_key` used before fails the statement (an IntegrityError,
    which on PostgreSQL also aborts the caller's transaction): two messages under one key would look
    like one to the receiver.
    """
    if not 0 < len(kind) <= 40:
        raise ValueError("an outbox message needs a kind of 1 to 40 characters")
    if not 0 < len(delivery_key) <= 200:
        raise ValueError("an outbox message needs a delivery key of 1 to 200 characters")
    if len(subject_ref) > 200:
        raise ValueError("an outbox message's subject_ref is at most 200 characters")
    moment = utc(now)
    result = await conn.execute(
        insert(table)
        .values(
            kind=kind,
            delivery_key=delivery_key,
            payload=payload,
            subject_ref=subject_ref,
            create_time=moment,
            next_attempt_time=moment,
            attempts=0,
            claimed_by=None,
            claimed_until=None,
            sent_time=None,
            dead_time=None,
            last_error="",
        )
        .returning(table.c.id)
    )
    return int(result.scalar_one())


# ---------------------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxMessage:
    """What a deliverer gets: `attempts` counts the attempts before this one."""

    id: int
    kind: str
    delivery_key: str
    payload: bytes
    subject_ref: str
    attempts: int
    create_time: datetime


class DeliveryFailed(Exception):
    """A deliverer's refusal: `permanent` when trying again cannot help (the message goes dead at once).

    The reason is kept as the message's `last_error` for operators: no personal data in it.
    """

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Deliver(Protocol):
    """Hands one message to its receiver; returns once the receiver has accepted it.

    Raises DeliveryFailed; any other exception counts as a failure worth retrying.
    """

    async def __call__(self, message: OutboxMessage, /) -> None: ...


def exponential_backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 5 s, doubling, at most 10 minutes."""
    return timedelta(seconds=min(600, 5 * 2 ** min(max(attempts, 1) - 1, 10)))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _describe(error: BaseException) -> str:
    detail = " ".join(str(error).split())
    described = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return described[:_ERROR_LENGTH]


@dataclass(frozen=True)
class _Claimed:
    message: OutboxMessage
    claimed_until: datetime


class OutboxSender:
    """Delivers due messages of the kinds it has deliverers for; any number may run side by side.

    A message of a kind without a deliverer here is never claimed: it stays pending for a sender that
    has one, and is logged once per kind.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        deliverers: Mapping[str, Deliver],
        *,
        worker: str,
        claim_seconds: float = 120.0,
        max_attempts: int = 10,
        backoff: Callable[[int], timedelta] = exponential_backoff,
        clock: Callable[[], datetime] = _utc_now,
    ):
        if not 0 < len(worker) <= 200:
            raise ValueError("a sender needs a worker name of 1 to 200 characters")
        if claim_seconds <= 0:
            raise ValueError("claim_seconds must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.engine = engine
        self.table = table
        self.deliverers = dict(deliverers)
        self.worker = worker
        self.claim = timedelta(seconds=claim_seconds)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.clock = clock
        self._wake = asyncio.Event()
        self._kinds_reported: set[str] = set()
        # The lease epoch this sender last worked under (send_under_lease).
        self._epoch: int | None = None

    def wake(self) -> None:
        """Asks for a round now, e.g. right after a transaction that enqueued a message committed."""
        self._wake.set()

    async def send_due(self, limit: int = 50) -> int:
        """Claims up to `limit` due messages and delivers them; returns how many were marked sent.

        A database error while recording an outcome is raised: the messages of the batch still to go
        stay claimed until their claim runs out, and are then delivered by whoever claims them next.
        """
        _, sent = await self._send_batch(limit)
        return sent

    async def run(self, interval: float, *, limit: int = 50) -> None:
        """Sends in rounds forever: a round, then a wait for `wake()` or `interval` seconds.

        A round goes on while batches come back full. A failing round is logged, never fatal.
        """
        while True:
            await self.send_all_then_wait(interval, limit=limit)

    async def free_others_claims(self) -> int:
        """Releases the claims of every other sender on messages not yet sent or dead; returns how many."""
        t = self.table
        async with UnitOfWork(self.engine) as uow:
            result = await uow.conn.execute(
                update(t)
                .where(
                    t.c.sent_time.is_(None),
                    t.c.dead_time.is_(None),
                    t.c.claimed_by.is_not(None),
                    t.c.claimed_by != self.worker,
                )
                .values(claimed_by=None, claimed_until=None)
            )
            await uow.commit()
        freed = result.rowcount or 0
        if freed:
            log.info("outbox worker %s took over %d claimed messages of a stopped sender", self.worker, freed)
        return freed

    async def send_under_lease(self, epoch: int, interval: float, *, limit: int = 50) -> None:
        """`send_all_then_wait` for a job under a lease: at a new epoch, first the claims of the holder
        before are freed (it has stopped, or its lease would not have been taken)."""
        if self._epoch != epoch:
            await self.free_others_claims()
            self._epoch = epoch
        await self.send_all_then_wait(interval, limit=limit)

    async def send_all_then_wait(self, interval: float, *, limit: int = 50) -> None:
        """One round of `run`: everything due, then a wait for `wake()` or `interval` seconds. A job that
        runs under a lease repeats this, so that losing the lease stops it between two waits."""
        # Cleared before the round, so a wake during the round makes the next one start at once.
        self._wake.clear()
        try:
            while (await self._send_batch(limit))[0] >= limit:
                pass
        except Exception:
            log.exception("an outbox round of worker %s failed", self.worker)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=interval)

    async def _send_batch(self, limit: int) -> tuple[int, int]:
        """How many messages were claimed, and how many of them were marked sent."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        claimed = await self._claim(limit)
        sent = 0
        for item in claimed:
            if utc(self.clock()) >= item.claimed_until:
                # Earlier deliveries took the whole claim: another sender may have this one by now.
                log.info(
                    "outbox message %d (%s, %s) left for a later round: its claim ran out",
                    item.message.id,
                    item.message.kind,
                    item.message.delivery_key,
                )
                continue
            if await self._deliver(item.message):
                sent += 1
        await self._report_kinds_without_deliverer()
        return len(claimed), sent

    def _due(self, now: datetime) -> ColumnElement[bool]:
        t = self.table
        return and_(
            t.c.sent_time.is_(None),
            t.c.dead_time.is_(None),
            t.c.next_attempt_time <= now,
            t.c.kind.in_(sorted(self.deliverers)),
            or_(t.c.claimed_until.is_(None), t.c.claimed_until <= now),
        )

    async def _claim(self, limit: int) -> list[_Claimed]:
        if not self.deliverers:
            return []
        t = self.table
        now = utc(self.clock())
        until = now + self.claim
        due = self._due(now)
        async with UnitOfWork(self.engine) as uow:
            # Rows another sender is claiming right now are skipped, not waited for (SQLite renders no
            # FOR UPDATE: its write lock already makes claims take turns).
            ids = [
                int(i)
                for i in (
                    await uow.conn.execute(
                        select(t.c.id)
                        .where(due)
                        .order_by(t.c.next_attempt_time, t.c.id)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            ]
            if not ids:
                return []
            rows = (
                await uow.conn.execute(
                    update(t)
                    .where(t.c.id.in_(ids), due)
                    .values(claimed_by=self.worker, claimed_until=until)
                    .returning(
                        t.c.id,
                        t.c.kind,
                        t.c.delivery_key,
                        t.c.payload,
                        t.c.subject_ref,
                        t.c.attempts,
                        t.c.create_time,
                    )
                )
            ).all()
            await uow.commit()
        order = {message_id: index for index, message_id in enumerate(ids)}
        return [
            _Claimed(
                OutboxMessage(
                    id=int(r.id),
                    kind=r.kind,
                    delivery_key=r.delivery_key,
                    payload=bytes(r.payload),
                    subject_ref=r.subject_ref,
                    attempts=int(r.attempts),
                    create_time=utc(r.create_time),
                ),
                until,
            )
            for r in sorted(rows, key=lambda r: order[int(r.id)])
        ]

    async def _deliver(self, message: OutboxMessage) -> bool:
        """Delivers one claimed message and records the outcome; True when it was marked sent."""
        try:
            await self.deliverers[message.kind](message)
        except DeliveryFailed as failure:
            await self._mark_failed(message, failure, permanent=failure.permanent)
            return False
        except Exception as failure:
            await self._mark_failed(message, failure, permanent=False)
            return False
        return await self._mark(message, "sent", sent_time=utc(self.clock()), last_error="")

    async def _mark_failed(self, message: OutboxMessage, failure: Exception, *, permanent: bool) -> None:
        attempts = message.attempts + 1
        now = utc(self.clock())
        error = _describe(failure)
        if permanent or attempts >= self.max_attempts:
            if await self._mark(message, "dead", attempts=attempts, dead_time=now, last_error=error):
                log.warning(
                    "outbox message %d (%s, %s) is dead after %d attempts: %s",
                    message.id,
                    message.kind,
                    message.delivery_key,
                    attempts,
                    type(failure).__name__,
                )
            return
        retry_at = now + self.backoff(attempts)
        if await self._mark(
            message, "failed", attempts=attempts, next_attempt_time=retry_at, last_error=error
        ):
            log.info(
                "outbox message %d (%s, %s) not delivered (attempt %d): %s",
                message.id,
                message.kind,
                message.delivery_key,
                attempts,
                type(failure).__name__,
            )

    async def _mark(self, message: OutboxMessage, outcome: str, **values: Any) -> bool:
        """Records an outcome, fenced: only while this worker still holds the claim it delivered under."""
        t = self.table
        fence = and_(
            t.c.id == message.id,
            t.c.claimed_by == self.worker,
            t.c.sent_time.is_(None),
            t.c.dead_time.is_(None),
            # A failure recorded since (by a later claim of this same worker) moved attempts on.
            t.c.attempts == message.attempts,
        )
        async with UnitOfWork(self.engine) as uow:
            marked = (
                await uow.conn.execute(
                    update(t)
                    .where(fence)
                    .values(claimed_by=None, claimed_until=None, **values)
                    .returning(t.c.id)
                )
            ).first()
            await uow.commit()
        if marked is None:
            log.warning(
                "outbox message %d (%s, %s): outcome %s not recorded, its claim was taken over",
                message.id,
                message.kind,
                message.delivery_key,
                outcome,
            )
        return marked is not None

    async def _report_kinds_without_deliverer(self) -> None:
        t = self.table
        now = utc(self.clock())
        known = set(self.deliverers) | self._kinds_reported
        async with UnitOfWork(self.engine, write=False) as uow:
            while True:
                row = (
                    await uow.conn.execute(
                        select(t.c.id, t.c.kind)
                        .where(
                            t.c.sent_time.is_(None),
                            t.c.dead_time.is_(None),
                            t.c.next_attempt_time <= now,
                            t.c.kind.not_in(sorted(known)),
                        )
                        .limit(1)
                    )
                ).first()
                if row is None:
                    return
                log.warning(
                    "outbox messages of kind %r wait (message %d among them): worker %s has no deliverer"
                    " for that kind",
                    row.kind,
                    row.id,
                    self.worker,
                )
                self._kinds_reported.add(row.kind)
                known.add(row.kind)


# ---------------------------------------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEntry:
    """A message as operators see it: everything but the payload."""

    id: int
    kind: str
    delivery_key: str
    subject_ref: str
    attempts: int
    last_error: str
    create_time: datetime
    next_attempt_time: datetime
    sent_time: datetime | None
    dead_time: datetime | None
    state: State


def _in_state(table: Table, state: State) -> ColumnElement[bool]:
    if state == "sent":
        return table.c.sent_time.is_not(None)
    if state == "dead":
        return and_(table.c.dead_time.is_not(None), table.c.sent_time.is_(None))
    if state == "pending":
        return and_(table.c.sent_time.is_(None), table.c.dead_time.is_(None))
    raise ValueError(f"unknown outbox state {state!r}")


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def _entry_columns(t: Table) -> list[Any]:
    return [
        t.c.id,
        t.c.kind,
        t.c.delivery_key,
        t.c.subject_ref,
        t.c.attempts,
        t.c.last_error,
        t.c.create_time,
        t.c.next_attempt_time,
        t.c.sent_time,
        t.c.dead_time,
    ]


def _entry(r: Any, state: State) -> OutboxEntry:
    return OutboxEntry(
        id=int(r.id),
        kind=r.kind,
        delivery_key=r.delivery_key,
        subject_ref=r.subject_ref,
        attempts=int(r.attempts),
        last_error=r.last_error,
        create_time=utc(r.create_time),
        next_attempt_time=utc(r.next_attempt_time),
        sent_time=_aware(r.sent_time),
        dead_time=_aware(r.dead_time),
        state=state,
    )


async def list_messages(
    conn: AsyncConnection, table: Table, *, state: State, after_id: int | None = None, limit: int = 50
) -> list[OutboxEntry]:
    """The messages in `state`, oldest first; page on with the last id as `after_id`."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query = select(*_entry_columns(table)).where(_in_state(table, state))
    if after_id is not None:
        query = query.where(table.c.id > after_id)
    rows = await conn.execute(query.order_by(table.c.id).limit(limit))
    return [_entry(r, state) for r in rows]


async def get_message(conn: AsyncConnection, table: Table, message_id: int) -> OutboxEntry | None:
    """One message as operators see it, or None."""
    row = (await conn.execute(select(*_entry_columns(table)).where(table.c.id == message_id))).first()
    if row is None:
        return None
    state: State = "sent" if row.sent_time is not None else "dead" if row.dead_time is not None else "pending"
    return _entry(row, state)


async def retry_dead(conn: AsyncConnection, table: Table, message_id: int, *, now: datetime) -> bool:
    """Makes a dead message pending again, with no attempts and due at once; False when it is not dead.

    Runs in the caller's transaction. The last error stays until the next attempt replaces it.
    """
    t = table
    revived = (
        await conn.execute(
            update(t)
            .where(t.c.id == message_id, t.c.dead_time.is_not(None), t.c.sent_time.is_(None))
            .values(
                dead_time=None,
                attempts=0,
                next_attempt_time=utc(now),
                claimed_by=None,
                claimed_until=None,
            )
            .returning(t.c.id)
        )
    ).first()
    return revived is not None


async def counts(conn: AsyncConnection, table: Table) -> dict[State, int]:
    """How many messages are in each state (every state present, zero included)."""
    t = table
    state = case(
        (t.c.sent_time.is_not(None), "sent"),
        (t.c.dead_time.is_not(None), "dead"),
        else_="pending",
    ).label("state")
    found: dict[State, int] = dict.fromkeys(STATES, 0)
    for row in await conn.execute(select(state, func.count()).group_by(state)):
        found[row[0]] = int(row[1])
    return found
