"""The case service's tables, repository and unit of work: the only module of the service with SQL."""

from __future__ import annotations

import functools
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import (
    case as sql_case,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter

from services.case.model import (
    AT_UNIT,
    Case,
    CaseStatus,
    Channel,
    Consent,
    ConsentGiver,
    Contact,
    ContactParty,
    Event,
    EventKind,
    FeedbackChannel,
    GrantScope,
    ReferenceItem,
    ReferenceKind,
)
from services.common.audit import AccessLogTables, access_log_tables
from services.common.business_calendar import to_local
from services.common.db import DriverStatement, Idempotency, UnitOfWork, connect, utc
from services.common.idempotency import IdempotencyStore, Replayed, add_idempotency_table

metadata = MetaData()
ID = BigInteger().with_variant(Integer, "sqlite")

reference_items = Table(
    "reference_items",
    metadata,
    Column("kind", String(20), primary_key=True),
    Column("item_id", String(63), primary_key=True),
    Column("label", String(200), nullable=False),
    Column("need_role", String(40), nullable=False, server_default=""),
    Column("position", Integer, nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
)

# The statuses of a case a unit holds, written out: a partial index on them is used only by a query that
# names the same values in its SQL, which bound parameters would hide from the planner.
_AT_UNIT_SQL = f"status IN ({', '.join(repr(status.value) for status in AT_UNIT)})"

cases = Table(
    "cases",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("category", String(63), nullable=False),
    Column("case_type", String(63), nullable=False),
    Column("case_class", String(63), nullable=False),
    Column("district_id", String(63)),
    Column("provider", String(200), nullable=False),
    Column("person_number", String(12), index=True),
    Column("acute", Boolean, nullable=False),
    Column("feedback_channel", String(20), nullable=False),
    Column("feedback_window", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("first_channel", String(20), nullable=False),
    Column("unit_id", String(63)),
    Column("officer_id", String(63)),
    Column("team", String(60), nullable=False),
    Column("deadline", DateTime(timezone=True)),
    Column("forward_time", DateTime(timezone=True)),
    Column("overdue", Boolean, nullable=False),
    Column("deadline_kept", Boolean),
    Column("escalation_emails", Text, nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("unit_mailbox", String(200), nullable=False),
    Column("resolution", Text, nullable=False),
    Column("resolved_at_first_contact", Boolean, nullable=False),
    Column("forwarded_ever", Boolean, nullable=False),
    Column("satisfaction", Integer),
    Column("contact_count", Integer, nullable=False),
    Column("resolve_minutes", Integer),
    Column("create_time", DateTime(timezone=True), nullable=False, index=True),
    # "YYYY-MM" in Europe/Stockholm, so monthly statistics group without time-zone arithmetic in SQL.
    Column("create_month", String(7), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    Column("close_time", DateTime(timezone=True)),
    Column("feedback_time", DateTime(timezone=True)),
    Column("revision", Integer, nullable=False),
    Index("ix_cases_unit_queue", "unit_id", "status", "deadline"),
    Index("ix_cases_open_deadline", "status", "overdue", "deadline"),
    # A unit's queue in page order, open cases only (migration 0002).
    Index(
        "ix_cases_unit_open_queue",
        "unit_id",
        "deadline",
        "id",
        postgresql_where=text(_AT_UNIT_SQL),
        sqlite_where=text(_AT_UNIT_SQL),
    ),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("case_id", ID, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("channel", String(20), nullable=False),
    Column("party", String(30), nullable=False),
    Column("contact_name", String(200), nullable=False),
    Column("contact_phone", String(40), nullable=False),
    Column("contact_email", String(200), nullable=False),
    Column("summary", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, index=True),
    Column("registered_by", String(255), nullable=False),
)

case_events = Table(
    "case_events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("case_id", ID, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(30), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("detail", Text, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("case_id", ID, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("given_by", String(20), nullable=False),
    Column("verification", String(200), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("recorded_by", String(255), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("revoke_time", DateTime(timezone=True)),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("kind", String(30), nullable=False),
    Column("case_id", ID, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("recipients", Text, nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("urgent", Boolean, nullable=False),
    # Fixed when the mail is queued, so a retry after an unknown outcome is recognisably the same mail.
    Column("message_id", String(200), nullable=False, unique=True),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("next_attempt_time", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("claimed_until", DateTime(timezone=True)),
    Column("sent_time", DateTime(timezone=True)),
    Column("last_error", String(500), nullable=False),
    Index("ix_outbox_due", "sent_time", "next_attempt_time"),
)

idempotency_keys = add_idempotency_table(metadata)
access_log: AccessLogTables = access_log_tables(metadata)


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def _now() -> datetime:
    return datetime.now(UTC)


def _case_values(case: Case) -> dict[str, Any]:
    assert case.create_time is not None
    assert case.update_time is not None
    return {
        "category": case.category,
        "case_type": case.case_type,
        "case_class": case.case_class,
        "district_id": case.district_id,
        "provider": case.provider,
        "person_number": case.person_number,
        "acute": case.acute,
        "feedback_channel": case.feedback_channel.value,
        "feedback_window": case.feedback_window,
        "status": case.status.value,
        "first_channel": case.first_channel.value,
        "unit_id": case.unit_id,
        "officer_id": case.officer_id,
        "team": case.team,
        "deadline": case.deadline,
        "forward_time": case.forward_time,
        "overdue": case.overdue,
        "deadline_kept": case.deadline_kept,
        "escalation_emails": ";".join(case.escalation_emails),
        "escalated": case.escalated,
        "unit_mailbox": case.unit_mailbox,
        "resolution": case.resolution,
        "resolved_at_first_contact": case.resolved_at_first_contact,
        "forwarded_ever": case.forwarded_ever,
        "satisfaction": case.satisfaction,
        "contact_count": case.contact_count,
        "resolve_minutes": case.resolve_minutes,
        "create_time": case.create_time,
        "create_month": f"{to_local(case.create_time):%Y-%m}",
        "update_time": case.update_time,
        "close_time": case.close_time,
        "feedback_time": case.feedback_time,
        "revision": case.revision,
    }


_CASE_COLUMNS = tuple(column.name for column in cases.columns)


def _case(row: Any, found_contacts: Sequence[Contact] = (), events: Sequence[Event] = ()) -> Case:
    """A case from a row of `select(cases)`.

    The row is read into a dict by position once: reading 35 attributes of a SQLAlchemy row by name
    costs several times more, and a page of a unit's queue maps fifty of them.
    """
    r = dict(zip(_CASE_COLUMNS, row, strict=True))
    return Case(
        case_id=r["id"],
        category=r["category"],
        case_type=r["case_type"],
        case_class=r["case_class"],
        district_id=r["district_id"],
        provider=r["provider"],
        person_number=r["person_number"],
        acute=r["acute"],
        feedback_channel=FeedbackChannel(r["feedback_channel"]),
        feedback_window=r["feedback_window"],
        status=CaseStatus(r["status"]),
        first_channel=Channel(r["first_channel"]),
        unit_id=r["unit_id"],
        officer_id=r["officer_id"],
        team=r["team"],
        deadline=_aware(r["deadline"]),
        forward_time=_aware(r["forward_time"]),
        overdue=r["overdue"],
        deadline_kept=r["deadline_kept"],
        escalation_emails=tuple(e for e in r["escalation_emails"].split(";") if e),
        escalated=r["escalated"],
        unit_mailbox=r["unit_mailbox"],
        resolution=r["resolution"],
        resolved_at_first_contact=r["resolved_at_first_contact"],
        forwarded_ever=r["forwarded_ever"],
        satisfaction=r["satisfaction"],
        contact_count=r["contact_count"],
        resolve_minutes=r["resolve_minutes"],
        create_time=_aware(r["create_time"]),
        update_time=_aware(r["update_time"]),
        close_time=_aware(r["close_time"]),
        feedback_time=_aware(r["feedback_time"]),
        revision=r["revision"],
        contacts=tuple(found_contacts),
        events=tuple(events),
    )


def _contact(row: Any) -> Contact:
    return Contact(
        contact_id=row.id,
        channel=Channel(row.channel),
        party=ContactParty(row.party),
        contact_name=row.contact_name,
        contact_phone=row.contact_phone,
        contact_email=row.contact_email,
        summary=row.summary,
        create_time=_aware(row.create_time),
        registered_by=row.registered_by,
    )


def _contact_values(case_id: int, contact: Contact) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "channel": contact.channel.value,
        "party": contact.party.value,
        "contact_name": contact.contact_name,
        "contact_phone": contact.contact_phone,
        "contact_email": contact.contact_email,
        "summary": contact.summary,
        "create_time": contact.create_time,
        "registered_by": contact.registered_by,
    }


def _event_values(case_id: int, event: Event) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "kind": event.kind.value,
        "time": event.time,
        "actor": event.actor,
        "detail": event.detail,
    }


@dataclass(frozen=True)
class Mail:
    kind: str
    case_id: int
    recipients: tuple[str, ...]
    subject: str
    body: str
    urgent: bool


@dataclass(frozen=True)
class QueuedMail:
    mail_id: int
    mail: Mail
    message_id: str
    attempts: int


class ConcurrentChange(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class CaseRepository:
    def __init__(self, conn: AsyncConnection):
        self.conn = conn

    # ---- reference data ----

    async def reference_items(self) -> list[ReferenceItem]:
        rows = await self.conn.execute(
            select(reference_items)
            .where(reference_items.c.active.is_(True))
            .order_by(reference_items.c.kind, reference_items.c.position)
        )
        return [ReferenceItem(ReferenceKind(r.kind), r.item_id, r.label, r.need_role) for r in rows]

    # ---- cases ----

    async def add(self, case: Case) -> Case:
        # The values go in as parameters, not .values(): the statement is then the same every time and
        # its compiled form is reused, instead of 35 bound literals being built and keyed on every call.
        result = await self.conn.execute(insert(cases).returning(cases.c.id), _case_values(case))
        case_id = int(result.scalar_one())
        stored_contacts = []
        for contact in case.contacts:
            contact_id = (
                await self.conn.execute(
                    insert(contacts).returning(contacts.c.id), _contact_values(case_id, contact)
                )
            ).scalar_one()
            stored_contacts.append(replace(contact, contact_id=int(contact_id)))
        if case.events:
            await self.conn.execute(insert(case_events), [_event_values(case_id, e) for e in case.events])
        return replace(case, case_id=case_id, contacts=tuple(stored_contacts))

    async def add_all(self, new_cases: Sequence[Case]) -> list[Case]:
        """Stores many new cases with their contacts and events in three statements, for loading data."""
        if not new_cases:
            return []
        case_ids = await self._insert_many(cases, [_case_values(case) for case in new_cases])
        owned = [
            (case_id, contact)
            for case_id, case in zip(case_ids, new_cases, strict=True)
            for contact in case.contacts
        ]
        contact_ids = await self._insert_many(
            contacts, [_contact_values(case_id, contact) for case_id, contact in owned]
        )
        events = [
            _event_values(case_id, event)
            for case_id, case in zip(case_ids, new_cases, strict=True)
            for event in case.events
        ]
        if events:
            await self.conn.execute(insert(case_events), events)
        given = iter(contact_ids)
        return [
            replace(
                case,
                case_id=case_id,
                contacts=tuple(replace(contact, contact_id=next(given)) for contact in case.contacts),
            )
            for case_id, case in zip(case_ids, new_cases, strict=True)
        ]

    async def _insert_many(self, table: Table, rows: list[dict[str, Any]]) -> list[int]:
        """Inserts rows in one statement and gives their new ids, in the order of the rows."""
        if not rows:
            return []
        if self.conn.dialect.name == "sqlite":
            # SQLite does not promise RETURNING rows in the order of a multi-row insert, so SQLAlchemy
            # would insert one row at a time. A writing transaction holds the database's only write
            # lock (BEGIN IMMEDIATE), so the ids after the largest one are ours to give.
            largest = (await self.conn.execute(select(func.max(table.c.id)))).scalar_one() or 0
            ids = list(range(largest + 1, largest + 1 + len(rows)))
            await self.conn.execute(
                insert(table), [{**row, "id": i} for row, i in zip(rows, ids, strict=True)]
            )
            return ids
        result = await self.conn.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        )
        return [int(row_id) for row_id in result.scalars()]

    async def get(self, case_id: int, *, for_update: bool = False) -> Case | None:
        query = select(cases).where(cases.c.id == case_id)
        if for_update and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await self.conn.execute(query)).first()
        if row is None:
            return None
        found_contacts = [
            _contact(r)
            for r in await self.conn.execute(
                select(contacts).where(contacts.c.case_id == case_id).order_by(contacts.c.id)
            )
        ]
        events = [
            Event(EventKind(r.kind), _aware(r.time) or r.time, r.actor, r.detail)
            for r in await self.conn.execute(
                select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.id)
            )
        ]
        return _case(row, found_contacts, events)

    async def save(self, before: Case, after: Case) -> Case:
        """Writes `after`, the result of a transition of `before`: new contacts and events are appended."""
        stored = replace(after, revision=before.revision + 1)
        values = _case_values(stored)
        result = await self.conn.execute(
            update(cases)
            .where(and_(cases.c.id == before.case_id, cases.c.revision == before.revision))
            .values(**values)
        )
        if result.rowcount != 1:
            raise ConcurrentChange(before.name)
        new_contacts = list(after.contacts[len(before.contacts) :])
        saved_contacts = list(after.contacts[: len(before.contacts)])
        for contact in new_contacts:
            contact_id = (
                await self.conn.execute(
                    insert(contacts)
                    .values(**_contact_values(before.case_id, contact))
                    .returning(contacts.c.id)
                )
            ).scalar_one()
            saved_contacts.append(replace(contact, contact_id=int(contact_id)))
        new_events = after.events[len(before.events) :]
        if new_events:
            await self.conn.execute(
                insert(case_events), [_event_values(before.case_id, e) for e in new_events]
            )
        return replace(stored, contacts=tuple(saved_contacts))

    async def summaries(self, where: Any, *, order: Sequence[Any], limit: int) -> list[Case]:
        """Cases without contacts and events, for lists."""
        rows = await self.conn.execute(select(cases).where(where).order_by(*order).limit(limit))
        return [_case(r) for r in rows]

    async def open_cases_of(self, person_number: str, *, limit: int = 100) -> list[Case]:
        return await self.summaries(
            and_(cases.c.person_number == person_number, cases.c.status != CaseStatus.CLOSED.value),
            order=[cases.c.id.desc()],
            limit=limit,
        )

    async def cases_of(self, person_number: str, *, before_id: int | None, limit: int) -> list[Case]:
        where = cases.c.person_number == person_number
        if before_id is not None:
            where = and_(where, cases.c.id < before_id)
        return await self.summaries(where, order=[cases.c.id.desc()], limit=limit)

    async def unit_queue(self, unit_id: str, *, after: tuple[str, int] | None, limit: int) -> list[Case]:
        """A unit's cases not yet answered, by deadline then id."""
        where = and_(cases.c.unit_id == unit_id, text(f"cases.{_AT_UNIT_SQL}"))
        if after is not None:
            deadline, case_id = datetime.fromisoformat(after[0]), after[1]
            where = and_(
                where,
                or_(cases.c.deadline > deadline, and_(cases.c.deadline == deadline, cases.c.id > case_id)),
            )
        return await self.summaries(where, order=[cases.c.deadline, cases.c.id], limit=limit)

    async def overdue(self, unit_id: str | None, *, after: int | None, limit: int) -> list[Case]:
        where = and_(cases.c.overdue.is_(True), cases.c.status != CaseStatus.CLOSED.value)
        if unit_id:
            where = and_(where, cases.c.unit_id == unit_id)
        if after is not None:
            where = and_(where, cases.c.id > after)
        return await self.summaries(where, order=[cases.c.id], limit=limit)

    async def due_for_escalation(self, now: datetime, *, limit: int) -> list[int]:
        rows = await self.conn.execute(
            select(cases.c.id)
            .where(
                and_(
                    cases.c.status.in_(
                        [CaseStatus.FORWARDED.value, CaseStatus.ACKNOWLEDGED.value, CaseStatus.ASSIGNED.value]
                    ),
                    cases.c.overdue.is_(False),
                    cases.c.deadline < now,
                )
            )
            .order_by(cases.c.deadline)
            .limit(limit)
        )
        return [int(r.id) for r in rows]

    # ---- consents ----

    async def add_consent(self, consent: Consent) -> Consent:
        consent_id = (
            await self.conn.execute(
                insert(consents)
                .values(
                    case_id=consent.case_id,
                    given_by=consent.given_by.value,
                    verification=consent.verification,
                    scopes=";".join(s.value for s in consent.scopes),
                    recorded_by=consent.recorded_by,
                    create_time=consent.create_time,
                    revoke_time=None,
                )
                .returning(consents.c.id)
            )
        ).scalar_one()
        return replace(consent, consent_id=int(consent_id))

    async def get_consent(self, case_id: int, consent_id: int) -> Consent | None:
        row = (
            await self.conn.execute(
                select(consents).where(and_(consents.c.case_id == case_id, consents.c.id == consent_id))
            )
        ).first()
        if row is None:
            return None
        return Consent(
            consent_id=row.id,
            case_id=row.case_id,
            given_by=ConsentGiver(row.given_by),
            verification=row.verification,
            scopes=tuple(GrantScope(s) for s in row.scopes.split(";") if s),
            recorded_by=row.recorded_by,
            create_time=_aware(row.create_time),
            revoke_time=_aware(row.revoke_time),
        )

    async def revoke_consent(self, consent: Consent, now: datetime) -> Consent:
        await self.conn.execute(
            update(consents).where(consents.c.id == consent.consent_id).values(revoke_time=now)
        )
        return replace(consent, revoke_time=now)

    # ---- the outbox ----

    async def queue_mail(self, mail: Mail, *, message_domain: str) -> None:
        now = _now()
        mail_id = (
            await self.conn.execute(
                insert(outbox)
                .values(
                    kind=mail.kind,
                    case_id=mail.case_id,
                    recipients=";".join(mail.recipients),
                    subject=mail.subject,
                    body=mail.body,
                    urgent=mail.urgent,
                    # A placeholder until the id is known; unique per row all the same.
                    message_id=f"pending-{mail.case_id}-{now.timestamp()}-{id(mail)}",
                    create_time=now,
                    next_attempt_time=now,
                    attempts=0,
                    claimed_until=None,
                    sent_time=None,
                    last_error="",
                )
                .returning(outbox.c.id)
            )
        ).scalar_one()
        await self.conn.execute(
            update(outbox)
            .where(outbox.c.id == mail_id)
            .values(message_id=f"<outbox-{mail_id}.{mail.kind}.case-{mail.case_id}@{message_domain}>")
        )

    async def claim_mail(self, now: datetime, *, lease_until: datetime, limit: int) -> list[QueuedMail]:
        """Claims due mail for this sender until `lease_until`; another replica skips claimed rows."""
        due = and_(
            outbox.c.sent_time.is_(None),
            outbox.c.next_attempt_time <= now,
            or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now),
        )
        ids = [
            int(r.id)
            for r in await self.conn.execute(
                select(outbox.c.id).where(due).order_by(outbox.c.id).limit(limit)
            )
        ]
        if not ids:
            return []
        # Claiming re-checks the condition, so of two replicas racing for a row only one updates it.
        claimed = await self.conn.execute(
            update(outbox)
            .where(and_(outbox.c.id.in_(ids), due))
            .values(claimed_until=lease_until)
            .returning(outbox.c.id)
        )
        claimed_ids = sorted(int(r.id) for r in claimed)
        rows = await self.conn.execute(
            select(outbox).where(outbox.c.id.in_(claimed_ids)).order_by(outbox.c.id)
        )
        return [
            QueuedMail(
                mail_id=r.id,
                mail=Mail(
                    r.kind,
                    r.case_id,
                    tuple(x for x in r.recipients.split(";") if x),
                    r.subject,
                    r.body,
                    r.urgent,
                ),
                message_id=r.message_id,
                attempts=r.attempts,
            )
            for r in rows
        ]

    async def mail_sent(self, mail_id: int, now: datetime) -> None:
        await self.conn.execute(
            update(outbox)
            .where(outbox.c.id == mail_id)
            .values(sent_time=now, claimed_until=None, last_error="")
        )

    async def mail_failed(self, mail_id: int, *, attempts: int, retry_at: datetime, error: str) -> None:
        await self.conn.execute(
            update(outbox)
            .where(outbox.c.id == mail_id)
            .values(attempts=attempts, next_attempt_time=retry_at, claimed_until=None, last_error=error[:500])
        )

    async def count(self) -> int:
        return int((await self.conn.execute(select(func.count()).select_from(cases))).scalar_one())

    async def delete_all(self) -> None:
        """Removes every case; contacts, events, consents and mail go with them (ON DELETE CASCADE)."""
        await self.conn.execute(delete(cases))

    # ---- statistics and billing ----

    async def statistics_groups(
        self, *, start: datetime, end: datetime, dimensions: Sequence[str]
    ) -> tuple[list[Any], list[Any]]:
        """Sums per group, and per group the count of cases for each resolve time in minutes."""
        keys = [getattr(cases.c, DIMENSION_COLUMNS[d]).label(f"k{i}") for i, d in enumerate(dimensions)]
        period = and_(cases.c.create_time >= start, cases.c.create_time < end)
        true = sql_case
        sums = select(
            *keys,
            func.count().label("cases"),
            func.coalesce(func.sum(cases.c.contact_count), 0).label("contacts"),
            func.coalesce(func.sum(true((cases.c.resolved_at_first_contact.is_(True), 1), else_=0)), 0).label(
                "fcr"
            ),
            func.coalesce(func.sum(true((cases.c.forwarded_ever.is_(True), 1), else_=0)), 0).label(
                "forwarded"
            ),
            func.coalesce(func.sum(true((cases.c.deadline_kept.is_(True), 1), else_=0)), 0).label("kept"),
            func.coalesce(func.sum(true((cases.c.deadline_kept.is_not(None), 1), else_=0)), 0).label(
                "judged"
            ),
            func.coalesce(func.sum(true((cases.c.acute.is_(True), 1), else_=0)), 0).label("acute"),
            func.coalesce(func.sum(cases.c.satisfaction), 0).label("satisfaction_sum"),
            func.count(cases.c.satisfaction).label("satisfaction_answers"),
        ).where(period)
        minutes = select(*keys, cases.c.resolve_minutes.label("minutes"), func.count().label("n")).where(
            and_(period, cases.c.resolve_minutes.is_not(None))
        )
        if keys:
            sums = sums.group_by(*keys)
            minutes = minutes.group_by(*keys, cases.c.resolve_minutes)
        else:
            minutes = minutes.group_by(cases.c.resolve_minutes)
        return list(await self.conn.execute(sums)), list(await self.conn.execute(minutes))

    async def billable_contacts(
        self, *, start: datetime, end: datetime, unit_id: str | None, district_id: str | None
    ) -> list[Any]:
        query = (
            select(
                cases.c.district_id,
                cases.c.unit_id,
                func.count().label("contacts"),
                func.count(func.distinct(cases.c.id)).label("cases"),
            )
            .select_from(contacts.join(cases, cases.c.id == contacts.c.case_id))
            .where(and_(contacts.c.create_time >= start, contacts.c.create_time < end))
            .group_by(cases.c.district_id, cases.c.unit_id)
            .order_by(cases.c.district_id, cases.c.unit_id)
        )
        if unit_id:
            query = query.where(cases.c.unit_id == unit_id)
        if district_id:
            query = query.where(cases.c.district_id == district_id)
        return list(await self.conn.execute(query))


Registrar = Callable[[Case, Idempotency | None], Awaitable[Case]]


def registrar(engine: AsyncEngine) -> Registrar:
    """How newly registered cases are stored: in one statement on PostgreSQL, else in a unit of work."""
    if engine.dialect.name == "postgresql":
        return OneStatementRegistrar(engine)
    make = unit_of_work_factory(engine)

    async def in_a_unit_of_work(case: Case, idempotency: Idempotency | None) -> Case:
        async with make(idempotency=idempotency) as uow:
            stored = await uow.cases.add(case)
            await uow.commit(stored)
        return stored

    return in_a_unit_of_work


class OneStatementRegistrar:
    """Stores a new case with its first contact and event, and claims its request_id, in one statement.

    Registering is the commonest write, and on this kind of host every round trip to PostgreSQL costs
    about 150 µs of CPU: BEGIN, claim, insert, answer and COMMIT made five. Here it is one, run in
    autocommit, so the statement is its own transaction:

    - The ids come first, from the sequences, `block` at a time (one round trip per block), so the answer
      can be built, and stored with the claim, before anything is written. Ids are therefore handed out
      in blocks per process: unique and increasing within a process, not across processes.
    - The claim is `INSERT … ON CONFLICT DO NOTHING`, and the case is inserted only if it took: a retry
      waits on the key of a first call still running, then finds its answer (`Replayed`).
    """

    def __init__(self, engine: AsyncEngine, *, block: int = 100):
        self.engine = engine
        self.block = block
        self._ids: deque[tuple[int, int]] = deque()

    async def __call__(self, case: Case, idempotency: Idempotency | None) -> Case:
        if len(case.contacts) != 1 or len(case.events) != 1:
            raise ValueError("a newly registered case has exactly one contact and one event")
        async with connect(self.engine) as conn:
            if not self._ids:
                rows = await _ID_BLOCK.fetch(conn, {"block": self.block})
                self._ids.extend((int(r["case_id"]), int(r["contact_id"])) for r in rows)
            case_id, contact_id = self._ids.popleft()
            stored = replace(
                case, case_id=case_id, contacts=(replace(case.contacts[0], contact_id=contact_id),)
            )
            values = _registration_values(stored)
            if idempotency is not None:
                key = idempotency.key
                values.update(
                    key_method=key.method,
                    key_subject=key.subject,
                    key_request_id=key.request_id,
                    key_payload_hash=key.payload_hash,
                    key_response=idempotency.encode(stored),
                    key_create_time=_now(),
                )
            written = await _registration(claim=idempotency is not None).fetchval(conn, values)
            if idempotency is not None and written == 0:
                first = await IdempotencyStore(conn).find(idempotency.key)
                if first is None:
                    raise RuntimeError("the request_id was taken, but its answer is gone")
                raise Replayed(first)
        return stored


_ID_BLOCK = DriverStatement(
    text(
        "SELECT nextval(pg_get_serial_sequence('cases', 'id')) AS case_id, "
        "nextval(pg_get_serial_sequence('contacts', 'id')) AS contact_id "
        "FROM generate_series(1, CAST(:block AS integer)) ORDER BY 1"
    )
)


def _registration_values(case: Case) -> dict[str, Any]:
    contact = case.contacts[0]
    values = {f"case_{name}": value for name, value in _case_values(case).items()}
    values["case_id"] = case.case_id
    # The contact's and event's case_id come from the new case's row, in the statement.
    values.update(
        (f"contact_{name}", value) for name, value in _contact_values(0, contact).items() if name != "case_id"
    )
    values["contact_id"] = contact.contact_id
    values.update(
        (f"event_{name}", value)
        for name, value in _event_values(0, case.events[0]).items()
        if name != "case_id"
    )
    return values


@functools.cache
def _registration(*, claim: bool) -> DriverStatement:
    """INSERT of a case, its contact and its event, and with `claim` first of its request_id; PostgreSQL.

    Answers with the number of cases written: 1, or 0 when the claim did not take. Data-modifying WITH
    queries all run to completion, and pass rows on only through RETURNING, which is what links them.
    """

    def parameters(table: Table, prefix: str) -> list[tuple[str, BindParameter[Any]]]:
        return [
            (column.name, bindparam(f"{prefix}_{column.name}", type_=column.type))
            for column in table.columns
            if column.name != "case_id"
        ]

    case_columns = parameters(cases, "case")
    source = select(*(parameter for _, parameter in case_columns))
    if claim:
        taken = (
            postgresql_insert(idempotency_keys)
            .values(dict(parameters(idempotency_keys, "key")))
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.method)
            .cte("claim")
        )
        source = source.where(exists(select(taken.c.method)))
    new_case = (
        insert(cases)
        .from_select([name for name, _ in case_columns], source)
        .returning(cases.c.id)
        .cte("new_case")
    )

    def owned(table: Table, prefix: str, *, with_id: bool) -> Insert:
        columns = [(name, bind) for name, bind in parameters(table, prefix) if with_id or name != "id"]
        return insert(table).from_select(
            ["case_id", *(name for name, _ in columns)],
            select(new_case.c.id, *(bind for _, bind in columns)),
        )

    # The contact's id was given (the answer names it); the event's comes from its sequence.
    return DriverStatement(
        select(func.count())
        .select_from(new_case)
        .add_cte(owned(contacts, "contact", with_id=True).cte("new_contact"))
        .add_cte(owned(case_events, "event", with_id=False).cte("new_event"))
    )


DIMENSION_COLUMNS = {
    "case_type": "case_type",
    "case_class": "case_class",
    "district": "district_id",
    "channel": "first_channel",
    "month": "create_month",
}


class CaseUnitOfWork(UnitOfWork):
    cases: CaseRepository

    def bind(self, conn: AsyncConnection) -> None:
        self.cases = CaseRepository(conn)


def unit_of_work_factory(engine: AsyncEngine) -> Callable[..., CaseUnitOfWork]:
    def make(*, write: bool = True, idempotency: Idempotency | None = None) -> CaseUnitOfWork:
        return CaseUnitOfWork(engine, write=write, idempotency=idempotency)

    return make


def group_minutes(rows: Iterable[Any], width: int) -> dict[tuple[str, ...], list[tuple[int, int]]]:
    found: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
    for row in rows:
        key = tuple(str(row[i]) if row[i] is not None else "" for i in range(width))
        found[key].append((int(row.minutes), int(row.n)))
    return found
