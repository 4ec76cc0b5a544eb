"""The case service's use cases: one transaction each, permission checked before anything is looked up."""

from __future__ import annotations

import csv
import io
import logging
import time as clock_time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.case import model
from services.case.directory_client import Directory
from services.case.model import (
    AT_UNIT,
    Case,
    CaseStatus,
    Consent,
    ConsentGiver,
    Contact,
    FeedbackChannel,
    GrantScope,
    ReferenceItem,
    ReferenceKind,
)
from services.case.store import (
    DIMENSION_COLUMNS,
    CaseUnitOfWork,
    ConcurrentChange,
    Mail,
    Registrar,
    access_log,
    group_minutes,
)
from services.common.audit import AccessEntry, AccessRecord, list_access
from services.common.audit_writer import AccessLog
from services.common.auth import Caller, Role
from services.common.business_calendar import STOCKHOLM, to_local
from services.common.db import Idempotency
from services.common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StaleEtag,
)
from services.common.grants import GrantIssuer
from services.common.names import resource_id, resource_ids
from services.common.pagination import PageRequest
from services.common.personnummer import parse_person_number, redact_person_numbers

log = logging.getLogger("aldredirekt.case")

AGENTS = (Role.AGENT,)
UNIT_STAFF = (Role.OFFICER, Role.UNIT_MANAGER)
READERS = (Role.AGENT, Role.OFFICER, Role.UNIT_MANAGER, Role.CITIZEN)
STATISTICS = (Role.AGENT, Role.UNIT_MANAGER, Role.AUDITOR, Role.FINANCE)
BILLING = (Role.FINANCE, Role.SERVICE, Role.AUDITOR)
UowFactory = Callable[..., CaseUnitOfWork]
SERVICE = "case"


@dataclass
class ReferenceCache:
    """Categories, case types and classes change only by migration; every CreateCase needs them."""

    max_age: float = 60.0
    items: list[ReferenceItem] | None = None
    loaded_at: float = 0.0


@dataclass
class Cases:
    """What the use cases need, wired by bootstrap: real or fake."""

    uow: UowFactory
    # Stores a newly registered case (store.registrar): the commonest write has a path of its own.
    register: Registrar
    access_log: AccessLog
    directory: Directory
    grants: GrantIssuer
    grant_jwks: str
    message_domain: str = "aldredirekt.stockholm.se"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    reference: ReferenceCache = field(default_factory=ReferenceCache)
    # Called after a transaction that queued mail committed, so the outbox is sent without waiting.
    mail_queued: Callable[[], None] = field(default=lambda: None)


# ---- helpers ----------------------------------------------------------------------------------------------


def case_id_of(name: str, field_name: str = "name") -> int:
    return int(resource_ids(name, ("cases",), field_name, numeric=True)[0])


async def _log_reads(
    cases: Cases, caller: Caller, people: Sequence[str | None], action: str, purpose: str
) -> None:
    now = cases.clock()
    role = caller.primary_role
    # All at once, so that a page of fifty people costs one access-log commit, not fifty.
    await cases.access_log.record(
        *(
            AccessRecord(
                actor=caller.subject,
                actor_role=role,
                person_number=person,
                action=f"case.{action}",
                purpose=purpose,
                occurred_at=now,
            )
            for person in dict.fromkeys(p for p in people if p)
        )
    )


async def _load(uow: CaseUnitOfWork, case_id: int) -> Case:
    case = await uow.cases.get(case_id, for_update=True)
    if case is None:
        raise NotFound(f"cases/{case_id}")
    return case


def _check_unit_staff(caller: Caller, case: Case) -> None:
    """A unit's staff act only on the cases forwarded to their own unit."""
    if case.unit_id is None or caller.unit_id != case.unit_id:
        raise PermissionDenied(
            f"{case.name} is not with your unit", reason="OTHER_UNIT", metadata={"case": case.name}
        )


async def _save(uow: CaseUnitOfWork, before: Case, after: Case) -> Case:
    try:
        return await uow.cases.save(before, after)
    except ConcurrentChange as change:
        raise StaleEtag(change.name) from None


# ---- reference data ---------------------------------------------------------------------------------------


async def reference_items(cases: Cases) -> list[ReferenceItem]:
    cache = cases.reference
    if cache.items is None or clock_time.monotonic() - cache.loaded_at > cache.max_age:
        async with cases.uow(write=False) as uow:
            cache.items = await uow.cases.reference_items()
        cache.loaded_at = clock_time.monotonic()
    return cache.items


async def list_reference_data(*, cases: Cases, caller: Caller) -> list[ReferenceItem]:
    caller.require_role(Role.AGENT, Role.OFFICER, Role.UNIT_MANAGER, Role.AUDITOR, Role.FINANCE, Role.SERVICE)
    return await reference_items(cases)


def _reference_violations(items: list[ReferenceItem], case: Case) -> list[FieldViolation]:
    known = {(i.kind, i.item_id) for i in items}
    out = []
    for kind, value, name in (
        (ReferenceKind.CATEGORY, case.category, "case.category"),
        (ReferenceKind.CASE_TYPE, case.case_type, "case.case_type"),
        (ReferenceKind.CASE_CLASS, case.case_class, "case.case_class"),
    ):
        if not value:
            out.append(FieldViolation(name, "is required"))
        elif (kind, value) not in known:
            choices = ", ".join(i.item_id for i in items if i.kind is kind)
            out.append(FieldViolation(name, f"{value!r} is not one of {choices}"))
    return out


# ---- registering and linking ------------------------------------------------------------------------------


async def create_case(
    *,
    cases: Cases,
    caller: Caller,
    case: Case,
    contact: Contact,
    person_number: str,
    anonymous: bool,
    idempotency: Idempotency | None = None,
) -> Case:
    caller.require_role(*AGENTS)
    violations = model.case_violations(case) + model.contact_violations(contact)
    if anonymous and person_number:
        violations.append(FieldViolation("case.person_number", "must be empty for an anonymous case"))
    if not anonymous and not person_number:
        violations.append(FieldViolation("case.person_number", "is required unless the case is anonymous"))
    model.raise_if(violations)
    person = str(parse_person_number(person_number, field="case.person_number")) if person_number else None
    district_id = case.district_id
    if district_id:
        districts = await cases.directory.district_ids(caller)
        if district_id not in districts:
            raise InvalidArgument.field(
                "case.district", f"districts/{district_id} is not a district of Stockholm"
            )
        district_id = districts[district_id]  # a retired district's cases belong to its successor
    # Checked before the transaction: loading the reference data takes a connection of its own, which a
    # burst of calls each already holding one could wait for in vain.
    model.raise_if(_reference_violations(await reference_items(cases), case))
    registered = model.register(
        replace(case, person_number=person, district_id=district_id),
        contact,
        actor=caller.subject,
        now=cases.clock(),
    )
    return await cases.register(registered, idempotency)


async def get_case(*, cases: Cases, caller: Caller, name: str) -> Case:
    caller.require_role(*READERS)
    case_id = case_id_of(name)
    async with cases.uow(write=False) as uow:
        case = await uow.cases.get(case_id)
    is_citizen = not caller.has_role(Role.AGENT, *UNIT_STAFF)
    if case is None or (
        is_citizen and (case.person_number is None or case.person_number != caller.person_number)
    ):
        # A citizen learns nothing of cases that are not theirs, not even that they exist.
        raise NotFound(name)
    if not caller.has_role(Role.AGENT) and caller.has_role(*UNIT_STAFF):
        _check_unit_staff(caller, case)
    await _log_reads(cases, caller, [case.person_number], "GetCase", case.name)
    return case


async def find_open_cases(*, cases: Cases, caller: Caller, person_number: str) -> list[Case]:
    caller.require_role(*AGENTS)
    person = str(parse_person_number(person_number, field="person_number"))
    async with cases.uow(write=False) as uow:
        found = await uow.cases.open_cases_of(person)
    await _log_reads(cases, caller, [person], "FindOpenCases", "registering a contact")
    return found


async def add_contact(
    *, cases: Cases, caller: Caller, name: str, contact: Contact, idempotency: Idempotency | None = None
) -> Case:
    caller.require_role(*AGENTS)
    case_id_of(name)  # a malformed name is refused before the contact is checked
    model.raise_if(model.contact_violations(contact))
    return await _transition(
        cases,
        name,
        lambda case, now: model.add_contact(case, contact, actor=caller.subject, now=now),
        idempotency,
    )


async def resolve_case(
    *, cases: Cases, caller: Caller, name: str, resolution: str, idempotency: Idempotency | None = None
) -> Case:
    caller.require_role(*AGENTS)
    return await _transition(
        cases,
        name,
        lambda case, now: model.resolve(case, resolution, actor=caller.subject, now=now),
        idempotency,
    )


async def reopen_case(
    *, cases: Cases, caller: Caller, name: str, reason: str, idempotency: Idempotency | None = None
) -> Case:
    caller.require_role(*AGENTS)
    return await _transition(
        cases, name, lambda case, now: model.reopen(case, reason, actor=caller.subject, now=now), idempotency
    )


# ---- forwarding -------------------------------------------------------------------------------------------


def forward_mail(case: Case, note: str) -> Mail:
    """The notice to the unit's functional mailbox. It names the case, not the person: the details are
    read in the unit's queue, so no personal data travels by e-mail."""
    assert case.deadline is not None
    deadline = to_local(case.deadline)
    prefix = "AKUT – " if case.acute else ""
    subject = f"{prefix}Ärende {case.case_id} från Äldre direkt: svar senast {deadline:%Y-%m-%d %H:%M}"
    lines = [
        f"Äldre direkt har skickat ärende {case.case_id} ({case.case_type}, {case.case_class}) "
        "till er enhet.",
        "",
        f"Återkoppla till den enskilde senast {deadline:%Y-%m-%d kl. %H:%M}"
        + (" – ärendet är akut och ska besvaras i dag." if case.acute else "."),
        f"Önskad återkoppling: {case.feedback_channel.value}"
        + (f", {case.feedback_window}" if case.feedback_window else ""),
        "",
        "Uppgifterna om ärendet finns i enhetens ärendekö.",
    ]
    if note.strip():
        # The note is the agent's free text; a person number typed into it must not leave by e-mail.
        lines[1:1] = ["", f"Anteckning: {redact_person_numbers(note.strip())}"]
    return Mail("forwarded", case.case_id, (case.unit_mailbox,), subject, "\n".join(lines) + "\n", case.acute)


def escalation_mail(case: Case) -> Mail:
    assert case.deadline is not None
    recipients = case.escalation_emails or ((case.unit_mailbox,) if case.unit_mailbox else ())
    subject = f"Ärende {case.case_id} har passerat sin tidsfrist"
    body = (
        f"Ärende {case.case_id}, skickat från Äldre direkt till units/{case.unit_id}, "
        "skulle ha besvarats senast "
        f"{to_local(case.deadline):%Y-%m-%d kl. %H:%M} och har ännu ingen registrerad återkoppling.\n"
    )
    return Mail("overdue", case.case_id, recipients, subject, body, True)


async def forward_case(
    *,
    cases: Cases,
    caller: Caller,
    name: str,
    postal_code: str,
    named_officer: str,
    note: str,
    idempotency: Idempotency | None = None,
) -> Case:
    caller.require_role(*AGENTS)
    case_id = case_id_of(name)
    if len(note) > model.MAX_TEXT:
        raise InvalidArgument.field("note", f"must be at most {model.MAX_TEXT:,} characters")
    # The request is looked up here already: a retry of a forward that succeeded finds the case forwarded,
    # and must get the first answer back rather than the refusal below.
    async with cases.uow(write=False, idempotency=idempotency) as uow:
        current = await uow.cases.get(case_id)
        if current is None:
            raise NotFound(name)
    items = await reference_items(cases)
    # Refuse early, so a closed or forwarded case never costs a directory call.
    model.check_forwardable(current)
    if not (current.district_id or postal_code or named_officer):
        raise InvalidArgument.field(
            "postal_code", "give the person's postal code or named officer, or set the district"
        )
    need_role = next(
        (i.need_role for i in items if i.kind is ReferenceKind.CASE_TYPE and i.item_id == current.case_type),
        "",
    )
    # Asked before the transaction: when the directory is down nothing is written.
    routing = await cases.directory.resolve(
        caller,
        person_number=current.person_number,
        district_id=current.district_id,
        postal_code=postal_code,
        named_officer=named_officer,
        need_role=need_role,
        purpose=current.name,
    )
    async with cases.uow(idempotency=idempotency) as uow:
        before = await _load(uow, case_id)
        after = await _save(
            uow, before, model.forward(before, routing, actor=caller.subject, now=cases.clock())
        )
        await uow.cases.queue_mail(forward_mail(after, note), message_domain=cases.message_domain)
        await uow.commit(after)
    cases.mail_queued()
    return after


# ---- the unit's side --------------------------------------------------------------------------------------


async def list_unit_queue(
    *, cases: Cases, caller: Caller, unit: str, page: PageRequest
) -> tuple[list[Case], str]:
    caller.require_role(*UNIT_STAFF)
    unit_id = resource_id(unit, "units", "unit")
    if caller.unit_id != unit_id:
        raise PermissionDenied("a unit's queue is for the unit's own staff", reason="OTHER_UNIT")
    after = tuple(page.after) if page.after else None
    async with cases.uow(write=False) as uow:
        found = await uow.cases.unit_queue(unit_id, after=after, limit=page.size + 1)  # type: ignore[arg-type]
    items = found[: page.size]
    await _log_reads(cases, caller, [c.person_number for c in items], "ListUnitQueue", f"units/{unit_id}")
    last = items[-1] if items else None
    token = page.next_token(
        [last.deadline.isoformat() if last and last.deadline else "", last.case_id if last else 0],
        more=len(found) > page.size,
    )
    return items, token


async def _unit_transition(
    cases: Cases,
    caller: Caller,
    name: str,
    transition: Callable[[Case, datetime], Case],
    idempotency: Idempotency | None,
    check: Callable[[Case], Any] | None = None,
) -> Case:
    caller.require_role(*UNIT_STAFF)

    def checks(before: Case) -> None:
        _check_unit_staff(caller, before)
        if check is not None:
            check(before)

    return await _transition(cases, name, transition, idempotency, check=checks)


async def _transition(
    cases: Cases,
    name: str,
    transition: Callable[[Case, datetime], Case],
    idempotency: Idempotency | None,
    check: Callable[[Case], Any] | None = None,
) -> Case:
    """Loads a case for update, checks it, applies one transition of the model, and stores the result."""
    case_id = case_id_of(name)
    async with cases.uow(idempotency=idempotency) as uow:
        before = await _load(uow, case_id)
        if check is not None:
            check(before)
        after = await _save(uow, before, transition(before, cases.clock()))
        await uow.commit(after)
    return after


async def acknowledge_case(
    *, cases: Cases, caller: Caller, name: str, idempotency: Idempotency | None = None
) -> Case:
    return await _unit_transition(
        cases, caller, name, lambda c, now: model.acknowledge(c, actor=caller.subject, now=now), idempotency
    )


async def assign_case(
    *, cases: Cases, caller: Caller, name: str, officer: str, idempotency: Idempotency | None = None
) -> Case:
    caller.require_role(*UNIT_STAFF)
    officer_id = resource_id(officer, "officers", "officer")
    unit_of_officer = await cases.directory.officer_unit(caller, officer_id)
    if unit_of_officer is None:
        raise NotFound(officer)

    def same_unit(case: Case) -> None:
        if unit_of_officer != case.unit_id:
            raise InvalidArgument.field("officer", f"{officer} is not an officer of units/{case.unit_id}")

    return await _unit_transition(
        cases,
        caller,
        name,
        lambda c, now: model.assign(c, officer_id, actor=caller.subject, now=now),
        idempotency,
        check=same_unit,
    )


async def record_feedback(
    *,
    cases: Cases,
    caller: Caller,
    name: str,
    channel: FeedbackChannel,
    note: str,
    idempotency: Idempotency | None = None,
) -> Case:
    return await _unit_transition(
        cases,
        caller,
        name,
        lambda c, now: model.record_feedback(c, channel, note, actor=caller.subject, now=now),
        idempotency,
    )


async def return_case(
    *, cases: Cases, caller: Caller, name: str, reason: str, idempotency: Idempotency | None = None
) -> Case:
    return await _unit_transition(
        cases,
        caller,
        name,
        lambda c, now: model.return_to_contact_center(c, reason, actor=caller.subject, now=now),
        idempotency,
    )


async def list_overdue_cases(
    *, cases: Cases, caller: Caller, unit: str, page: PageRequest
) -> tuple[list[Case], str]:
    caller.require_role(Role.AGENT, Role.OFFICER, Role.UNIT_MANAGER, Role.AUDITOR)
    unit_id = unit.removeprefix("units/") if unit else None
    if unit and not unit.startswith("units/"):
        raise InvalidArgument.field("unit", f"{unit!r} is not a unit name like units/bromma-bestallarenhet")
    staff_only = caller.has_role(*UNIT_STAFF) and not caller.has_role(Role.AGENT, Role.AUDITOR)
    if staff_only and unit_id != caller.unit_id:
        raise PermissionDenied("a unit's staff see the overdue cases of their own unit", reason="OTHER_UNIT")
    async with cases.uow(write=False) as uow:
        found = await uow.cases.overdue(unit_id, after=page.after, limit=page.size + 1)
    items = found[: page.size]
    await _log_reads(cases, caller, [c.person_number for c in items], "ListOverdueCases", unit or "all units")
    return items, page.next_token(items[-1].case_id if items else None, more=len(found) > page.size)


async def escalate_overdue(*, cases: Cases, batch: int = 100) -> int:
    """Marks cases past their deadline overdue and mails the unit's managers, once per case."""
    now = cases.clock()
    async with cases.uow(write=False) as uow:
        due = await uow.cases.due_for_escalation(now, limit=batch)
    escalated = 0
    for case_id in due:
        try:
            async with cases.uow() as uow:
                before = await _load(uow, case_id)
                if (
                    before.overdue
                    or before.status not in AT_UNIT
                    or before.deadline is None
                    or before.deadline >= now
                ):
                    continue
                after = await uow.cases.save(before, model.mark_overdue(before, now=now))
                mail = escalation_mail(after)
                if mail.recipients:
                    await uow.cases.queue_mail(mail, message_domain=cases.message_domain)
                await uow.commit()
                escalated += 1
        except ConcurrentChange:
            continue  # another replica or a user got there first; the next round looks again
    if escalated:
        cases.mail_queued()
        log.info("marked %d cases overdue", escalated)
    return escalated


# ---- consent and grants -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantedConsent:
    consent: Consent
    grant: str
    expire_time: datetime


async def record_consent(
    *,
    cases: Cases,
    caller: Caller,
    name: str,
    given_by: ConsentGiver | None,
    verification: str,
    scopes: Sequence[GrantScope],
    idempotency: Idempotency | None = None,
) -> GrantedConsent:
    caller.require_role(*AGENTS)
    case_id = case_id_of(name, "parent")
    violations = []
    if given_by is None:
        violations.append(FieldViolation("consent.given_by", "is required: the person or a representative"))
    if not verification.strip():
        violations.append(
            FieldViolation("consent.verification", "is required: say how the giver was verified")
        )
    elif len(verification) > model.MAX_SHORT:
        violations.append(
            FieldViolation("consent.verification", f"must be at most {model.MAX_SHORT} characters")
        )
    if not scopes:
        violations.append(FieldViolation("consent.scopes", "name at least one scope"))
    model.raise_if(violations)
    assert given_by is not None
    now = cases.clock()
    async with cases.uow(idempotency=idempotency) as uow:
        before = await _load(uow, case_id)
        if before.person_number is None:
            raise FailedPrecondition(
                f"{before.name} is anonymous: there is no person whose consent to record",
                reason="CASE_ANONYMOUS",
            )
        if before.status is CaseStatus.CLOSED:
            raise FailedPrecondition(f"{before.name} is closed: reopen it first", reason="CASE_CLOSED")
        consent = await uow.cases.add_consent(
            Consent(
                case_id=case_id,
                given_by=given_by,
                verification=verification.strip(),
                scopes=tuple(dict.fromkeys(scopes)),
                recorded_by=caller.subject,
                create_time=now,
            )
        )
        event = model.Event(
            model.EventKind.CONSENT_RECORDED, now, caller.subject, ",".join(s.value for s in consent.scopes)
        )
        await uow.cases.save(before, replace(before, events=(*before.events, event), update_time=now))
        token, expire_time = cases.grants.issue(
            grant_id=consent.name,
            agent=caller.subject,
            person_number=before.person_number,
            case=before.name,
            scopes=[s.value for s in consent.scopes],
            now=now,
        )
        granted = GrantedConsent(consent, token, expire_time)
        await uow.commit(granted)
    return granted


async def revoke_consent(*, cases: Cases, caller: Caller, name: str) -> Consent:
    caller.require_role(*AGENTS)
    case_part, consent_part = resource_ids(name, ("cases", "consents"), "name", numeric=True)
    case_id, consent_id = int(case_part), int(consent_part)
    now = cases.clock()
    async with cases.uow() as uow:
        consent = await uow.cases.get_consent(case_id, consent_id)
        if consent is None:
            raise NotFound(name)
        if consent.revoke_time is not None:
            return consent
        before = await _load(uow, case_id)
        revoked = await uow.cases.revoke_consent(consent, now)
        event = model.Event(model.EventKind.CONSENT_REVOKED, now, caller.subject, consent.name)
        await uow.cases.save(before, replace(before, events=(*before.events, event), update_time=now))
        await uow.commit()
    return revoked


# ---- satisfaction -----------------------------------------------------------------------------------------


async def record_satisfaction(
    *, cases: Cases, caller: Caller, name: str, score: int, idempotency: Idempotency | None = None
) -> Case:
    caller.require_role(Role.AGENT, Role.CITIZEN)
    case_id = case_id_of(name)
    if not 1 <= score <= 5:
        raise InvalidArgument.field("score", f"must be 1 to 5, got {score}")
    async with cases.uow(idempotency=idempotency) as uow:
        before = await uow.cases.get(case_id, for_update=True)
        if before is None or (
            not caller.has_role(Role.AGENT)
            and (before.person_number is None or before.person_number != caller.person_number)
        ):
            raise NotFound(name)
        after = await _save(
            uow, before, model.record_satisfaction(before, score, actor=caller.subject, now=cases.clock())
        )
        await uow.commit(after)
    return after


# ---- statistics and billing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatisticsRow:
    keys: tuple[str, ...]
    contacts: int
    cases: int
    resolved_at_first_contact: int
    forwarded: int
    deadline_kept: int
    deadline_judged: int
    acute: int
    median_hours: float
    p90_hours: float
    satisfaction_sum: int
    satisfaction_answers: int

    @property
    def first_contact_resolution_rate(self) -> float:
        return self.resolved_at_first_contact / self.cases if self.cases else 0.0

    @property
    def deadline_kept_rate(self) -> float:
        return self.deadline_kept / self.deadline_judged if self.deadline_judged else 0.0

    @property
    def satisfaction_mean(self) -> float:
        return self.satisfaction_sum / self.satisfaction_answers if self.satisfaction_answers else 0.0


def _percentile(histogram: list[tuple[int, int]], fraction: float) -> float:
    """Nearest-rank percentile of minutes, in hours."""
    total = sum(n for _, n in histogram)
    if total == 0:
        return 0.0
    rank = max(1, -(-int(fraction * total * 1000) // 1000))
    seen = 0
    for minutes, n in sorted(histogram):
        seen += n
        if seen >= rank:
            return round(minutes / 60, 2)
    return round(sorted(histogram)[-1][0] / 60, 2)


def local_day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), STOCKHOLM).astimezone(UTC)


@dataclass(frozen=True)
class Statistics:
    dimensions: tuple[str, ...]
    rows: list[StatisticsRow]
    total: StatisticsRow


async def case_statistics(
    *, cases: Cases, caller: Caller, start: date, end: date, dimensions: Sequence[str]
) -> Statistics:
    caller.require_role(*STATISTICS)
    if end < start:
        raise InvalidArgument.field("end_date", "must not be before start_date")
    if (end - start).days > 3660:
        raise InvalidArgument.field("end_date", "the period may be at most ten years")
    if len(set(dimensions)) != len(dimensions):
        raise InvalidArgument.field("group_by", "names a dimension twice")
    for index, dimension in enumerate(dimensions):
        if dimension not in DIMENSION_COLUMNS:
            raise InvalidArgument.field(f"group_by[{index}]", "must be a dimension")
    begin, finish = local_day_start(start), local_day_start(end + timedelta(days=1))
    async with cases.uow(write=False) as uow:
        sums, minute_rows = await uow.cases.statistics_groups(start=begin, end=finish, dimensions=dimensions)
    width = len(dimensions)
    histograms = group_minutes(minute_rows, width)
    rows = []
    for row in sums:
        keys = tuple(_key(dimensions[i], row[i]) for i in range(width))
        raw_keys = tuple(str(row[i]) if row[i] is not None else "" for i in range(width))
        histogram = histograms.get(raw_keys, [])
        rows.append(_row(keys, row, histogram))
    rows.sort(key=lambda r: r.keys)
    all_minutes: dict[int, int] = {}
    for histogram in histograms.values():
        for minutes, n in histogram:
            all_minutes[minutes] = all_minutes.get(minutes, 0) + n
    total = StatisticsRow(
        keys=(),
        contacts=sum(r.contacts for r in rows),
        cases=sum(r.cases for r in rows),
        resolved_at_first_contact=sum(r.resolved_at_first_contact for r in rows),
        forwarded=sum(r.forwarded for r in rows),
        deadline_kept=sum(r.deadline_kept for r in rows),
        deadline_judged=sum(r.deadline_judged for r in rows),
        acute=sum(r.acute for r in rows),
        median_hours=_percentile(list(all_minutes.items()), 0.5),
        p90_hours=_percentile(list(all_minutes.items()), 0.9),
        satisfaction_sum=sum(r.satisfaction_sum for r in rows),
        satisfaction_answers=sum(r.satisfaction_answers for r in rows),
    )
    return Statistics(tuple(dimensions), rows, total)


def _key(dimension: str, value: Any) -> str:
    if value is None:
        return ""
    return f"districts/{value}" if dimension == "district" else str(value)


def _row(keys: tuple[str, ...], row: Any, histogram: list[tuple[int, int]]) -> StatisticsRow:
    return StatisticsRow(
        keys=keys,
        contacts=int(row.contacts),
        cases=int(row.cases),
        resolved_at_first_contact=int(row.fcr),
        forwarded=int(row.forwarded),
        deadline_kept=int(row.kept),
        deadline_judged=int(row.judged),
        acute=int(row.acute),
        median_hours=_percentile(histogram, 0.5),
        p90_hours=_percentile(histogram, 0.9),
        satisfaction_sum=int(row.satisfaction_sum),
        satisfaction_answers=int(row.satisfaction_answers),
    )


STATISTICS_COLUMNS = (
    "contacts",
    "cases",
    "resolved_at_first_contact",
    "first_contact_resolution_rate",
    "forwarded",
    "deadline_kept_rate",
    "acute",
    "median_working_hours_to_resolve",
    "p90_working_hours_to_resolve",
    "satisfaction_mean",
    "satisfaction_answers",
)


def statistics_csv(statistics: Statistics) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*statistics.dimensions, *STATISTICS_COLUMNS])
    for row in [*statistics.rows, replace(statistics.total, keys=("total",) * len(statistics.dimensions))]:
        writer.writerow(
            [
                *row.keys,
                row.contacts,
                row.cases,
                row.resolved_at_first_contact,
                f"{row.first_contact_resolution_rate:.4f}",
                row.forwarded,
                f"{row.deadline_kept_rate:.4f}",
                row.acute,
                f"{row.median_hours:.2f}",
                f"{row.p90_hours:.2f}",
                f"{row.satisfaction_mean:.2f}",
                row.satisfaction_answers,
            ]
        )
    return out.getvalue()


@dataclass(frozen=True)
class Billable:
    district: str
    unit: str
    contacts: int
    cases: int


def month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise InvalidArgument.field("month", f"{month!r} is not a month like 2026-03") from None
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return local_day_start(first), local_day_start(following)


async def count_billable_contacts(*, cases: Cases, caller: Caller, scope: str, month: str) -> list[Billable]:
    caller.require_role(*BILLING)
    start, end = month_bounds(month)
    unit_id = district_id = None
    if scope.startswith("units/") and len(scope) > 6:
        unit_id = scope[6:]
    elif scope.startswith("districts/") and len(scope) > 10:
        district_id = scope[10:]
    elif scope:
        raise InvalidArgument.field(
            "scope", f"{scope!r} is neither units/{{unit}} nor districts/{{district}}"
        )
    async with cases.uow(write=False) as uow:
        rows = await uow.cases.billable_contacts(
            start=start, end=end, unit_id=unit_id, district_id=district_id
        )
    return [
        Billable(
            district=f"districts/{r.district_id}" if r.district_id else "",
            unit=f"units/{r.unit_id}" if r.unit_id else "",
            contacts=int(r.contacts),
            cases=int(r.cases),
        )
        for r in rows
    ]


# ---- the citizen ------------------------------------------------------------------------------------------


async def list_my_cases(*, cases: Cases, caller: Caller, page: PageRequest) -> tuple[list[Case], str]:
    caller.require_role(Role.CITIZEN)
    if not caller.person_number:
        raise PermissionDenied("the token names no person", reason="NO_PERSON")
    async with cases.uow(write=False) as uow:
        found = await uow.cases.cases_of(caller.person_number, before_id=page.after, limit=page.size + 1)
    items = found[: page.size]
    await _log_reads(cases, caller, [caller.person_number], "ListMyCases", "Mina sidor")
    return items, page.next_token(items[-1].case_id if items else None, more=len(found) > page.size)


async def list_access_log(
    *, cases: Cases, caller: Caller, person_number: str, page: PageRequest
) -> tuple[list[AccessEntry], str]:
    caller.require_role(Role.AUDITOR, Role.CITIZEN)
    if caller.has_role(Role.AUDITOR):
        if not person_number:
            raise InvalidArgument.field("person_number", "is required")
        person = str(parse_person_number(person_number, field="person_number"))
    else:
        person = caller.person_number or ""
        if person_number and str(parse_person_number(person_number, field="person_number")) != person:
            raise PermissionDenied("a citizen may read the log of their own data only", reason="OTHER_PERSON")
    async with cases.uow(write=False) as uow:
        entries = await list_access(
            uow.conn, access_log, person_number=person, limit=page.size + 1, after_seq=page.after
        )
    items = entries[: page.size]
    await _log_reads(cases, caller, [person], "ListAccessLog", "access log")
    return items, page.next_token(items[-1].seq if items else None, more=len(entries) > page.size)
