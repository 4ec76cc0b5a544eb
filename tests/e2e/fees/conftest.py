"""The real fees service with what it stands on: the upstream stand-ins over HTTP, the mirror synced from
them, the directory and the case service, all started as production starts them, on port 0, trusting one
development issuer. Grants are signed with the case service's own key, as RecordConsent signs them.

One stack serves a whole test module (starting it and syncing the mirror costs seconds), in the module's
event loop: test modules here set `pytestmark = MODULE_LOOP`, and each test uses people and invoices of its
own, so that what one test changes another never reads.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aldredirekt.case.v1 import case_pb2, case_pb2_grpc
from aldredirekt.common.v1 import access_log_pb2_grpc, outbox_pb2_grpc
from aldredirekt.fees.v1 import fees_pb2_grpc
from sqlalchemy import func, select

from services.case.handlers import Cases
from services.case.main import DEFINITION as CASE_DEFINITION
from services.case.main import CaseSettings, load_grant_key
from services.common import runtime
from services.common.auth import SigningKey
from services.common.devissuer import DevIssuer
from services.common.grants import GRANT_METADATA_KEY, GrantIssuer
from services.directory import main as directory_main
from services.directory.handlers import Directory
from services.fees.handlers import Fees
from services.fees.main import DEFINITION as FEES_DEFINITION
from services.fees.main import FeesSettings
from services.fees.store import deferrals, outbox
from support.ports import free_port
from synthcity.care import CareCity, CareRecord, Invoice, InvoiceKind
from tests.e2e.case.conftest import seeded_directory
from tests.e2e.mirror.conftest import (
    MODULE_LOOP,
    MirrorStack,
    care,
    served,
    start_mirror,
)
from tests.integration.case.support import copy_sqlite
from upstreams import Running as Upstreams

__all__ = ["MODULE_LOOP", "FeesStack", "care", "served"]

AGENT = "agent-astrid"
FEE_SCOPES = ("fees", "decisions", "invoices")
Metadata = tuple[tuple[str, str], ...]


@dataclass
class MovableClock:
    """Real time, which a test can set to another moment (cases registered in an earlier month) or move
    forward (to reach a message's next attempt without waiting for it)."""

    offset: timedelta = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def at(self, moment: datetime) -> None:
        self.offset = moment - datetime.now(UTC)

    def skip(self, **delta: float) -> None:
        self.offset += timedelta(**delta)

    def reset(self) -> None:
        self.offset = timedelta()


@dataclass
class FeesStack:
    upstreams: Upstreams
    care: CareCity
    folder: Path
    mirror: MirrorStack
    directory: runtime.Running[Directory]
    case: runtime.Running[Cases]
    fees: runtime.Running[Fees]
    case_clock: MovableClock
    fees_clock: MovableClock
    issuer: DevIssuer
    grant_key: SigningKey
    channel: grpc.aio.Channel
    case_channel: grpc.aio.Channel
    stub: fees_pb2_grpc.FeeServiceAsyncStub
    cases: case_pb2_grpc.CaseServiceAsyncStub
    access_stub: access_log_pb2_grpc.AccessLogServiceAsyncStub
    outbox_stub: outbox_pb2_grpc.OutboxServiceAsyncStub
    used: set[str] = field(default_factory=set)

    def auth(self, role: str, **claims: Any) -> Metadata:
        return (("authorization", f"Bearer {self.issuer.mint(role=role, **claims)}"),)

    def citizen(self, person: str) -> Metadata:
        return self.auth("citizen", subject=f"citizen-{person[-4:]}", person_number=person)

    def grant(
        self,
        person: str,
        *,
        scopes: Iterable[str] = FEE_SCOPES,
        agent: str = AGENT,
        case: str = "cases/1",
        lifetime: timedelta = timedelta(minutes=30),
        issued: datetime | None = None,
    ) -> str:
        token, _ = GrantIssuer(self.grant_key, issuer="aldredirekt-case", ttl=lifetime).issue(
            grant_id=f"grant-{time.monotonic_ns()}",
            agent=agent,
            person_number=person,
            case=case,
            scopes=scopes,
            now=issued or datetime.now(UTC),
        )
        return token

    def agent(
        self, person: str, *, scopes: Iterable[str] = FEE_SCOPES, agent: str = AGENT, case: str = "cases/1"
    ) -> Metadata:
        """An agent's token with a grant for `person`."""
        return (
            *self.auth("agent", subject=agent),
            (GRANT_METADATA_KEY, self.grant(person, scopes=scopes, agent=agent, case=case)),
        )

    def person(self, predicate: Callable[[CareRecord], bool]) -> CareRecord:
        """A person of the city no other test of the module has taken, who never moved."""
        for record in self.care.records:
            if (
                record.person_number not in self.used
                and record.person_number not in self.care.moved_from
                and not record.protected_identity
                and predicate(record)
            ):
                self.used.add(record.person_number)
                return record
        raise LookupError("no such person left in the test city")

    def invoices_of(self, person: str) -> list[Invoice]:
        return [i for i in self.care.invoices if i.person_number == person]

    def unpaid_care_fee_invoice(self, person: str) -> Invoice:
        return next(
            i for i in self.invoices_of(person) if i.kind is InvoiceKind.CARE_FEE and i.remaining_ore > 0
        )

    async def stored(self) -> dict[str, int]:
        """How many deferrals and outbox messages the fees service holds."""
        async with self.fees.wiring.engine.connect() as conn:
            return {
                table.name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
                for table in (deferrals, outbox)
            }

    async def open_case(self, person: str, district: str = "", **contact: Any) -> case_pb2.Case:
        answer = await self.cases.CreateCase(
            case_pb2.CreateCaseRequest(
                case=case_pb2.Case(
                    category="aldreomsorg",
                    case_type="hemtjanst",
                    case_class="information-och-vagledning",
                    district=district,
                    person_number=person,
                    feedback_channel=case_pb2.FEEDBACK_CHANNEL_PHONE,
                ),
                contact=case_pb2.Contact(
                    channel=case_pb2.CHANNEL_PHONE,
                    party=case_pb2.CONTACT_PARTY_SELF,
                    summary=contact.get("summary", "Frågar om sin avgift."),
                ),
            ),
            metadata=self.auth("agent", subject=AGENT),
        )
        created: case_pb2.Case = answer.case
        return created


@pytest.fixture(scope="module")
def directory_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_directory(tmp_path_factory.mktemp("fees-directory-template"))


def fees_environment(
    stack_folder: Path, upstreams: Upstreams, mirror: str, case: str, **extra: str
) -> dict[str, str]:
    """The fees service's settings as a deployment gives them, pointed at the stack's services."""
    return {
        "FEES_DATABASE_URL": f"sqlite+aiosqlite:///{stack_folder / f'fees-{time.monotonic_ns()}.db'}",
        "FEES_MIRROR_ADDRESS": mirror,
        "FEES_CASE_ADDRESS": case,
        "FEES_GRANT_JWKS": str(stack_folder / "case" / "grant-key.jwks.json"),
        "FEES_FINANCE_URL": upstreams.url("agresso"),
        # The stand-ins' secrets are in the environment, as a mounted Secret would put them there.
        "FEES_FINANCE_API_KEY_ENV": "UPSTREAM_AGRESSO_API_KEY",
        "FEES_OUTBOX_INTERVAL_SECONDS": "0.05",
        "FEES_LEASE_SECONDS": "3",
        "AUTH_DEV": "true",
        "AUTH_DEV_DIR": str(stack_folder / "dev"),
        **extra,
    }


async def start_fees(stack: FeesStack, **extra: str) -> runtime.Running[Fees]:
    """Another fees service beside the stack's, on a database of its own: `extra` changes its settings."""
    settings = FeesSettings.from_env(
        fees_environment(
            stack.folder, stack.upstreams, stack.mirror.running.address, stack.case.address, **extra
        )
    )
    return await runtime.start(FEES_DEFINITION, settings, port=0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, served: Upstreams, directory_template: Path
) -> AsyncIterator[FeesStack]:
    folder = tmp_path_factory.mktemp("fees-stack")
    dev = folder / "dev"
    grant_key_file = folder / "case" / "grant-key.pem"
    directory = await runtime.start(
        directory_main.DEFINITION,
        directory_main.DirectorySettings.from_env(
            {
                "DIRECTORY_DATABASE_URL": copy_sqlite(directory_template, folder / "directory.db"),
                "AUTH_DEV": "true",
                "AUTH_DEV_DIR": str(dev),
            }
        ),
        port=0,
    )
    mirror = await start_mirror(
        folder / "mirror",
        served,
        f"sqlite+aiosqlite:///{folder / 'mirror.db'}",
        run_sync=False,
        AUTH_DEV_DIR=str(dev),
        MIRROR_GRANT_JWKS=str(grant_key_file.with_name("grant-key.jwks.json")),
        # The stand-ins commit nothing late here: a change is in the mirror at the next sync.
        MIRROR_SETTLE_SECONDS="0",
    )
    await mirror.sync()
    case_clock = MovableClock()
    case = await runtime.start(
        CASE_DEFINITION,
        CaseSettings.from_env(
            {
                "CASE_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'case.db'}",
                "CASE_DIRECTORY_ADDRESS": directory.address,
                "CASE_MIRROR_ADDRESS": mirror.running.address,
                "CASE_GRANT_KEY_FILE": str(grant_key_file),
                "CASE_SMTP_PORT": str(free_port()),
                "AUTH_DEV": "true",
                "AUTH_DEV_DIR": str(dev),
            }
        ),
        port=0,
        clock=case_clock,
    )
    fees_clock = MovableClock()
    fees = await runtime.start(
        FEES_DEFINITION,
        FeesSettings.from_env(fees_environment(folder, served, mirror.running.address, case.address)),
        port=0,
        clock=fees_clock,
    )
    channel = grpc.aio.insecure_channel(fees.address)
    case_channel = grpc.aio.insecure_channel(case.address)
    stack = FeesStack(
        upstreams=served,
        care=served.care,
        folder=folder,
        mirror=mirror,
        directory=directory,
        case=case,
        fees=fees,
        case_clock=case_clock,
        fees_clock=fees_clock,
        issuer=DevIssuer.load_or_create(dev),
        grant_key=load_grant_key(grant_key_file, create=False),
        channel=channel,
        case_channel=case_channel,
        stub=fees_pb2_grpc.FeeServiceStub(channel),  # type: ignore[no-untyped-call]
        cases=case_pb2_grpc.CaseServiceStub(case_channel),  # type: ignore[no-untyped-call]
        access_stub=access_log_pb2_grpc.AccessLogServiceStub(channel),  # type: ignore[no-untyped-call]
        outbox_stub=outbox_pb2_grpc.OutboxServiceStub(channel),  # type: ignore[no-untyped-call]
    )
    yield stack
    await channel.close(None)
    await case_channel.close(None)
    await fees.stop(0)
    await case.stop(0)
    await mirror.close()
    await directory.stop(0)
