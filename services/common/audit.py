"""The access log: an append-only, hash-chained record of every read of a person's data.

Each entry carries a sequence number and the hash of the entry before it, and its own hash covers
both and every field, so changing, removing, reordering or inserting an entry breaks the chain at
that point. A one-row head table holds the last sequence number and hash; appenders go through it,
which serialises them on both databases, and it lets `verify_chain` notice entries cut off the end.

Entries are written in the caller's transaction, so a read that is rolled back leaves no entry and
an entry cannot be lost while the read it records commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring as _json_string
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.common.db import utc
from services.common.errors import InvalidArgument

__all__ = [
    "GENESIS_HASH",
    "MAX_LIST_LIMIT",
    "AccessEntry",
    "AccessLogTables",
    "AccessRecord",
    "ChainReport",
    "ChainTip",
    "access_log_tables",
    "append_at_tip",
    "chain_rows",
    "chain_tip",
    "list_access",
    "record_access",
    "record_accesses",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
# A page of at most 1,000 entries and one more to know whether another page follows, with room to spare.
MAX_LIST_LIMIT = 5000

_HEAD_ID = 1
_VERIFY_BATCH = 5000
_LENGTHS = {"actor": 255, "actor_role": 64, "action": 128, "purpose": 255, "service": 64}


@dataclass(frozen=True)
class AccessLogTables:
    access_log: Table
    access_log_head: Table


def access_log_tables(metadata: MetaData) -> AccessLogTables:
    """Adds the access log's tables to a service's metadata (once; a second call returns the same tables)."""
    if "access_log" in metadata.tables:
        return AccessLogTables(metadata.tables["access_log"], metadata.tables["access_log_head"])
    access_log = Table(
        "access_log",
        metadata,
        # SQLite autoincrements only a column declared exactly INTEGER PRIMARY KEY.
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("seq", Integer, nullable=False, unique=True),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("actor", String(_LENGTHS["actor"]), nullable=False),
        Column("actor_role", String(_LENGTHS["actor_role"]), nullable=False),
        Column("person_number", String(12), nullable=False),
        Column("action", String(_LENGTHS["action"]), nullable=False),
        Column("purpose", String(_LENGTHS["purpose"]), nullable=False),
        Column("service", String(_LENGTHS["service"]), nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        # A person's entries are listed in chain order, so the index carries seq as well.
        Index("ix_access_log_person_number_seq", "person_number", "seq"),
    )
    access_log_head = Table(
        "access_log_head",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("seq", Integer, nullable=False),
        Column("last_hash", String(64), nullable=False),
    )
    return AccessLogTables(access_log, access_log_head)


@dataclass(frozen=True)
class AccessRecord:
    """One read of a person's data: who (and in what role) read whose data, what, why and when.

    A record that could not be stored is refused when it is made, with InvalidArgument naming the
    field, so that it cannot fail later in a batch together with the records of other reads.
    """

    actor: str
    actor_role: str
    person_number: str
    action: str
    purpose: str
    occurred_at: datetime

    def __post_init__(self) -> None:
        _check_person_number(self.person_number)
        for field in ("actor", "actor_role", "action", "purpose"):
            _check_text(field, getattr(self, field))
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise InvalidArgument.field("occurred_at", "must carry a time zone")


@dataclass(frozen=True)
class AccessEntry:
    """An entry as stored, for auditors and for a citizen asking who has read their data."""

    seq: int
    occurred_at: datetime
    actor: str
    actor_role: str
    person_number: str
    action: str
    purpose: str
    service: str


@dataclass
class ChainReport:
    """The outcome of `verify_chain`.

    `entries` counts the entries found intact before the first problem (all of them when `ok`);
    `first_bad_seq` is the sequence number where the chain first breaks.
    """

    ok: bool
    entries: int
    first_bad_seq: int | None
    problem: str | None


async def record_access(
    conn: AsyncConnection, tables: AccessLogTables, record: AccessRecord, *, service: str
) -> int:
    """Appends one entry in the caller's transaction and returns its sequence number."""
    return (await _append(conn, tables, [record], service=service))[0]


async def record_accesses(
    conn: AsyncConnection, tables: AccessLogTables, records: Sequence[AccessRecord], *, service: str
) -> None:
    """Appends several entries in the caller's transaction, moving the head once for all of them."""
    await _append(conn, tables, records, service=service)


async def _append(
    conn: AsyncConnection, tables: AccessLogTables, records: Sequence[AccessRecord], *, service: str
) -> list[int]:
    if not records:
        return []
    _check_text("service", service)
    head = tables.access_log_head
    # Moving the head first takes its row lock (PostgreSQL) or the database's write lock (SQLite)
    # before the previous hash is read, so two appenders can never both chain onto the same entry.
    advance = (
        update(head)
        .where(head.c.id == _HEAD_ID)
        .values(seq=head.c.seq + len(records))
        .returning(head.c.seq, head.c.last_hash)
    )
    moved = (await conn.execute(advance)).one_or_none()
    if moved is None:
        await _create_head(conn, tables)
        moved = (await conn.execute(advance)).one()
    last_seq, prev_hash = int(moved.seq), str(moved.last_hash)

    rows, prev_hash = chain_rows(
        records, service=service, after_seq=last_seq - len(records), prev_hash=prev_hash
    )

    await conn.execute(update(head).where(head.c.id == _HEAD_ID).values(last_hash=prev_hash))
    await conn.execute(insert(tables.access_log), rows)
    return [row["seq"] for row in rows]


def chain_rows(
    records: Sequence[AccessRecord], *, service: str, after_seq: int, prev_hash: str
) -> tuple[list[dict[str, Any]], str]:
    """The rows that chain `records` onto the entry (after_seq, prev_hash), and the hash of the last one."""
    rows: list[dict[str, Any]] = []
    seq = after_seq
    for record in records:
        seq += 1
        fields = {
            "occurred_at": utc(record.occurred_at),
            "actor": record.actor,
            "actor_role": record.actor_role,
            "person_number": record.person_number,
            "action": record.action,
            "purpose": record.purpose,
            "service": service,
        }
        entry_hash = _entry_hash(seq, prev_hash, fields)
        rows.append({"seq": seq, **fields, "prev_hash": prev_hash, "hash": entry_hash})
        prev_hash = entry_hash
    return rows, prev_hash


@dataclass(frozen=True)
class ChainTip:
    """The last entry of the chain, as a writer last saw it."""

    seq: int
    hash: str


async def chain_tip(conn: AsyncConnection, tables: AccessLogTables) -> ChainTip | None:
    head = tables.access_log_head
    row = (await conn.execute(select(head.c.seq, head.c.last_hash).where(head.c.id == _HEAD_ID))).first()
    return ChainTip(int(row.seq), str(row.last_hash)) if row else None


# One statement, one round trip: the head moves only if it is still where this writer left it, and the
# entries are inserted only if it moved. Data-modifying CTEs always run to completion in PostgreSQL.
_PG_APPEND_AT_TIP = """
WITH moved AS (
    UPDATE access_log_head SET seq = $1, last_hash = $2 WHERE id = 1 AND seq = $3 AND last_hash = $4
    RETURNING 1
)
INSERT INTO access_log
    (seq, occurred_at, actor, actor_role, person_number, action, purpose, service, prev_hash, hash)
SELECT * FROM unnest(
    $5::integer[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
    $12::text[], $13::text[], $14::text[]
)
WHERE EXISTS (SELECT 1 FROM moved)
"""
_COLUMNS = (
    "seq",
    "occurred_at",
    "actor",
    "actor_role",
    "person_number",
    "action",
    "purpose",
    "service",
    "prev_hash",
    "hash",
)


async def append_at_tip(
    driver_connection: Any, records: Sequence[AccessRecord], *, service: str, tip: ChainTip
) -> ChainTip | None:
    """Appends in one round trip on an asyncpg connection outside any transaction, provided the chain
    still ends at `tip`; returns the new tip, or None (nothing written) when another writer moved it."""
    _check_text("service", service)
    rows, last_hash = chain_rows(records, service=service, after_seq=tip.seq, prev_hash=tip.hash)
    new_seq = tip.seq + len(rows)
    status = await driver_connection.execute(
        _PG_APPEND_AT_TIP,
        new_seq,
        last_hash,
        tip.seq,
        tip.hash,
        *([row[c] for row in rows] for c in _COLUMNS),
    )
    inserted = int(str(status).rsplit(" ", 1)[-1])
    return ChainTip(new_seq, last_hash) if inserted == len(rows) else None


async def tip_now(driver_connection: Any) -> ChainTip | None:
    """Where the chain ends now, read on an asyncpg connection (None before its first entry)."""
    row = await driver_connection.fetchrow(
        "SELECT seq, last_hash FROM access_log_head WHERE id = $1", _HEAD_ID
    )
    return None if row is None else ChainTip(int(row["seq"]), str(row["last_hash"]))


async def _create_head(conn: AsyncConnection, tables: AccessLogTables) -> None:
    """Inserts the head row unless a concurrent appender already did.

    A plain INSERT that loses the race would abort the caller's whole transaction on PostgreSQL, so
    the conflict is ignored by the database itself (or, elsewhere, confined to a savepoint).
    """
    values = {"id": _HEAD_ID, "seq": 0, "last_hash": GENESIS_HASH}
    head = tables.access_log_head
    dialect = conn.dialect.name
    if dialect == "postgresql":
        await conn.execute(postgresql.insert(head).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        await conn.execute(sqlite.insert(head).values(values).on_conflict_do_nothing())
    else:
        try:
            async with conn.begin_nested():
                await conn.execute(insert(head).values(values))
        except IntegrityError:
            pass


async def verify_chain(conn: AsyncConnection, tables: AccessLogTables) -> ChainReport:
    """Walks the whole chain in order, a batch at a time, and reports the first break.

    The head is read first and only entries up to its sequence number are checked, so entries that
    concurrent appenders commit during the walk do not count as a mismatch.
    """
    head = tables.access_log_head
    head_row = (
        await conn.execute(select(head.c.seq, head.c.last_hash).where(head.c.id == _HEAD_ID))
    ).one_or_none()
    head_seq_query = select(head.c.seq).where(head.c.id == _HEAD_ID)
    head_seq = 0 if head_row is None else int(head_row.seq)
    head_hash = GENESIS_HASH if head_row is None else str(head_row.last_hash)

    log = tables.access_log
    expected_seq = 1
    prev_hash = GENESIS_HASH
    while True:
        # The first batch has no lower bound, so an entry slipped in before the first one shows up too.
        window = log.c.seq <= head_seq if expected_seq == 1 else log.c.seq.between(expected_seq, head_seq)
        batch = (await conn.execute(select(log).where(window).order_by(log.c.seq).limit(_VERIFY_BATCH))).all()
        for row in batch:
            intact = expected_seq - 1
            if row.seq < expected_seq:
                return _broken(intact, row.seq, f"entry {row.seq} is out of sequence")
            if row.seq > expected_seq:
                return _broken(intact, expected_seq, f"entry {expected_seq} is missing")
            if row.prev_hash != prev_hash:
                return _broken(intact, row.seq, f"entry {row.seq} does not follow the entry before it")
            if _entry_hash(row.seq, row.prev_hash, _stored_fields(row)) != row.hash:
                return _broken(intact, row.seq, f"entry {row.seq} was changed after it was written")
            prev_hash = row.hash
            expected_seq += 1
        if len(batch) < _VERIFY_BATCH:
            break

    entries = expected_seq - 1
    if entries < head_seq:
        return _broken(entries, entries + 1, f"entries {entries + 1} to {head_seq} are missing")
    if prev_hash != head_hash:
        if entries == 0:
            return _broken(0, 1, "the head does not match the empty log")
        return _broken(entries - 1, entries, f"the head does not match entry {entries}")
    # An entry past the head is legitimate only if its appender has committed the head with it;
    # reading the entries before the head again makes that visible.
    last_seq = (await conn.execute(select(func.max(log.c.seq)))).scalar_one_or_none()
    if last_seq is not None and last_seq > head_seq:
        head_seq_now = (await conn.execute(head_seq_query)).scalar_one_or_none() or 0
        if last_seq > head_seq_now:
            return _broken(
                entries, head_seq_now + 1, f"entries {head_seq_now + 1} to {last_seq} lie beyond the head"
            )
    return ChainReport(ok=True, entries=entries, first_bad_seq=None, problem=None)


async def list_access(
    conn: AsyncConnection,
    tables: AccessLogTables,
    *,
    person_number: str,
    limit: int,
    before_seq: int | None,
) -> list[AccessEntry]:
    """A person's entries, newest first, continuing before `before_seq` when given."""
    _check_person_number(person_number)
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
    log = tables.access_log
    query = select(log).where(log.c.person_number == person_number)
    if before_seq is not None:
        query = query.where(log.c.seq < before_seq)
    rows = (await conn.execute(query.order_by(log.c.seq.desc()).limit(limit))).all()
    return [
        AccessEntry(
            seq=row.seq,
            occurred_at=utc(row.occurred_at),
            actor=row.actor,
            actor_role=row.actor_role,
            person_number=row.person_number,
            action=row.action,
            purpose=row.purpose,
            service=row.service,
        )
        for row in rows
    ]


# The canonical form of an entry is JSON with sorted keys, fixed separators and no ASCII escaping, which
# encodes every value unambiguously: no field's text can be read as part of another's. It is written out
# here rather than by json.dumps, which would build and sort a dict for every entry; a test holds the two
# to the same bytes.
_CANONICAL = (
    '{"action":%s,"actor":%s,"actor_role":%s,"occurred_at":%s,"person_number":%s,'
    '"prev_hash":%s,"purpose":%s,"seq":%d,"service":%s}'
)


def _entry_hash(seq: int, prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = _CANONICAL % (
        _json_string(fields["action"]),
        _json_string(fields["actor"]),
        _json_string(fields["actor_role"]),
        _json_string(utc(fields["occurred_at"]).isoformat(timespec="microseconds")),
        _json_string(fields["person_number"]),
        _json_string(prev_hash),
        _json_string(fields["purpose"]),
        seq,
        _json_string(fields["service"]),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _stored_fields(row: Row[Any]) -> dict[str, Any]:
    return {
        "occurred_at": row.occurred_at,
        "actor": row.actor,
        "actor_role": row.actor_role,
        "person_number": row.person_number,
        "action": row.action,
        "purpose": row.purpose,
        "service": row.service,
    }


def _broken(intact: int, seq: int, problem: str) -> ChainReport:
    return ChainReport(ok=False, entries=intact, first_bad_seq=seq, problem=problem)


def _check_person_number(person_number: str) -> None:
    if len(person_number) != 12 or not person_number.isascii() or not person_number.isdigit():
        raise InvalidArgument.field("person_number", "must be the 12-digit form YYYYMMDDNNNC")


def _check_text(field: str, value: str) -> None:
    if not value:
        raise InvalidArgument.field(field, "must not be empty")
    if len(value) > _LENGTHS[field]:
        raise InvalidArgument.field(field, f"must be at most {_LENGTHS[field]} characters")
