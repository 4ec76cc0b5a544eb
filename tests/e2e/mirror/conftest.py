"""The real mirror against the real upstream stand-ins over HTTP on loopback.

The stand-ins (twelve instances and their control listener) are served once per test module, in that
module's event loop, from a small synthetic city generated once, and reset to the generated data before
each test. Each test gets a mirror of its own on a fresh database (SQLite, and PostgreSQL where a test
asks for `database`), started as production starts it (services.common.runtime.start), with its sources
file and secrets as `make run` writes them. Grants are signed by a key of the test's own, published to the
mirror as the case service publishes its keys.

Test modules here run their tests in the module's loop: `pytestmark = MODULE_LOOP`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aldredirekt.common.v1 import access_log_pb2_grpc
from aldredirekt.mirror.v1 import mirror_pb2, mirror_pb2_grpc

from services.common import runtime
from services.common.auth import SigningKey, jwks_document
from services.common.devissuer import DevIssuer
from services.common.grants import GRANT_METADATA_KEY, GrantIssuer
from services.mirror.handlers.mirror import Mirror
from services.mirror.handlers.sync import SyncResult
from services.mirror.main import DEFINITION, MirrorSettings
from services.mirror.store import SourceRow
from synthcity.care import CareCity, CareRecord, generate_care_city
from upstreams import Running as Upstreams
from upstreams import serve_all
from upstreams.credentials import sources_document

# The case service's end-to-end city has 120 officers: the same city here, so that a forward through the
# mirror names an officer the directory knows.
OFFICERS = 120
PEOPLE = 800
ALL_SCOPES = ("decisions", "fees", "providers", "officer", "invoices")
GRANT_ISSUER = "aldredirekt-case"
AGENT = "agent-astrid"

Metadata = tuple[tuple[str, str], ...]

# The loop the stand-ins serve in: every test of a module that uses them runs there too.
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="session")
def care() -> CareCity:
    return generate_care_city(seed=2026, people=PEOPLE, officers=OFFICERS)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(care: CareCity) -> AsyncIterator[Upstreams]:
    """The stand-ins, with the secrets the mirror's sources file names in the environment, as a mounted
    Kubernetes Secret would put them there."""
    async with serve_all(care=care) as running:
        secrets = running.credentials.environment()
        before = {name: os.environ.get(name) for name in secrets}
        os.environ.update(secrets)
        try:
            yield running
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest_asyncio.fixture(loop_scope="module")
async def upstreams(served: Upstreams) -> AsyncIterator[Upstreams]:
    await served.reset()
    yield served
    await served.reset()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database for the mirror: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'mirror.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@dataclass
class MirrorStack:
    """One mirror over the stand-ins, and what a test needs to call it as an agent, a citizen or an
    operator."""

    upstreams: Upstreams
    care: CareCity
    folder: Path
    settings: MirrorSettings
    issuer: DevIssuer
    grant_key: SigningKey
    running: runtime.Running[Mirror]
    channel: grpc.aio.Channel
    stub: mirror_pb2_grpc.MirrorServiceAsyncStub
    access_stub: access_log_pb2_grpc.AccessLogServiceAsyncStub
    _closed: bool = field(default=False)

    @property
    def mirror(self) -> Mirror:
        return self.running.core

    def auth(self, role: str, **claims: Any) -> Metadata:
        return (("authorization", f"Bearer {self.issuer.mint(role=role, **claims)}"),)

    def operator(self) -> Metadata:
        return self.auth("operator", subject="operator-olle")

    def grant(
        self,
        person: str,
        *,
        scopes: Iterable[str] = ALL_SCOPES,
        agent: str = AGENT,
        case: str = "cases/26-000123",
        lifetime: timedelta = timedelta(minutes=30),
        issued: datetime | None = None,
    ) -> str:
        issuer = GrantIssuer(self.grant_key, issuer=GRANT_ISSUER, ttl=lifetime)
        token, _ = issuer.issue(
            grant_id=f"grant-{time.monotonic_ns()}",
            agent=agent,
            person_number=person,
            case=case,
            scopes=scopes,
            now=issued or datetime.now(UTC),
        )
        return token

    def agent_reading(
        self, person: str, *, scopes: Iterable[str] = ALL_SCOPES, agent: str = AGENT
    ) -> Metadata:
        """An agent's token with a grant for `person`."""
        return (
            *self.auth("agent", subject=agent),
            (GRANT_METADATA_KEY, self.grant(person, scopes=scopes, agent=agent)),
        )

    async def overview(self, person: str, metadata: Metadata | None = None, **request: Any) -> Any:
        answer = await self.stub.GetPersonOverview(
            mirror_pb2.GetPersonOverviewRequest(person_number=person, **request),
            metadata=metadata or self.agent_reading(person),
        )
        return answer.overview

    async def sources(self) -> dict[str, SourceRow]:
        async with self.mirror.uow(write=False) as uow:
            return {row.name: row for row in await uow.mirror.sources()}

    async def sync(self, *names: str) -> dict[str, SyncResult]:
        """One incremental run of each named source (all when none), as its lease holder would."""
        await self.mirror.ensure_sources()
        chosen = names or tuple(self.mirror.syncs)
        results = await asyncio.gather(*(self.mirror.syncs[name].incremental() for name in chosen))
        self.mirror.forget_snapshot()
        return dict(zip(chosen, results, strict=True))

    async def caught_up(self, *, since: datetime | None = None, within: float = 30.0) -> None:
        """Waits until the background sync of every source has passed `since` (now by default): what
        changed upstream before then is in the mirror."""
        mark = since or datetime.now(UTC)
        deadline = time.monotonic() + within
        while True:
            rows = await self.sources()
            behind = [
                name
                for name, row in rows.items()
                if row.synced_through is None or row.synced_through < mark or not row.full_sync_done
            ]
            if rows and not behind:
                self.mirror.forget_snapshot()
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"sources still behind after {within} s: {behind}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.channel.close(None)
            await self.running.stop(0)


def mirror_environment(
    folder: Path, upstreams: Upstreams, database: str, grant_key: SigningKey, **extra: str
) -> dict[str, str]:
    """The mirror's settings as `make run` writes them: the sources file naming each secret's variable,
    the secrets themselves in the environment, the grant keys as a JWKS file."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = folder / "sources.json"
    sources.write_text(json.dumps(sources_document(upstreams.urls)))
    jwks = folder / "grant-keys.jwks.json"
    jwks.write_text(json.dumps(jwks_document([grant_key])))
    return {
        "MIRROR_DATABASE_URL": database,
        "MIRROR_SOURCES_FILE": str(sources),
        "MIRROR_GRANT_JWKS": str(jwks),
        "AUTH_DEV": "true",
        "AUTH_DEV_DIR": str(folder / "dev"),
        # Quick enough for tests: a settle period and an overlap of a moment, runs every 50 ms.
        "MIRROR_SYNC_INTERVAL_SECONDS": "0.05",
        "MIRROR_SETTLE_SECONDS": "0.2",
        "MIRROR_OVERLAP_SECONDS": "3",
        "MIRROR_UPSTREAM_TIMEOUT_SECONDS": "2",
        "MIRROR_LEASE_SECONDS": "3",
        **upstreams.credentials.environment(),
        **extra,
    }


async def start_mirror(
    folder: Path,
    upstreams: Upstreams,
    database: str,
    *,
    run_sync: bool = True,
    grant_key: SigningKey | None = None,
    **extra: str,
) -> MirrorStack:
    key = grant_key or SigningKey.generate()
    environment = mirror_environment(folder, upstreams, database, key, **extra)
    settings = MirrorSettings.from_env(environment)
    running = await runtime.start(DEFINITION, settings, port=0, run_sync=run_sync)
    channel = grpc.aio.insecure_channel(running.address)
    return MirrorStack(
        upstreams=upstreams,
        care=upstreams.care,
        folder=folder,
        settings=settings,
        issuer=DevIssuer.load_or_create(Path(environment["AUTH_DEV_DIR"])),
        grant_key=key,
        running=running,
        channel=channel,
        stub=mirror_pb2_grpc.MirrorServiceStub(channel),  # type: ignore[no-untyped-call]
        access_stub=access_log_pb2_grpc.AccessLogServiceStub(channel),  # type: ignore[no-untyped-call]
    )


@pytest_asyncio.fixture(loop_scope="module")
async def stack(tmp_path: Path, upstreams: Upstreams) -> AsyncIterator[MirrorStack]:
    """A mirror on SQLite whose sync a test drives itself (`stack.sync()`)."""
    running = await start_mirror(
        tmp_path / "mirror", upstreams, f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", run_sync=False
    )
    yield running
    await running.close()


def person_with(care: CareCity, predicate: Any) -> CareRecord:
    """The first care record of the city that satisfies `predicate`."""
    for record in care.records:
        if predicate(record):
            return record
    raise LookupError("no such person in the test city")


def upstream_record(upstreams: Upstreams, source: str, record_id: str) -> Any:
    """The record a stand-in serves now under `record_id`."""
    entry = upstreams.store(source).get(record_id)
    assert entry is not None, f"{source} holds no {record_id}"
    return entry.record
