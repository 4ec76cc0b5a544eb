"""Consent after the secrecy review, and the short-lived access grant it gives the agent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from services.case import model
from services.case.handlers.cases import Cases, load_for_update
from services.case.model import CaseStatus, Consent, ConsentGiver, GrantScope
from services.common.auth import Caller
from services.common.db import Idempotency
from services.common.errors import FailedPrecondition, FieldViolation, NotFound


@dataclass(frozen=True)
class GrantedConsent:
    consent: Consent
    grant: str
    expire_time: datetime


async def record_consent(
    *,
    cases: Cases,
    caller: Caller,
    case_id: int,
    given_by: ConsentGiver | None,
    verification: str,
    scopes: Sequence[GrantScope],
    idempotency: Idempotency | None = None,
) -> GrantedConsent:
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
        before = await load_for_update(uow, case_id)
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


async def revoke_consent(
    *, cases: Cases, caller: Caller, case_id: int, consent_id: int, idempotency: Idempotency | None = None
) -> Consent:
    now = cases.clock()
    async with cases.uow(idempotency=idempotency) as uow:
        consent = await uow.cases.get_consent(case_id, consent_id)
        if consent is None:
            raise NotFound(f"cases/{case_id}/consents/{consent_id}")
        if consent.revoke_time is not None:
            await uow.commit(consent)
            return consent
        before = await load_for_update(uow, case_id)
        revoked = await uow.cases.revoke_consent(consent, now)
        event = model.Event(model.EventKind.CONSENT_REVOKED, now, caller.subject, consent.name)
        await uow.cases.save(before, replace(before, events=(*before.events, event), update_time=now))
        await uow.commit(revoked)
    return revoked
