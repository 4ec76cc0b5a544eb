"""The mirror's repository and unit of work: records stored and read in the mirror's canonical form, sources'
bookmarks, the quarantine, held sweeps and agreements, as domain types."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    null,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import BindParameter

from services.common.db import DriverStatement, Fence, Idempotency, UnitOfWork, utc
from services.mirror.model.overview import Agreement, Section
from services.mirror.model.records import InvoiceRecord, PersonRecord, canonical, content_hash
from services.mirror.store.tables import (
    agreements,
    held_sweeps,
    invoices,
    leases,
    person_records,
    quarantine,
    sources,
)

# Rows per statement when many are written or removed at once.
_CHUNK = 500


@dataclass(frozen=True)
class SourceRow:
    name: str
    kind: str
    district_id: str
    synced_through: datetime | None
    bookmark_id: str
    last_success_time: datetime | None
    last_attempt_time: datetime | None
    state: str
    circuit: str
    last_error: str
    last_reconciliation_time: datetime | None
    full_sync_done: bool


@dataclass(frozen=True)
class StoredPerson:
    source: str
    district_id: str
    text: str


@dataclass(frozen=True)
class Quarantined:
    source: str
    record_id: str
    reason: str
    payload_hash: str
    first_seen_time: datetime
    last_seen_time: datetime
    attempts: int


@dataclass(frozen=True)
class HeldSweep:
    sweep_id: int
    source: str
    create_time: datetime
    listed: int
    held: int
    record_ids: tuple[str, ...]
    state: str


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def _source_row(r: Any) -> SourceRow:
    return SourceRow(
        name=r.name,
        kind=r.kind,
        district_id=r.district_id,
        synced_through=_aware(r.synced_through),
        bookmark_id=r.bookmark_id,
        last_success_time=_aware(r.last_success_time),
        last_attempt_time=_aware(r.last_attempt_time),
        state=r.state,
        circuit=r.circuit,
        last_error=r.last_error,
        last_reconciliation_time=_aware(r.last_reconciliation_time),
        full_sync_done=bool(r.full_sync_done),
    )


def _person_read(with_invoices: bool) -> DriverStatement:
    """A person's records and (when asked) invoices in one round trip: the records first, then the
    invoices newest due date first, as `people` and `invoices_of` read them."""
    person: BindParameter[str] = bindparam("person")
    records = select(
        literal_column("0").label("kind"),
        person_records.c.source,
        person_records.c.district_id,
        person_records.c.data,
        null().label("due_date"),
        null().label("invoice_number"),
    ).where(person_records.c.person_number == person)
    if not with_invoices:
        return DriverStatement(records)
    bills = select(
        literal_column("1").label("kind"),
        invoices.c.source,
        literal_column("''").label("district_id"),
        invoices.c.data,
        invoices.c.due_date,
        invoices.c.invoice_number,
    ).where(invoices.c.person_number == person)
    both = union_all(records, bills).subquery()
    return DriverStatement(
        select(both.c.kind, both.c.source, both.c.district_id, both.c.data).order_by(
            both.c.kind, both.c.due_date.desc(), both.c.invoice_number.desc()
        )
    )


# Compiled once: the overview's read, the hottest statement of the mirror.
_PERSON_READ = {with_invoices: _person_read(with_invoices) for with_invoices in (False, True)}


def _writing_only_changes(statement: Any, table: Any) -> Any:
    """An INSERT of records that updates those already stored, but only where the content changed, and
    returns the ids it wrote."""
    keys = [c.name for c in table.primary_key.columns]
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
        where=table.c.content_hash != statement.excluded.content_hash,
    ).returning(table.c.record_id)


def _arrays_upsert(table: Any) -> Any:
    """PostgreSQL: a page of records as one INSERT of arrays (unnest), one array a column. SQLAlchemy's
    executemany bound and rendered each row's values in Python, a third of the time of a full sync."""
    arrays = [bindparam(f"all_{c.name}", type_=postgresql.ARRAY(c.type)) for c in table.columns]
    rows: Any = select(literal_column("*")).select_from(func.unnest(*arrays))
    return _writing_only_changes(
        postgresql.insert(table).from_select([c.name for c in table.columns], rows), table
    )


_RECORD_TABLES = (person_records, invoices)
_ARRAYS_UPSERT = {table.name: _arrays_upsert(table) for table in _RECORD_TABLES}
_ROWS_UPSERT = {table.name: _writing_only_changes(sqlite.insert(table), table) for table in _RECORD_TABLES}
# Rows in one statement of arrays.
_ARRAYS_CHUNK = 5000


class MirrorRepository:
    def __init__(self, conn: AsyncConnection):
        self.conn = conn

    # ---- sources ----

    async def sources(self) -> list[SourceRow]:
        rows = await self.conn.execute(select(sources).order_by(sources.c.name))
        return [_source_row(r) for r in rows]

    async def source(self, name: str) -> SourceRow:
        """One source's row (which `ensure_sources` made)."""
        row = (await self.conn.execute(select(sources).where(sources.c.name == name))).one()
        return _source_row(row)

    async def ensure_sources(self, known: Iterable[tuple[str, str, str]]) -> None:
        """Adds a row for each configured (name, kind, district) source not yet known."""
        present = {r.name for r in await self.conn.execute(select(sources.c.name))}
        missing = [
            {"name": name, "kind": kind, "district_id": district}
            for name, kind, district in known
            if name not in present
        ]
        if missing:
            # Every source's sync job ensures the rows as it starts, at once on a fresh database: a row
            # another job inserted meanwhile is already what this one would insert.
            build = postgresql.insert if self.conn.dialect.name == "postgresql" else sqlite.insert
            await self.conn.execute(build(sources).on_conflict_do_nothing(), missing)

    async def set_bookmark(self, name: str, through: datetime, record_id: str) -> None:
        await self.conn.execute(
            update(sources)
            .where(sources.c.name == name)
            .values(synced_through=through, bookmark_id=record_id)
        )

    async def record_outcome(self, name: str, **values: Any) -> None:
        """The state, circuit, last error and times of the last attempt."""
        if "last_error" in values:
            values["last_error"] = str(values["last_error"])[:300]
        await self.conn.execute(update(sources).where(sources.c.name == name).values(**values))

    # ---- records ----

    async def store_people(
        self, source: str, district_id: str, records: Sequence[PersonRecord], now: datetime
    ) -> int:
        """Inserts or updates records; returns how many were new or changed."""
        rows = []
        for record in records:
            text = canonical(record)
            rows.append(
                {
                    "source": source,
                    "record_id": record.record_id,
                    "person_number": record.person_number,
                    "district_id": district_id,
                    "updated_at": record.updated_at,
                    "data": text,
                    "content_hash": content_hash(text),
                    "synced_at": now,
                }
            )
        return await self._store(person_records, rows)

    async def store_invoices(self, source: str, records: Sequence[InvoiceRecord], now: datetime) -> int:
        rows = []
        for record in records:
            text = canonical(record)
            rows.append(
                {
                    "source": source,
                    "record_id": record.record_id,
                    "person_number": record.person_number,
                    "invoice_number": record.invoice_number,
                    "ocr": record.ocr,
                    "due_date": record.due_date,
                    "updated_at": record.updated_at,
                    "data": text,
                    "content_hash": content_hash(text),
                    "synced_at": now,
                }
            )
        return await self._store(invoices, rows)

    async def _store(self, table: Any, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        # The same record twice in one page (a tie re-read) must not make a statement update one row twice.
        unique = list({row["record_id"]: row for row in rows}.values())
        if self.conn.dialect.name == "postgresql":
            statement = _ARRAYS_UPSERT[table.name]
            names = [c.name for c in table.columns]
            chunks: list[Any] = [
                {f"all_{n}": [row[n] for row in unique[start : start + _ARRAYS_CHUNK]] for n in names}
                for start in range(0, len(unique), _ARRAYS_CHUNK)
            ]
        else:
            statement = _ROWS_UPSERT[table.name]
            chunks = [unique[start : start + _CHUNK] for start in range(0, len(unique), _CHUNK)]
        changed = 0
        for chunk in chunks:
            changed += len((await self.conn.execute(statement, chunk)).all())
        return changed

    async def remove(self, source: str, record_ids: Sequence[str]) -> int:
        table = invoices if source == "agresso" else person_records
        removed = 0
        for start in range(0, len(record_ids), _CHUNK):
            chunk = list(record_ids[start : start + _CHUNK])
            result = await self.conn.execute(
                delete(table).where(and_(table.c.source == source, table.c.record_id.in_(chunk)))
            )
            removed += result.rowcount or 0
        return removed

    async def remove_person_except(self, source: str, person_number: str, keep: Sequence[str]) -> int:
        """Removes a person's records of a source that the source no longer has (found by a refresh)."""
        table = invoices if source == "agresso" else person_records
        condition = and_(table.c.source == source, table.c.person_number == person_number)
        if keep:
            condition = and_(condition, table.c.record_id.not_in(list(keep)))
        result = await self.conn.execute(delete(table).where(condition))
        return result.rowcount or 0

    async def record_ids(self, source: str) -> set[str]:
        table = invoices if source == "agresso" else person_records
        rows = await self.conn.execute(select(table.c.record_id).where(table.c.source == source))
        return {r.record_id for r in rows}

    async def record_ids_before(self, source: str, moment: datetime) -> set[str]:
        """The ids of a source's records the mirror stored (or last changed) before `moment`."""
        table = invoices if source == "agresso" else person_records
        rows = await self.conn.execute(
            select(table.c.record_id).where(and_(table.c.source == source, table.c.synced_at < moment))
        )
        return {r.record_id for r in rows}

    async def count_records(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for table in (person_records, invoices):
            for row in await self.conn.execute(select(table.c.source, func.count()).group_by(table.c.source)):
                found[row[0]] = int(row[1])
        return found

    async def people(self, person_number: str) -> list[StoredPerson]:
        rows = await self.conn.execute(
            select(person_records.c.source, person_records.c.district_id, person_records.c.data).where(
                person_records.c.person_number == person_number
            )
        )
        return [StoredPerson(r.source, r.district_id, r.data) for r in rows]

    async def person(
        self, person_number: str, *, with_invoices: bool
    ) -> tuple[list[StoredPerson], list[str]]:
        """`people` and, when asked, `invoices_of`: on PostgreSQL in one statement, compiled once and run
        on the driver's connection (SQLAlchemy's own execute cost more than the round trip)."""
        if self.conn.dialect.name != "postgresql":
            stored = await self.people(person_number)
            return stored, await self.invoices_of(person_number) if with_invoices else []
        rows = await _PERSON_READ[with_invoices].fetch(self.conn, {"person": person_number})
        people = [StoredPerson(r[1], r[2], r[3]) for r in rows if r[0] == 0]
        return people, [r[3] for r in rows if r[0] == 1]

    async def invoices_of(self, person_number: str) -> list[str]:
        rows = await self.conn.execute(
            select(invoices.c.data)
            .where(invoices.c.person_number == person_number)
            .order_by(invoices.c.due_date.desc(), invoices.c.invoice_number.desc())
        )
        return [r.data for r in rows]

    async def invoice_by(self, *, invoice_number: str | None = None, ocr: str | None = None) -> str | None:
        where = invoices.c.invoice_number == invoice_number if invoice_number else invoices.c.ocr == ocr
        row = (await self.conn.execute(select(invoices.c.data).where(where).limit(1))).first()
        return None if row is None else str(row.data)

    # ---- quarantine ----

    async def quarantine(
        self, source: str, record_id: str, reason: str, payload_hash: str, now: datetime
    ) -> None:
        existing = (
            await self.conn.execute(
                select(quarantine.c.attempts).where(
                    and_(quarantine.c.source == source, quarantine.c.record_id == record_id)
                )
            )
        ).first()
        if existing is None:
            await self.conn.execute(
                insert(quarantine).values(
                    source=source,
                    record_id=record_id,
                    reason=reason[:300],
                    payload_hash=payload_hash,
                    first_seen_time=now,
                    last_seen_time=now,
                    attempts=1,
                )
            )
        else:
            await self.conn.execute(
                update(quarantine)
                .where(and_(quarantine.c.source == source, quarantine.c.record_id == record_id))
                .values(
                    reason=reason[:300],
                    payload_hash=payload_hash,
                    last_seen_time=now,
                    attempts=existing.attempts + 1,
                )
            )

    async def release(self, source: str, record_ids: Iterable[str]) -> None:
        ids = list(record_ids)
        for start in range(0, len(ids), _CHUNK):
            await self.conn.execute(
                delete(quarantine).where(
                    and_(
                        quarantine.c.source == source, quarantine.c.record_id.in_(ids[start : start + _CHUNK])
                    )
                )
            )

    async def quarantined(
        self, *, source: str | None, after: tuple[str, str] | None, limit: int
    ) -> list[Quarantined]:
        query = select(quarantine)
        if source:
            query = query.where(quarantine.c.source == source)
        if after is not None:
            query = query.where(tuple_(quarantine.c.source, quarantine.c.record_id) > tuple_(*after))
        rows = await self.conn.execute(
            query.order_by(quarantine.c.source, quarantine.c.record_id).limit(limit)
        )
        return [
            Quarantined(
                r.source,
                r.record_id,
                r.reason,
                r.payload_hash,
                utc(r.first_seen_time),
                utc(r.last_seen_time),
                r.attempts,
            )
            for r in rows
        ]

    async def quarantined_counts(self) -> dict[str, int]:
        rows = await self.conn.execute(
            select(quarantine.c.source, func.count()).group_by(quarantine.c.source)
        )
        return {r[0]: int(r[1]) for r in rows}

    async def get_quarantined(self, source: str, record_id: str) -> Quarantined | None:
        row = (
            await self.conn.execute(
                select(quarantine).where(
                    and_(quarantine.c.source == source, quarantine.c.record_id == record_id)
                )
            )
        ).first()
        if row is None:
            return None
        return Quarantined(
            row.source,
            row.record_id,
            row.reason,
            row.payload_hash,
            utc(row.first_seen_time),
            utc(row.last_seen_time),
            row.attempts,
        )

    # ---- held sweeps ----

    async def hold_sweep(self, source: str, listed: int, record_ids: Sequence[str], now: datetime) -> int:
        result = await self.conn.execute(
            insert(held_sweeps)
            .values(
                source=source,
                create_time=now,
                listed=listed,
                held=len(record_ids),
                record_ids=json.dumps(sorted(record_ids)),
                state="held",
            )
            .returning(held_sweeps.c.id)
        )
        return int(result.scalar_one())

    async def held_sweeps(self, source: str | None = None) -> list[HeldSweep]:
        query = select(held_sweeps).where(held_sweeps.c.state == "held")
        if source:
            query = query.where(held_sweeps.c.source == source)
        rows = await self.conn.execute(query.order_by(held_sweeps.c.id))
        return [
            HeldSweep(
                r.id, r.source, utc(r.create_time), r.listed, r.held, tuple(json.loads(r.record_ids)), r.state
            )
            for r in rows
        ]

    async def resolve_sweep(self, sweep_id: int, *, state: str, by: str, now: datetime) -> bool:
        result = await self.conn.execute(
            update(held_sweeps)
            .where(and_(held_sweeps.c.id == sweep_id, held_sweeps.c.state == "held"))
            .values(state=state, resolved_by=by, resolve_time=now)
        )
        return (result.rowcount or 0) == 1

    # ---- leases ----

    async def lease_holders(self, prefix: str, now: datetime) -> dict[str, str]:
        """The holder of each lease whose name starts with `prefix` and has not run out."""
        rows = await self.conn.execute(
            select(leases.c.name, leases.c.holder, leases.c.expire_time).where(
                leases.c.name.startswith(prefix)
            )
        )
        return {r.name.removeprefix(prefix): r.holder for r in rows if utc(r.expire_time) > now}

    # ---- agreements ----

    async def agreements(self) -> list[Agreement]:
        rows = await self.conn.execute(select(agreements).order_by(agreements.c.district_id))
        return [
            Agreement(
                district_id=r.district_id,
                reference=r.reference,
                valid_from=r.valid_from,
                valid_to=r.valid_to,
                sections=frozenset(Section(s) for s in r.sections.split(",") if s),
                withheld_fields=frozenset(f for f in r.withheld_fields.split(",") if f),
            )
            for r in rows
        ]

    async def save_agreement(self, agreement: Agreement) -> None:
        values = {
            "reference": agreement.reference,
            "valid_from": agreement.valid_from,
            "valid_to": agreement.valid_to,
            "sections": ",".join(sorted(s.value for s in agreement.sections)),
            "withheld_fields": ",".join(sorted(agreement.withheld_fields)),
        }
        result = await self.conn.execute(
            update(agreements).where(agreements.c.district_id == agreement.district_id).values(**values)
        )
        if not result.rowcount:
            await self.conn.execute(insert(agreements).values(district_id=agreement.district_id, **values))


class MirrorUnitOfWork(UnitOfWork):
    mirror: MirrorRepository

    def bind(self, conn: AsyncConnection) -> None:
        self.mirror = MirrorRepository(conn)


def unit_of_work_factory(engine: AsyncEngine) -> Callable[..., MirrorUnitOfWork]:
    def make(
        *, write: bool = True, idempotency: Idempotency | None = None, fence: Fence | None = None
    ) -> MirrorUnitOfWork:
        return MirrorUnitOfWork(engine, write=write, idempotency=idempotency, fence=fence)

    return make
