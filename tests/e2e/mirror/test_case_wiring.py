"""The case service, the directory and the mirror together over the stand-ins, as an agent uses them: the
consent recorded on a case gives a grant the mirror accepts; a forward goes to the officer named in the
person's district's care system; with the mirror down it still goes, by the directory's rules, and says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from aldredirekt.case.v1 import case_pb2 as pb
from aldredirekt.case.v1 import case_pb2_grpc
from aldredirekt.common.v1 import access_log_pb2
from aldredirekt.mirror.v1 import mirror_pb2

from services.case.handlers import Cases
from services.case.main import DEFINITION as CASE_DEFINITION
from services.case.main import CaseSettings
from services.common import runtime
from services.common.grants import GRANT_METADATA_KEY
from services.directory import main as directory_main
from services.directory.handlers import Directory
from support.ports import free_port
from synthcity.care import CareRecord
from tests.e2e.case.conftest import seeded_directory
from tests.e2e.mirror.conftest import MODULE_LOOP, MirrorStack, person_with, start_mirror
from tests.integration.case.support import copy_sqlite
from tests.rich_errors import reason_of, refused
from upstreams import Running as Upstreams

pytestmark = MODULE_LOOP

AGENT = "agent-astrid"


@dataclass
class Together:
    mirror: MirrorStack
    case: runtime.Running[Cases]
    directory: runtime.Running[Directory]
    cases: case_pb2_grpc.CaseServiceAsyncStub
    channel: grpc.aio.Channel


@pytest.fixture(scope="module")
def directory_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_directory(tmp_path_factory.mktemp("directory-template"))


@pytest_asyncio.fixture(loop_scope="module")
async def together(tmp_path: Path, upstreams: Upstreams, directory_template: Path) -> AsyncIterator[Together]:
    dev = tmp_path / "dev"
    grant_key_file = tmp_path / "case" / "grant-key.pem"
    directory = await runtime.start(
        directory_main.DEFINITION,
        directory_main.DirectorySettings.from_env(
            {
                "DIRECTORY_DATABASE_URL": copy_sqlite(directory_template, tmp_path / "directory.db"),
                "AUTH_DEV": "true",
                "AUTH_DEV_DIR": str(dev),
            }
        ),
        port=0,
    )
    mirror = await start_mirror(
        tmp_path / "mirror",
        upstreams,
        f"sqlite+aiosqlite:///{tmp_path / 'mirror.db'}",
        run_sync=False,
        AUTH_DEV_DIR=str(dev),
        # The keys the case service publishes beside its grant key.
        MIRROR_GRANT_JWKS=str(grant_key_file.with_name("grant-key.jwks.json")),
    )
    await mirror.sync()
    case = await runtime.start(
        CASE_DEFINITION,
        CaseSettings.from_env(
            {
                "CASE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'case.db'}",
                "CASE_DIRECTORY_ADDRESS": directory.address,
                "CASE_MIRROR_ADDRESS": mirror.running.address,
                "CASE_GRANT_KEY_FILE": str(grant_key_file),
                "CASE_SMTP_PORT": str(free_port()),
                "AUTH_DEV": "true",
                "AUTH_DEV_DIR": str(dev),
            }
        ),
        port=0,
    )
    channel = grpc.aio.insecure_channel(case.address)
    yield Together(
        mirror=mirror,
        case=case,
        directory=directory,
        cases=case_pb2_grpc.CaseServiceStub(channel),  # type: ignore[no-untyped-call]
        channel=channel,
    )
    await channel.close(None)
    await case.stop(0)
    await mirror.close()
    await directory.stop(0)


def named_person(together: Together) -> CareRecord:
    """Someone of Bromma whose Paraply record names an officer, and who never moved."""
    care = together.mirror.care
    return person_with(
        care,
        lambda r: (
            r.district_id == "bromma"
            and r.current_decisions
            and r.responsible_officer.officer_id
            and not r.protected_identity
            and r.person_number not in care.moved_from
        ),
    )


async def open_case(together: Together, person: str, district: str = "") -> pb.Case:
    answer = await together.cases.CreateCase(
        pb.CreateCaseRequest(
            case=pb.Case(
                category="aldreomsorg",
                case_type="hemtjanst",
                case_class="status-pa-anmalan-arende",
                district=district,
                person_number=person,
                feedback_channel=pb.FEEDBACK_CHANNEL_PHONE,
            ),
            contact=pb.Contact(
                channel=pb.CHANNEL_PHONE,
                party=pb.CONTACT_PARTY_SELF,
                summary="Undrar när hemtjänsten kommer.",
            ),
        ),
        metadata=together.mirror.auth("agent", subject=AGENT),
    )
    case: pb.Case = answer.case
    return case


async def test_the_consent_recorded_on_a_case_gives_a_grant_the_mirror_accepts_and_a_revoke_stops_new_ones(
    together: Together,
) -> None:
    record = named_person(together)
    agent = together.mirror.auth("agent", subject=AGENT)
    case = await open_case(together, record.person_number)
    consent = await together.cases.RecordConsent(
        pb.RecordConsentRequest(
            parent=case.name,
            consent=pb.Consent(
                given_by=pb.CONSENT_GIVER_PERSON,
                verification="BankID",
                scopes=[pb.GRANT_SCOPE_DECISIONS, pb.GRANT_SCOPE_OFFICER],
            ),
        ),
        metadata=agent,
    )
    reading = (*agent, (GRANT_METADATA_KEY, consent.access_grant))
    overview = await together.mirror.overview(record.person_number, reading)
    assert overview.decisions
    assert overview.responsible_officer.officer
    assert not overview.fee_bases
    assert not overview.invoices
    # The grant names the case: the access log says why the person was read.
    log = await together.mirror.access_stub.ListAccessLog(
        access_log_pb2.ListAccessLogRequest(person_number=record.person_number),
        metadata=together.mirror.auth("citizen", person_number=record.person_number),
    )
    assert any(e.purpose.startswith(case.name) for e in log.entries)
    # The grant is the agent's own: another agent holding it is refused.
    error = await refused(
        together.mirror.stub.GetPersonOverview(
            mirror_pb2.GetPersonOverviewRequest(person_number=record.person_number),
            metadata=(
                *together.mirror.auth("agent", subject="agent-bertil"),
                (GRANT_METADATA_KEY, consent.access_grant),
            ),
        )
    )
    assert reason_of(error) == "GRANT_NOT_YOURS"


async def test_a_forward_goes_to_the_officer_the_care_system_names(together: Together) -> None:
    record = named_person(together)
    case = await open_case(together, record.person_number)
    forwarded = await together.cases.ForwardCase(
        pb.ForwardCaseRequest(name=case.name, note="Vill prata med sin handläggare."),
        metadata=together.mirror.auth("agent", subject=AGENT),
    )
    assert forwarded.routing_basis == pb.ROUTING_BASIS_CARE_SYSTEM
    assert forwarded.case.officer == f"officers/{record.responsible_officer.officer_id}"
    assert forwarded.case.unit.startswith("units/bromma")
    # The mirror logged the routing read under the case.
    log = await together.mirror.access_stub.ListAccessLog(
        access_log_pb2.ListAccessLogRequest(person_number=record.person_number),
        metadata=together.mirror.auth("citizen", person_number=record.person_number),
    )
    assert any(
        e.action.startswith("mirror.GetRouting") and e.purpose.startswith(case.name) for e in log.entries
    )


async def test_with_the_mirror_down_a_forward_goes_by_the_directorys_rules_and_says_so(
    together: Together,
) -> None:
    record = named_person(together)
    case = await open_case(together, record.person_number, district="districts/bromma")
    await together.mirror.close()
    forwarded = await together.cases.ForwardCase(
        pb.ForwardCaseRequest(name=case.name, postal_code=record.postal_code),
        metadata=together.mirror.auth("agent", subject=AGENT),
    )
    assert forwarded.routing_basis == pb.ROUTING_BASIS_DIRECTORY_RULES
    assert "did not answer" in forwarded.routing_note
    assert forwarded.case.unit.startswith("units/bromma")
