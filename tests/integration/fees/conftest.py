"""The fees service's use cases on a real database (a SQLite file and a PostgreSQL database, migrated to head
by the service's own bootstrap), with fakes of the mirror and the case service and grants of a test key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.common.runtime import Wiring, wired
from services.fees.handlers import Fees
from services.fees.main import DEFINITION, FeesSettings
from support.ports import free_port
from tests.integration.fees.support import FakeCaseCounts, FakeMirror, Grants
from tests.unit.case.builders import Clock


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fees.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def grants(tmp_path: Path) -> Grants:
    return Grants.in_folder(tmp_path / "grants")


@pytest.fixture
def settings(database_url: str, tmp_path: Path, grants: Grants) -> FeesSettings:
    return FeesSettings.from_env(
        {
            "FEES_DATABASE_URL": database_url,
            "AUTH_DEV": "true",
            "AUTH_DEV_DIR": str(tmp_path / "dev"),
            "FEES_GRANT_JWKS": str(grants.jwks),
            # Nobody listens there: what is queued for finance stays queued.
            "FEES_FINANCE_URL": f"http://127.0.0.1:{free_port()}",
            "FEES_FINANCE_API_KEY_ENV": "NO_SUCH_VARIABLE",
        }
    )


@pytest.fixture
def mirror() -> FakeMirror:
    return FakeMirror()


@pytest.fixture
def counts() -> FakeCaseCounts:
    return FakeCaseCounts()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 12, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
async def wiring(
    settings: FeesSettings, mirror: FakeMirror, counts: FakeCaseCounts, clock: Clock
) -> AsyncIterator[Wiring[Fees]]:
    async with wired(DEFINITION, settings, mirror=mirror, case_counts=counts, clock=clock) as wired_fees:
        yield wired_fees
