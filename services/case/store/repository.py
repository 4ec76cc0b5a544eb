"""The case service's repository and unit of work: cases, contacts, events and consents as domain types."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    delete,
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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.case.model import (
    Billable,
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
    GroupCounts,
    Mail,
    ReferenceItem,
    ReferenceKind,
)
from services.case.store.tables import (
    AT_UNIT_SQL,
    case_events,
    cases,
    consents,
    contacts,
    outbox,
    reference_items,
)
from services.common.business_calendar import to_local
from services.common.db import Fence, Idempotency, UnitOfWork, save_at_revision, utc
from services.common.outbox import enqueue

MAIL = "mail"


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


def _now() -> datetime:
    return datetime.now(UTC)


def case_values(case: Case) -> dict[str, Any]:
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


def contact_values(case_id: int, contact: Contact) -> dict[str, Any]:
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


def event_values(case_id: int, event: Event) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "kind": event.kind.value,
        "time": event.time,
        "actor": event.actor,
        "detail": event.detail,
    }


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
        result = await self.conn.execute(insert(cases).returning(cases.c.id), case_values(case))
        case_id = int(result.scalar_one())
        stored_contacts = []
        for contact in case.contacts:
            contact_id = (
                await self.conn.execute(
                    insert(contacts).returning(contacts.c.id), contact_values(case_id, contact)
                )
            ).scalar_one()
            stored_contacts.append(replace(contact, contact_id=int(contact_id)))
        if case.events:
            await self.conn.execute(insert(case_events), [event_values(case_id, e) for e in case.events])
        return replace(case, case_id=case_id, contacts=tuple(stored_contacts))

    async def add_all(self, new_cases: Sequence[Case]) -> list[Case]:
        """Stores many new cases with their contacts and events in three statements, for loading data."""
        if not new_cases:
            return []
        case_ids = await self._insert_many(cases, [case_values(case) for case in new_cases])
        owned = [
            (case_id, contact)
            for case_id, case in zip(case_ids, new_cases, strict=True)
            for contact in case.contacts
        ]
        contact_ids = await self._insert_many(
            contacts, [contact_values(case_id, contact) for case_id, contact in owned]
        )
        events = [
            event_values(case_id, event)
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
        values = case_values(stored)
        await save_at_revision(
            self.conn,
            cases,
            cases.c.id == before.case_id,
            revision=before.revision,
            values=values,
            name=before.name,
        )
        new_contacts = list(after.contacts[len(before.contacts) :])
        saved_contacts = list(after.contacts[: len(before.contacts)])
        for contact in new_contacts:
            contact_id = (
                await self.conn.execute(
                    insert(contacts)
                    .values(**contact_values(before.case_id, contact))
                    .returning(contacts.c.id)
                )
            ).scalar_one()
            saved_contacts.append(replace(contact, contact_id=int(contact_id)))
        new_events = after.events[len(before.events) :]
        if new_events:
            await self.conn.execute(
                insert(case_events), [event_values(before.case_id, e) for e in new_events]
            )
        return replace(stored, contacts=tuple(saved_contacts))

    async def summaries(self, where: Any, *, order: Sequence[Any], limit: int) -> list[Case]:
        """Cases without contacts and events, for lists."""
        rows = await self.conn.execute(select(cases).where(where).order_by(*order).limit(limit))
        return [_case(r) for r in rows]

    async def open_cases_of(self, person_number: str, *, before_id: int | None, limit: int) -> list[Case]:
        """A person's cases not closed, newest first, continuing before `before_id`."""
        where = and_(cases.c.person_number == person_number, cases.c.status != CaseStatus.CLOSED.value)
        if before_id is not None:
            where = and_(where, cases.c.id < before_id)
        return await self.summaries(where, order=[cases.c.id.desc()], limit=limit)

    async def cases_of(self, person_number: str, *, before_id: int | None, limit: int) -> list[Case]:
        where = cases.c.person_number == person_number
        if before_id is not None:
            where = and_(where, cases.c.id < before_id)
        return await self.summaries(where, order=[cases.c.id.desc()], limit=limit)

    async def unit_queue(self, unit_id: str, *, after: tuple[str, int] | None, limit: int) -> list[Case]:
        """A unit's cases not yet answered, by deadline then id."""
        where = and_(cases.c.unit_id == unit_id, text(f"cases.{AT_UNIT_SQL}"))
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

    async def queue_mail(self, mail: Mail, *, message_domain: str, now: datetime) -> str:
        """Queues a mail in this transaction's outbox; returns its Message-ID, fixed now, so that a retry
        after an unknown outcome is recognisably the same mail."""
        message_id = f"<case-{mail.case_id}.{mail.kind}.{uuid.uuid4().hex}@{message_domain}>"
        await enqueue(
            self.conn,
            outbox,
            kind=MAIL,
            payload=mail.encode(),
            delivery_key=message_id,
            subject_ref=f"cases/{mail.case_id}",
            now=now,
        )
        return message_id

    async def count(self) -> int:
        return int((await self.conn.execute(select(func.count()).select_from(cases))).scalar_one())

    async def delete_all(self) -> None:
        """Removes every case; contacts, events, consents and mail go with them (ON DELETE CASCADE)."""
        await self.conn.execute(delete(cases))

    # ---- statistics and billing ----

    async def statistics_groups(
        self, *, start: datetime, end: datetime, dimensions: Sequence[str]
    ) -> tuple[list[GroupCounts], dict[tuple[str, ...], list[tuple[int, int]]]]:
        """Counts per group of the cases registered in [start, end), and per group how many cases took
        each number of minutes to resolve."""
        keys = [getattr(cases.c, DIMENSION_COLUMNS[d]).label(f"k{i}") for i, d in enumerate(dimensions)]
        period = and_(cases.c.create_time >= start, cases.c.create_time < end)

        def count_true(condition: Any) -> Any:
            return func.coalesce(func.sum(sql_case((condition, 1), else_=0)), 0)

        sums = select(
            *keys,
            func.count().label("cases"),
            func.coalesce(func.sum(cases.c.contact_count), 0).label("contacts"),
            count_true(cases.c.resolved_at_first_contact.is_(True)).label("fcr"),
            count_true(cases.c.forwarded_ever.is_(True)).label("forwarded"),
            count_true(cases.c.deadline_kept.is_(True)).label("kept"),
            count_true(cases.c.deadline_kept.is_not(None)).label("judged"),
            count_true(cases.c.acute.is_(True)).label("acute"),
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
        width = len(dimensions)
        groups = [
            GroupCounts(
                keys=_group_keys(row, width),
                contacts=int(row.contacts),
                cases=int(row.cases),
                resolved_at_first_contact=int(row.fcr),
                forwarded=int(row.forwarded),
                deadline_kept=int(row.kept),
                deadline_judged=int(row.judged),
                acute=int(row.acute),
                satisfaction_sum=int(row.satisfaction_sum),
                satisfaction_answers=int(row.satisfaction_answers),
            )
            for row in await self.conn.execute(sums)
        ]
        histograms: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
        for row in await self.conn.execute(minutes):
            histograms[_group_keys(row, width)].append((int(row.minutes), int(row.n)))
        return groups, dict(histograms)

    async def billable_contacts(
        self, *, start: datetime, end: datetime, unit_id: str | None, district_id: str | None
    ) -> list[Billable]:
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
        return [
            Billable(
                district_id=r.district_id, unit_id=r.unit_id, contacts=int(r.contacts), cases=int(r.cases)
            )
            for r in await self.conn.execute(query)
        ]


def _group_keys(row: Any, width: int) -> tuple[str, ...]:
    return tuple(str(row[i]) if row[i] is not None else "" for i in range(width))


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
    def make(
        *, write: bool = True, idempotency: Idempotency | None = None, fence: Fence | None = None
    ) -> CaseUnitOfWork:
        return CaseUnitOfWork(engine, write=write, idempotency=idempotency, fence=fence)

    return make
