"""The case service as a running server, routed by the running directory, called through the generated
client."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from aldredirekt.case.v1 import case_pb2 as pb
from aldredirekt.common.v1 import access_log_pb2 as apb
from aldredirekt.directory.v1 import directory_pb2 as dpb
from google.type import date_pb2
from sqlalchemy import Table, func, select

from services.case.handlers import escalate_overdue
from services.case.model import forward_deadline
from services.case.store import cases as cases_table
from services.case.store import outbox
from services.common.auth import Caller, JwksSource, Role
from services.common.business_calendar import to_local
from services.common.grants import GrantVerifier
from synthcity.city import Role as OfficerRole
from tests.e2e.case.conftest import Stack
from tests.e2e.case.delivery import delivered, nothing_more_is_sent
from tests.integration.case.support import smtp_sink
from tests.person_numbers import with_wrong_check_digit
from tests.rich_errors import field_violations, reason_of
from tests.unit.case.builders import ASTRID, BERTIL

FARSTA_UNIT = "units/farsta-bestallarenhet"
SUMMARY = "Astrid ringer: hemtjänsten har inte kommit på två dagar."


def new_case(**changes: object) -> pb.Case:
    values: dict[str, object] = {
        "category": "aldreomsorg",
        "case_type": "hemtjanst",
        "case_class": "status-pa-anmalan-arende",
        "district": "districts/farsta",
        "person_number": ASTRID,
        "feedback_channel": pb.FEEDBACK_CHANNEL_PHONE,
    }
    return pb.Case(**(values | changes))  # type: ignore[arg-type]


def first_contact(**changes: object) -> pb.Contact:
    values: dict[str, object] = {
        "channel": pb.CHANNEL_PHONE,
        "party": pb.CONTACT_PARTY_SELF,
        "summary": SUMMARY,
    }
    return pb.Contact(**(values | changes))  # type: ignore[arg-type]


async def create(stack: Stack, request_id: str = "", **changes: Any) -> pb.Case:
    answer = await stack.stub.CreateCase(
        pb.CreateCaseRequest(case=new_case(**changes), contact=first_contact(), request_id=request_id),
        metadata=stack.auth("agent", subject="agent-anna"),
    )
    case: pb.Case = answer.case
    return case


async def count(stack: Stack, table: Table) -> int:
    async with stack.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_a_contact_becomes_a_case_that_the_directorys_unit_answers(any_stack: Stack) -> None:
    stack = any_stack
    agent = stack.auth("agent", subject="agent-anna")
    officer = stack.auth("officer", subject="officer-olle", unit=FARSTA_UNIT)
    colleague = next(
        o
        for o in stack.city.officers_of("farsta-bestallarenhet")
        if o.active and o.role is OfficerRole.ORDINARY_HOUSING
    )
    created = await create(stack)

    with smtp_sink(stack.settings.smtp.port) as mailbox:
        forwarded = (
            await stack.stub.ForwardCase(
                pb.ForwardCaseRequest(name=created.name, postal_code="123 14", note="Ring dottern."),
                metadata=agent,
            )
        ).case
        await delivered(stack, mailbox, 1)
        await nothing_more_is_sent(stack)
    expected = await stack.directory_stub.ResolveResponsible(
        dpb.ResolveResponsibleRequest(
            person_number=ASTRID, district="districts/farsta", postal_code="12314", purpose=created.name
        ),
        metadata=agent,
    )
    queue = await stack.stub.ListUnitQueue(pb.ListUnitQueueRequest(unit=FARSTA_UNIT), metadata=officer)
    await stack.stub.AcknowledgeCase(pb.AcknowledgeCaseRequest(name=created.name), metadata=officer)
    await stack.stub.AssignCase(
        pb.AssignCaseRequest(name=created.name, officer=f"officers/{colleague.officer_id}"), metadata=officer
    )
    answered = (
        await stack.stub.RecordFeedback(
            pb.RecordFeedbackRequest(name=created.name, channel=pb.FEEDBACK_CHANNEL_PHONE, note="Ringde."),
            metadata=officer,
        )
    ).case
    person = stack.auth("citizen", person_number=ASTRID)
    mine = (await stack.stub.ListMyCases(pb.ListMyCasesRequest(), metadata=person)).cases
    rated = (
        await stack.stub.RecordSatisfaction(
            pb.RecordSatisfactionRequest(name=created.name, score=5), metadata=person
        )
    ).case
    log = await stack.access_log_stub.ListAccessLog(
        apb.ListAccessLogRequest(person_number=ASTRID), metadata=stack.auth("auditor", subject="auditor-ida")
    )

    assert created.person_number == ASTRID
    assert created.status == pb.CASE_STATUS_OPEN
    assert forwarded.status == pb.CASE_STATUS_FORWARDED
    assert forwarded.unit == expected.unit.name == FARSTA_UNIT
    assert forwarded.officer == expected.officer.name
    assert forwarded.officer.startswith("officers/")
    forwarded_at = forwarded.events[-1].time.ToDatetime(tzinfo=UTC)
    assert forwarded.deadline.ToDatetime(tzinfo=UTC) == forward_deadline(forwarded_at, acute=False)
    [mail] = mailbox.messages
    assert mail["To"] == expected.unit.mailbox
    assert ASTRID not in mail.as_string()
    assert SUMMARY not in mail.as_string()
    assert [c.name for c in queue.cases] == [created.name]
    assert answered.status == pb.CASE_STATUS_CLOSED
    assert answered.officer == f"officers/{colleague.officer_id}"
    assert [e.kind for e in answered.events] == [
        pb.EVENT_KIND_CREATED,
        pb.EVENT_KIND_FORWARDED,
        pb.EVENT_KIND_ACKNOWLEDGED,
        pb.EVENT_KIND_ASSIGNED,
        pb.EVENT_KIND_FEEDBACK,
        pb.EVENT_KIND_CLOSED,
    ]
    assert [(c.name, c.status, c.next_step) for c in mine] == [
        (created.name, pb.CASE_STATUS_CLOSED, "Ärendet är avslutat.")
    ]
    assert rated.satisfaction == 5
    # Newest first: every read of Astrid's data, by whom.
    assert [(e.action, e.actor) for e in log.entries] == [
        ("case.RecordSatisfaction", "dev-citizen"),
        ("case.ListMyCases", "dev-citizen"),
        ("case.RecordFeedback", "officer-olle"),
        ("case.AssignCase", "officer-olle"),
        ("case.AcknowledgeCase", "officer-olle"),
        ("case.ListUnitQueue", "officer-olle"),
        ("case.ForwardCase", "agent-anna"),
    ]
    assert {e.service for e in log.entries} == {"case"}


async def test_reference_data_is_read_from_the_database(stack: Stack) -> None:
    answer = await stack.stub.ListReferenceData(pb.ListReferenceDataRequest(), metadata=stack.auth("agent"))

    assert [c.id for c in answer.categories] == ["aldreomsorg"]
    assert len(answer.case_types) == 18
    assert ("boende", "Boende") in [(t.id, t.label) for t in answer.case_types]
    assert [c.label for c in answer.case_classes] == [
        "Information och vägledning",
        "Ny ansökan",
        "Status på anmälan/ärende",
        "Synpunkter central förvaltning",
        "Synpunkter utförarverksamheter",
    ]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"person_number": with_wrong_check_digit(ASTRID)}, "case.person_number"),
        ({"district": "districts/gamla-stan"}, "case.district"),
        ({"case_type": "snoskottning"}, "case.case_type"),
        ({"anonymous": True}, "case.person_number"),
    ],
    ids=["bad-check-digit", "unknown-district", "unknown-type", "anonymous-with-number"],
)
async def test_a_bad_registration_is_refused_naming_the_field(
    stack: Stack, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(stack, **changes)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == [field]
    assert await count(stack, cases_table) == 0


async def test_a_person_number_given_in_ten_digits_is_stored_in_twelve(stack: Stack) -> None:
    created = await create(stack, person_number=f"{ASTRID[2:8]}-{ASTRID[8:]}")

    read = (await stack.stub.GetCase(pb.GetCaseRequest(name=created.name), metadata=stack.auth("agent"))).case

    assert created.person_number == read.person_number == ASTRID


async def test_a_case_in_a_retired_district_belongs_to_its_successor(stack: Stack) -> None:
    created = await create(stack, district="districts/spanga-tensta")

    assert created.district == "districts/jarva"


async def test_a_housing_case_goes_to_a_special_housing_officer(stack: Stack) -> None:
    created = await create(stack, case_type="boende")

    forwarded = (
        await stack.stub.ForwardCase(pb.ForwardCaseRequest(name=created.name), metadata=stack.auth("agent"))
    ).case

    officer = stack.city.officer(forwarded.officer.removeprefix("officers/"))
    assert officer.role is OfficerRole.SPECIAL_HOUSING
    assert officer.unit_id == "farsta-bestallarenhet"


async def test_a_retried_command_gets_its_first_answer_and_writes_nothing_more(stack: Stack) -> None:
    agent = stack.auth("agent", subject="agent-anna")
    first = await create(stack, request_id="create-7f3a")
    again = await create(stack, request_id="create-7f3a")
    forward = pb.ForwardCaseRequest(name=first.name, note="Brådskande.", request_id="forward-7f3a")
    forwarded = await stack.stub.ForwardCase(forward, metadata=agent)
    forwarded_again = await stack.stub.ForwardCase(forward, metadata=agent)

    assert again == first
    assert forwarded_again == forwarded
    assert await count(stack, cases_table) == 1
    assert await count(stack, outbox) == 1


async def test_a_request_id_reused_for_another_request_is_refused(stack: Stack) -> None:
    await create(stack, request_id="create-7f3a")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(stack, request_id="create-7f3a", case_type="trygghetslarm")

    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason_of(refused.value) == "IDEMPOTENCY_KEY_REUSED"
    assert await count(stack, cases_table) == 1


async def test_a_citizen_cannot_tell_someone_elses_case_from_a_missing_one(stack: Stack) -> None:
    someone_elses = await create(stack, person_number=BERTIL)
    missing = someone_elses.name.replace("cases/", "cases/9")
    person = stack.auth("citizen", person_number=ASTRID)

    refusals = []
    for name in (someone_elses.name, missing):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.stub.GetCase(pb.GetCaseRequest(name=name), metadata=person)
        refusals.append(
            (
                refused.value.code(),
                (refused.value.details() or "").replace(name, "<name>"),
                reason_of(refused.value),
            )
        )

    assert refusals[0] == refusals[1]
    assert refusals[0][0] == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("who", "reason"),
    [
        ({"role": "agent"}, "ROLE_NOT_ALLOWED"),
        ({"role": "officer", "unit": "units/bromma-bestallarenhet"}, "OTHER_UNIT"),
    ],
    ids=["agent", "other-unit-officer"],
)
async def test_a_units_queue_is_closed_to_everyone_but_its_staff(
    stack: Stack, who: dict[str, str], reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.ListUnitQueue(pb.ListUnitQueueRequest(unit=FARSTA_UNIT), metadata=stack.auth(**who))

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == reason


async def test_agents_do_not_read_the_access_log(stack: Stack) -> None:
    await create(stack)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.access_log_stub.ListAccessLog(
            apb.ListAccessLogRequest(person_number=ASTRID), metadata=stack.auth("agent")
        )

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == "ROLE_NOT_ALLOWED"


async def test_a_citizen_reads_who_has_read_their_data_and_nobody_elses(stack: Stack) -> None:
    created = await create(stack)
    await stack.stub.GetCase(pb.GetCaseRequest(name=created.name), metadata=stack.auth("agent", subject="a1"))
    person = stack.auth("citizen", person_number=ASTRID)

    own = await stack.access_log_stub.ListAccessLog(apb.ListAccessLogRequest(), metadata=person)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.access_log_stub.ListAccessLog(
            apb.ListAccessLogRequest(person_number=BERTIL), metadata=person
        )

    assert [(e.action, e.actor) for e in own.entries] == [("case.GetCase", "a1")]
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == "OTHER_PERSON"


async def test_a_consent_grant_verifies_against_the_published_keys(stack: Stack, tmp_path: Path) -> None:
    agent = stack.auth("agent", subject="agent-anna")
    created = await create(stack)
    granted = await stack.stub.RecordConsent(
        pb.RecordConsentRequest(
            parent=created.name,
            consent=pb.Consent(
                given_by=pb.CONSENT_GIVER_PERSON,
                verification="BankID",
                scopes=[pb.GRANT_SCOPE_FEES, pb.GRANT_SCOPE_INVOICES],
            ),
        ),
        metadata=agent,
    )
    keys = await stack.stub.GetGrantKeys(pb.GetGrantKeysRequest(), metadata=agent)
    jwks = tmp_path / "grant-keys.json"
    jwks.write_text(keys.jwks_json)
    verifier = GrantVerifier(JwksSource(jwks), issuer=keys.issuer)
    holder = Caller(
        subject="agent-anna", roles=frozenset({Role.AGENT}), unit=None, person_number=None, token=""
    )

    grant = await verifier.require(
        granted.access_grant, caller=holder, person_number=ASTRID, scope="invoices"
    )

    assert grant is not None
    assert grant.case == created.name
    assert grant.scopes == {"fees", "invoices"}
    assert [k["kid"] for k in json.loads(keys.jwks_json)["keys"]] != []
    revoked = await stack.stub.RevokeConsent(
        pb.RevokeConsentRequest(name=granted.consent.name), metadata=agent
    )
    assert revoked.consent.HasField("revoke_time")


async def test_an_overdue_case_is_escalated_to_the_managers_the_directory_names(stack: Stack) -> None:
    agent = stack.auth("agent")
    created = await create(stack, district="districts/bromma", acute=True)
    managers = sorted(
        o.email
        for o in stack.city.officers_of("bromma-bestallarenhet")
        if o.active and o.role is OfficerRole.UNIT_MANAGER
    )
    with smtp_sink(stack.settings.smtp.port) as mailbox:
        forwarded = (
            await stack.stub.ForwardCase(pb.ForwardCaseRequest(name=created.name), metadata=agent)
        ).case
        await delivered(stack, mailbox, 1)  # the forward's notice
        # The overdue job and the outbox run on the service's own clock; a week later the acute deadline has
        # long passed.
        week_later = forwarded.deadline.ToDatetime(tzinfo=UTC) + timedelta(days=7)
        stack.mail_clock.skip(seconds=(week_later - stack.mail_clock()).total_seconds())

        escalated = [await escalate_overdue(cases=stack.cases), await escalate_overdue(cases=stack.cases)]
        overdue = await stack.stub.ListOverdueCases(
            pb.ListOverdueCasesRequest(unit="units/bromma-bestallarenhet"),
            metadata=stack.auth("unit_manager", unit="units/bromma-bestallarenhet"),
        )
        await delivered(stack, mailbox, 2)
        await nothing_more_is_sent(stack)

    assert escalated == [1, 0]
    assert [c.name for c in overdue.cases] == [created.name]
    assert overdue.cases[0].overdue is True
    [escalation] = [m for m in mailbox.messages if "tidsfrist" in m["Subject"]]
    assert sorted(a.strip() for a in escalation["To"].split(",")) == managers


async def test_statistics_and_billing_are_served_with_csv(stack: Stack) -> None:
    agent = stack.auth("agent")
    answered = await create(stack)
    await stack.stub.AddContact(
        pb.AddContactRequest(name=answered.name, contact=first_contact(summary="Ringer igen.")),
        metadata=agent,
    )
    await stack.stub.ResolveCase(
        pb.ResolveCaseRequest(name=answered.name, resolution="Svar."), metadata=agent
    )
    at_once = await create(stack, case_type="trygghetslarm")
    await stack.stub.ResolveCase(pb.ResolveCaseRequest(name=at_once.name, resolution="Svar."), metadata=agent)
    created = to_local(answered.create_time.ToDatetime(tzinfo=UTC)).date()
    start, end = created - timedelta(days=1), created

    statistics = await stack.stub.GetCaseStatistics(
        pb.GetCaseStatisticsRequest(
            start_date=date_pb2.Date(year=start.year, month=start.month, day=start.day),
            end_date=date_pb2.Date(year=end.year, month=end.month, day=end.day),
            group_by=[pb.STATISTICS_DIMENSION_CASE_TYPE],
            include_csv=True,
        ),
        metadata=stack.auth("auditor"),
    )
    billable = await stack.stub.CountBillableContacts(
        pb.CountBillableContactsRequest(scope="districts/farsta", month=f"{created:%Y-%m}"),
        metadata=stack.auth("finance"),
    )

    assert [(list(r.keys), r.contacts, r.cases, r.resolved_at_first_contact) for r in statistics.rows] == [
        (["hemtjanst"], 2, 1, 0),
        (["trygghetslarm"], 1, 1, 1),
    ]
    assert (statistics.total.cases, statistics.total.first_contact_resolution_rate) == (2, 0.5)
    lines = statistics.csv.splitlines()
    assert lines[0].startswith("case_type,contacts,cases,")
    assert [line.split(",")[0] for line in lines[1:]] == ["hemtjanst", "trygghetslarm", "total"]
    assert [(c.district, c.unit, c.contacts, c.cases) for c in billable.counts] == [
        ("districts/farsta", "", 3, 2)
    ]


def statistics_request(**changes: Any) -> pb.GetCaseStatisticsRequest:
    values: dict[str, Any] = {
        "start_date": date_pb2.Date(year=2026, month=11, day=1),
        "end_date": date_pb2.Date(year=2026, month=12, day=31),
    }
    return pb.GetCaseStatisticsRequest(**(values | changes))


@pytest.mark.parametrize(
    "who",
    [{"role": "citizen", "person_number": BERTIL}, {"role": "officer", "unit": FARSTA_UNIT}],
    ids=["citizen", "officer"],
)
async def test_citizens_and_officers_get_no_statistics(stack: Stack, who: dict[str, str]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.GetCaseStatistics(statistics_request(), metadata=stack.auth(**who))

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == "ROLE_NOT_ALLOWED"


async def test_a_statistics_dimension_that_is_none_is_refused_naming_it(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.GetCaseStatistics(
            statistics_request(group_by=[pb.STATISTICS_DIMENSION_UNSPECIFIED]), metadata=stack.auth("auditor")
        )

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == ["group_by[0]"]


@pytest.mark.parametrize(
    ("scope", "month", "field"), [("", "2026-13", "month"), ("bromma", "2026-12", "scope")]
)
async def test_a_bad_billing_question_is_refused_naming_the_field(
    stack: Stack, scope: str, month: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.CountBillableContacts(
            pb.CountBillableContactsRequest(scope=scope, month=month), metadata=stack.auth("finance")
        )

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == [field]


async def test_agents_do_not_count_billable_contacts(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.CountBillableContacts(
            pb.CountBillableContactsRequest(month="2026-12"), metadata=stack.auth("agent")
        )

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == "ROLE_NOT_ALLOWED"
