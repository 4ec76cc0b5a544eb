"""Reading a person from the mirror as agents, citizens and operators do, and as a hostile client would:
grants (missing, expired, another agent's, another person's, forged, a scope not granted), what a district's
agreement withholds, protected identity, the citizen's own read, a person no source knows, invoices by OCR,
routing, and the access log of every read.

One mirror, synced once, serves the whole module: the reads change nothing but the access log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aldredirekt.common.v1 import access_log_pb2
from aldredirekt.mirror.v1 import mirror_pb2

from services.common.auth import SigningKey
from services.common.grants import GRANT_METADATA_KEY
from synthcity.care import CareRecord
from tests.e2e.mirror.conftest import AGENT, MODULE_LOOP, MirrorStack, person_with, start_mirror
from tests.person_numbers import person_number, with_wrong_check_digit
from tests.rich_errors import field_violations, reason_of, refused
from upstreams import Running as Upstreams

pytestmark = MODULE_LOOP

Section = mirror_pb2.Section


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mirror(served: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MirrorStack]:
    folder: Path = tmp_path_factory.mktemp("mirror-reads")
    running = await start_mirror(folder, served, f"sqlite+aiosqlite:///{folder / 'm.db'}", run_sync=False)
    await running.sync()
    yield running
    await running.close()


def someone(mirror: MirrorStack, district: str = "bromma") -> CareRecord:
    """A person of the district with current decisions, a fee basis and invoices, no protected identity."""
    invoiced = {i.person_number for i in mirror.care.invoices}
    return person_with(
        mirror.care,
        lambda r: (
            r.district_id == district
            and r.current_decisions
            and r.fee_basis is not None
            and not r.protected_identity
            and r.person_number in invoiced
            and r.person_number not in mirror.care.moved_from
        ),
    )


def citizen(mirror: MirrorStack, person: str) -> tuple[tuple[str, str], ...]:
    return mirror.auth("citizen", subject=f"citizen-{person[-4:]}", person_number=person)


async def test_an_agent_with_a_grant_sees_the_person_across_districts_with_each_sources_freshness(
    mirror: MirrorStack,
) -> None:
    record = someone(mirror)
    overview = await mirror.overview(record.person_number, purpose="Frågar om sin hemtjänst")
    assert overview.found
    assert list(overview.home_districts) == ["districts/bromma"]
    assert overview.identity.family_name == record.family_name
    assert {d.decision_id for d in overview.decisions} == {d.decision_id for d in record.current_decisions}
    assert {p.provider_id for p in overview.providers} <= {p.provider_id for p in record.providers}
    assert record.fee_basis is not None
    assert overview.fee_bases[0].decided_fee.ore == record.fee_basis.decided_fee_ore
    assert overview.responsible_officer.district == "districts/bromma"
    assert {i.ocr for i in overview.invoices} == {
        i.ocr for i in mirror.care.invoices if i.person_number == record.person_number
    }
    assert len(overview.sources) == 12
    assert all(s.state == mirror_pb2.SOURCE_STATE_OK and not s.stale for s in overview.sources)
    assert not overview.withheld


async def test_an_agent_may_ask_for_some_sections_only(mirror: MirrorStack) -> None:
    record = someone(mirror)
    overview = await mirror.overview(
        record.person_number, sections=[Section.SECTION_DECISIONS, Section.SECTION_OFFICER]
    )
    assert overview.decisions
    assert overview.responsible_officer.officer
    assert not overview.invoices
    assert not overview.fee_bases
    assert not overview.identity.family_name


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "GRANT_REQUIRED"),
        ("expired", "GRANT_INVALID"),
        ("another agent's", "GRANT_NOT_YOURS"),
        ("another person's", "GRANT_OTHER_PERSON"),
        ("forged", "GRANT_INVALID"),
        ("garbage", "GRANT_INVALID"),
    ],
)
async def test_a_read_without_a_valid_grant_of_ones_own_for_the_person_is_refused(
    mirror: MirrorStack, case: str, reason: str
) -> None:
    record = someone(mirror)
    person = record.person_number
    other = someone(mirror, "farsta").person_number
    grants = {
        "missing": None,
        "expired": mirror.grant(
            person, issued=datetime.now(UTC) - timedelta(hours=2), lifetime=timedelta(minutes=30)
        ),
        "another agent's": mirror.grant(person, agent="agent-bertil"),
        "another person's": mirror.grant(other),
        "forged": _forged_grant(mirror, person),
        "garbage": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    }
    metadata = mirror.auth("agent", subject=AGENT)
    grant = grants[case]
    if grant is not None:
        metadata = (*metadata, (GRANT_METADATA_KEY, grant))
    for call in (
        mirror.stub.GetPersonOverview(
            mirror_pb2.GetPersonOverviewRequest(person_number=person), metadata=metadata
        ),
        mirror.stub.ListInvoices(mirror_pb2.ListInvoicesRequest(person_number=person), metadata=metadata),
        mirror.stub.RefreshPerson(mirror_pb2.RefreshPersonRequest(person_number=person), metadata=metadata),
    ):
        error = await refused(call)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason_of(error) == reason
        assert person not in (error.details() or "")


def _forged_grant(mirror: MirrorStack, person: str) -> str:
    """A grant in the right shape, signed by a key the case service never published."""
    from services.common.grants import GrantIssuer

    token, _ = GrantIssuer(SigningKey.generate(), issuer="aldredirekt-case").issue(
        grant_id="forged",
        agent=AGENT,
        person_number=person,
        case="cases/26-000001",
        scopes=["decisions", "fees", "invoices"],
        now=datetime.now(UTC),
    )
    return token


async def test_a_scope_not_granted_is_withheld_and_said_so(mirror: MirrorStack) -> None:
    record = someone(mirror)
    person = record.person_number
    metadata = mirror.agent_reading(person, scopes=["decisions"])
    overview = await mirror.overview(person, metadata)
    assert overview.decisions
    assert not overview.fee_bases
    assert not overview.invoices
    assert not overview.providers
    withheld = {(w.section, w.reason) for w in overview.withheld}
    for section in (Section.SECTION_FEE_BASIS, Section.SECTION_INVOICES, Section.SECTION_PROVIDERS):
        assert (section, "SCOPE_NOT_GRANTED") in withheld
    error = await refused(
        mirror.stub.ListInvoices(mirror_pb2.ListInvoicesRequest(person_number=person), metadata=metadata)
    )
    assert (error.code(), reason_of(error)) == (grpc.StatusCode.PERMISSION_DENIED, "GRANT_SCOPE_MISSING")


async def test_a_district_whose_agreement_leaves_the_fee_basis_out_has_it_withheld_with_the_reason(
    mirror: MirrorStack,
) -> None:
    record = someone(mirror, "skarholmen")
    overview = await mirror.overview(record.person_number)
    assert overview.decisions
    assert not overview.fee_bases
    [withheld] = [w for w in overview.withheld if w.section == Section.SECTION_FEE_BASIS]
    assert (withheld.district, withheld.reason) == ("districts/skarholmen", "NOT_IN_AGREEMENT")
    assert "agreement" in withheld.description
    # The agent is told where the fact is kept.
    assert "skarholmen" in overview.summary
    agreements = await mirror.stub.ListAgreements(
        mirror_pb2.ListAgreementsRequest(), metadata=mirror.auth("agent", subject=AGENT)
    )
    skarholmen = next(a for a in agreements.agreements if a.district == "districts/skarholmen")
    assert Section.SECTION_FEE_BASIS not in skarholmen.sections
    assert skarholmen.in_force


async def test_name_and_address_of_a_person_with_protected_identity_never_leave_the_mirror(
    mirror: MirrorStack,
) -> None:
    record = person_with(mirror.care, lambda r: r.protected_identity and r.current_decisions)
    person = record.person_number
    overview = await mirror.overview(person)
    assert overview.identity.protected_identity
    assert (
        overview.identity.given_name,
        overview.identity.family_name,
        overview.identity.street_address,
    ) == (
        "",
        "",
        "",
    )
    assert record.family_name not in str(overview)
    assert record.street not in str(overview)
    assert any(w.reason == "PROTECTED_IDENTITY" for w in overview.withheld)
    # The routing of a forward does not give the postal code away either.
    routing = await mirror.stub.GetRouting(
        mirror_pb2.GetRoutingRequest(person_number=person, purpose="cases/26-000009"),
        metadata=mirror.auth("agent", subject=AGENT),
    )
    assert routing.found
    assert routing.postal_code == ""
    # The attempt is in the access log.
    log = await mirror.access_stub.ListAccessLog(
        access_log_pb2.ListAccessLogRequest(person_number=person), metadata=citizen(mirror, person)
    )
    assert any("protected" in entry.action for entry in log.entries)


async def test_a_citizen_reads_their_own_data_without_a_grant_and_nobody_elses(mirror: MirrorStack) -> None:
    record = someone(mirror)
    person = record.person_number
    own = await mirror.overview(person, citizen(mirror, person))
    assert own.found
    assert own.decisions
    assert own.invoices
    invoice = own.invoices[0]
    found = await mirror.stub.FindInvoice(
        mirror_pb2.FindInvoiceRequest(ocr=invoice.ocr), metadata=citizen(mirror, person)
    )
    assert found.invoice.invoice_number == invoice.invoice_number

    other = someone(mirror, "farsta")
    error = await refused(
        mirror.stub.GetPersonOverview(
            mirror_pb2.GetPersonOverviewRequest(person_number=other.person_number),
            metadata=citizen(mirror, person),
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    other_ocr = next(i.ocr for i in mirror.care.invoices if i.person_number == other.person_number)
    error = await refused(
        mirror.stub.FindInvoice(
            mirror_pb2.FindInvoiceRequest(ocr=other_ocr), metadata=citizen(mirror, person)
        )
    )
    assert (error.code(), reason_of(error)) == (grpc.StatusCode.PERMISSION_DENIED, "INVOICE_NOT_COVERED")


async def test_a_person_no_source_knows_is_an_answer_not_an_error(mirror: MirrorStack) -> None:
    known = {r.person_number for r in mirror.care.records} | {i.person_number for i in mirror.care.invoices}
    person = next(
        p
        for p in (person_number(date(1930 + n, 5, 17), serial=f"{n + 1:03d}") for n in range(100))
        if p not in known
    )
    overview = await mirror.overview(person, purpose="Anhörig frågar om ansökan")
    assert not overview.found
    assert not overview.home_districts
    assert "Ingen uppgift" in overview.summary
    routing = await mirror.stub.GetRouting(
        mirror_pb2.GetRoutingRequest(person_number=person, purpose="cases/26-000010"),
        metadata=mirror.auth("agent", subject=AGENT),
    )
    assert not routing.found
    assert not routing.district


async def test_an_ocr_of_someone_the_grant_does_not_cover_is_refused_as_an_unknown_one_is(
    mirror: MirrorStack,
) -> None:
    record = someone(mirror)
    person = record.person_number
    metadata = mirror.agent_reading(person)
    own = next(i for i in mirror.care.invoices if i.person_number == person)
    found = await mirror.stub.FindInvoice(mirror_pb2.FindInvoiceRequest(ocr=own.ocr), metadata=metadata)
    assert found.invoice.ocr == own.ocr
    assert found.source.source == "agresso"
    by_number = await mirror.stub.FindInvoice(
        mirror_pb2.FindInvoiceRequest(invoice_number=found.invoice.invoice_number), metadata=metadata
    )
    assert by_number.invoice.ocr == own.ocr

    others = next(i for i in mirror.care.invoices if i.person_number != person)
    unknown = _unused_ocr(mirror)
    answers = []
    for ocr in (others.ocr, unknown):
        error = await refused(
            mirror.stub.FindInvoice(mirror_pb2.FindInvoiceRequest(ocr=ocr), metadata=metadata)
        )
        answers.append((error.code(), reason_of(error), error.details()))
        assert others.person_number not in (error.details() or "")
    assert answers[0] == answers[1], "the refusal must not tell an unknown OCR from another person's"
    assert answers[0][1] == "INVOICE_NOT_COVERED"


def _unused_ocr(mirror: MirrorStack) -> str:
    from services.common.ocr import generate_ocr

    used = {i.ocr for i in mirror.care.invoices}
    return next(o for o in (generate_ocr(str(900_000_000 + n)) for n in range(100)) if o not in used)


async def test_an_ocr_with_a_wrong_check_digit_is_refused_naming_the_field(mirror: MirrorStack) -> None:
    record = someone(mirror)
    ocr = next(i.ocr for i in mirror.care.invoices if i.person_number == record.person_number)
    broken = ocr[:-1] + str((int(ocr[-1]) + 1) % 10)
    error = await refused(
        mirror.stub.FindInvoice(
            mirror_pb2.FindInvoiceRequest(ocr=broken), metadata=mirror.agent_reading(record.person_number)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["ocr"]


async def test_invoices_come_in_pages_and_a_page_token_serves_only_its_own_person(
    mirror: MirrorStack,
) -> None:
    record = someone(mirror)
    person = record.person_number
    metadata = mirror.agent_reading(person)
    expected = sum(1 for i in mirror.care.invoices if i.person_number == person)
    seen: list[str] = []
    token = ""
    while True:
        page = await mirror.stub.ListInvoices(
            mirror_pb2.ListInvoicesRequest(person_number=person, page_size=5, page_token=token),
            metadata=metadata,
        )
        seen += [i.ocr for i in page.invoices]
        token = page.next_page_token
        if not token:
            break
        carried = token
    assert len(seen) == len(set(seen)) == expected > 5
    other = someone(mirror, "farsta").person_number
    error = await refused(
        mirror.stub.ListInvoices(
            mirror_pb2.ListInvoicesRequest(person_number=other, page_size=5, page_token=carried),
            metadata=mirror.agent_reading(other),
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["page_token"]
    tampered = carried[:-3] + ("AAA" if not carried.endswith("AAA") else "BBB")
    error = await refused(
        mirror.stub.ListInvoices(
            mirror_pb2.ListInvoicesRequest(person_number=person, page_size=5, page_token=tampered),
            metadata=metadata,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == ["page_token"]


async def test_routing_for_a_forward_gives_district_officer_and_postal_code_only_and_is_logged(
    mirror: MirrorStack,
) -> None:
    record = someone(mirror)
    person = record.person_number
    routing = await mirror.stub.GetRouting(
        mirror_pb2.GetRoutingRequest(person_number=person, purpose="cases/26-000011"),
        metadata=mirror.auth("agent", subject=AGENT),
    )
    assert routing.found
    assert routing.district == "districts/bromma"
    assert routing.named_officer == (
        f"officers/{record.responsible_officer.officer_id}" if record.responsible_officer.officer_id else ""
    )
    assert routing.postal_code == record.postal_code
    assert routing.source.source == "paraply-bromma"
    # Without a purpose there is nothing to log it under: refused.
    error = await refused(
        mirror.stub.GetRouting(
            mirror_pb2.GetRoutingRequest(person_number=person), metadata=mirror.auth("agent", subject=AGENT)
        )
    )
    assert field_violations(error) == ["purpose"]
    # Only agents forward.
    error = await refused(
        mirror.stub.GetRouting(
            mirror_pb2.GetRoutingRequest(person_number=person, purpose="x"),
            metadata=mirror.auth("officer", unit="units/bromma-bestallarenhet"),
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    log = await mirror.access_stub.ListAccessLog(
        access_log_pb2.ListAccessLogRequest(person_number=person), metadata=citizen(mirror, person)
    )
    assert any(
        e.action.startswith("mirror.GetRouting") and e.purpose == "cases/26-000011" for e in log.entries
    )


async def test_every_read_of_a_person_is_in_the_access_log_with_who_what_and_why(mirror: MirrorStack) -> None:
    record = someone(mirror, "farsta")
    person = record.person_number
    await mirror.overview(person, purpose="Frågar om faktura")
    await mirror.stub.ListInvoices(
        mirror_pb2.ListInvoicesRequest(person_number=person, purpose="Frågar om faktura"),
        metadata=mirror.agent_reading(person),
    )
    log = await mirror.access_stub.ListAccessLog(
        access_log_pb2.ListAccessLogRequest(person_number=person), metadata=citizen(mirror, person)
    )
    actions = [e.action for e in log.entries if e.actor == AGENT]
    assert any(a.startswith("mirror.GetPersonOverview: ") and "decisions" in a for a in actions)
    assert "mirror.ListInvoices" in actions
    # Why, and under which grant and case.
    assert all(
        e.purpose.startswith("Frågar om faktura (grant ") and "cases/26-000123" in e.purpose
        for e in log.entries
        if e.actor == AGENT
    )
    text = str(log)
    assert record.family_name not in text
    assert record.given_name not in text


async def test_operators_see_the_sources_and_nobody_else_does(mirror: MirrorStack) -> None:
    listed = await mirror.stub.ListSources(mirror_pb2.ListSourcesRequest(), metadata=mirror.operator())
    assert len(listed.sources) == 12
    bromma = next(s for s in listed.sources if s.name == "sources/paraply-bromma")
    assert bromma.records == len(mirror.care.records_of("bromma"))
    assert bromma.state == mirror_pb2.SOURCE_STATE_OK
    assert bromma.synced_through.seconds > 0
    for role, claims in (("agent", {}), ("citizen", {"person_number": someone(mirror).person_number})):
        error = await refused(
            mirror.stub.ListSources(mirror_pb2.ListSourcesRequest(), metadata=mirror.auth(role, **claims))
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await refused(
        mirror.stub.ReconcileSource(
            mirror_pb2.ReconcileSourceRequest(source="sources/paraply-bromma"),
            metadata=mirror.auth("agent", subject=AGENT),
        )
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"person_number": "19400101"}, "person_number"),
        ({"person_number": with_wrong_check_digit("194001011230")}, "person_number"),
        ({"person_number": "x" * 20_000}, "person_number"),
        ({"person_number": "194001011230", "purpose": "p" * 10_000}, "purpose"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    mirror: MirrorStack, request_fields: dict[str, Any], field: str
) -> None:
    metadata = mirror.agent_reading(request_fields["person_number"][:12])
    error = await refused(
        mirror.stub.GetPersonOverview(
            mirror_pb2.GetPersonOverviewRequest(**request_fields), metadata=metadata
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == [field]
