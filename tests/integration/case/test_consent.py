"""Consent after the secrecy review, and the signed access grant that mirror and fees check against the case
service's published keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.case import handlers
from services.case.handlers import Cases, GrantedConsent
from services.case.model import ConsentGiver, EventKind, GrantScope
from services.common.auth import Caller, JwksSource, SigningKey
from services.common.errors import FailedPrecondition, NotFound, PermissionDenied
from services.common.grants import GrantIssuer, GrantVerifier
from tests.integration.case.support import SQLITE_ONLY, register
from tests.unit.case.builders import AGENT, ASTRID, BERTIL, OTHER_AGENT, Clock, citizen


@pytest.fixture
def verifier(cases: Cases, tmp_path: Path) -> GrantVerifier:
    """A verifier as mirror and fees build it, from the keys the case service publishes."""
    jwks = tmp_path / "case-grant-keys.json"
    jwks.write_text(cases.grant_jwks)
    return GrantVerifier(JwksSource(jwks), issuer=cases.grants.issuer)


async def consent(cases: Cases, case_id: int, *scopes: GrantScope) -> GrantedConsent:
    return await handlers.record_consent(
        cases=cases,
        caller=AGENT,
        case_id=case_id,
        given_by=ConsentGiver.PERSON,
        verification="BankID",
        scopes=list(scopes) or [GrantScope.DECISIONS, GrantScope.FEES],
    )


@pytest.fixture(autouse=True)
def real_time(clock: Clock) -> None:
    # Grants are checked against the real clock, as the services that receive them do.
    clock.set(datetime.now(UTC))


async def test_a_recorded_consent_gives_a_grant_for_the_agent_the_person_and_the_scopes(
    cases: Cases, verifier: GrantVerifier
) -> None:
    case = await register(cases)

    granted = await consent(cases, case.case_id, GrantScope.DECISIONS, GrantScope.FEES)

    grant = await verifier.require(granted.grant, caller=AGENT, person_number=ASTRID, scope="fees")
    assert grant is not None
    assert (grant.agent, grant.person_number, grant.case) == (AGENT.subject, ASTRID, case.name)
    assert grant.scopes == {"decisions", "fees"}
    assert grant.grant_id == granted.consent.name
    assert granted.consent.name == f"{case.name}/consents/{granted.consent.consent_id}"
    assert granted.expire_time == cases.clock() + timedelta(minutes=30)
    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=case.case_id)
    assert stored.events[-1].kind is EventKind.CONSENT_RECORDED


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("reader", "person", "scope", "reason"),
    [
        (OTHER_AGENT, ASTRID, "fees", "GRANT_NOT_YOURS"),
        (AGENT, BERTIL, "fees", "GRANT_OTHER_PERSON"),
        (AGENT, ASTRID, "invoices", "GRANT_SCOPE_MISSING"),
    ],
    ids=["another-agent", "another-person", "another-scope"],
)
async def test_a_grant_is_refused_for_anything_it_was_not_given_for(
    cases: Cases, verifier: GrantVerifier, reader: Caller, person: str, scope: str, reason: str
) -> None:
    case = await register(cases)
    granted = await consent(cases, case.case_id, GrantScope.DECISIONS, GrantScope.FEES)

    with pytest.raises(PermissionDenied) as refused:
        await verifier.require(granted.grant, caller=reader, person_number=person, scope=scope)

    assert refused.value.reason == reason


async def test_an_expired_grant_is_refused(cases: Cases, clock: Clock, verifier: GrantVerifier) -> None:
    case = await register(cases)
    clock.set(datetime.now(UTC) - timedelta(minutes=32))
    granted = await consent(cases, case.case_id)

    with pytest.raises(PermissionDenied) as refused:
        await verifier.require(granted.grant, caller=AGENT, person_number=ASTRID, scope="fees")

    assert refused.value.reason == "GRANT_INVALID"


@SQLITE_ONLY
async def test_a_grant_signed_by_another_key_is_refused(cases: Cases, verifier: GrantVerifier) -> None:
    forger = GrantIssuer(SigningKey.generate(), issuer=cases.grants.issuer)
    token, _ = forger.issue(
        grant_id="cases/1/consents/1",
        agent=AGENT.subject,
        person_number=ASTRID,
        case="cases/1",
        scopes=["fees"],
        now=datetime.now(UTC),
    )

    with pytest.raises(PermissionDenied) as refused:
        await verifier.require(token, caller=AGENT, person_number=ASTRID, scope="fees")

    assert refused.value.reason == "GRANT_INVALID"


@SQLITE_ONLY
async def test_a_citizen_reading_their_own_data_needs_no_grant(verifier: GrantVerifier) -> None:
    assert await verifier.require(None, caller=citizen(ASTRID), person_number=ASTRID, scope="fees") is None
    with pytest.raises(PermissionDenied):
        await verifier.require(None, caller=citizen(ASTRID), person_number=BERTIL, scope="fees")


async def test_an_anonymous_case_takes_no_consent(cases: Cases) -> None:
    case = await register(cases, person=None)

    with pytest.raises(FailedPrecondition) as refused:
        await consent(cases, case.case_id)

    assert refused.value.reason == "CASE_ANONYMOUS"


async def test_a_revoked_consent_is_marked_revoked_and_stays_so(cases: Cases, clock: Clock) -> None:
    case = await register(cases)
    granted = await consent(cases, case.case_id)
    clock.advance(minutes=3)

    revoked = await handlers.revoke_consent(
        cases=cases, caller=AGENT, case_id=case.case_id, consent_id=granted.consent.consent_id
    )
    revoked_at = clock.now
    clock.advance(minutes=1)
    again = await handlers.revoke_consent(
        cases=cases, caller=AGENT, case_id=case.case_id, consent_id=granted.consent.consent_id
    )

    assert revoked.revoke_time == revoked_at
    assert again.revoke_time == revoked_at
    stored = await handlers.get_case(cases=cases, caller=AGENT, case_id=case.case_id)
    assert [e.kind for e in stored.events][-2:] == [EventKind.CONSENT_RECORDED, EventKind.CONSENT_REVOKED]
    with pytest.raises(NotFound):
        await handlers.revoke_consent(cases=cases, caller=AGENT, case_id=case.case_id, consent_id=999)
