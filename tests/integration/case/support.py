"""Helpers for the case service's integration and end-to-end tests: settings, registering, counting rows,
and a real SMTP sink on a free port."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.case import handlers
from services.case.clients import Directory
from services.case.handlers import Cases
from services.case.main import DEFINITION, MIGRATIONS, CaseSettings
from services.case.model import Case
from services.case.store import case_events, contacts, outbox
from services.case.store import cases as cases_table
from services.common.db import create_engine
from services.common.migrate import upgrade_to_head
from services.common.runtime import Wiring, wired
from support.pgserver import PostgresServer, run_blocking
from support.smtp_sink import MailStore, start_sink
from tests.unit.case.builders import AGENT, ASTRID, Clock, contact, local, new_case

# A Monday morning in December: no summer hours, no holidays near.
START = local(2026, 11, 30, 9, 0)

# For rules decided before anything reaches the database: one engine shows them as well as two.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def case_settings(database_url: str, tmp_path: Path, *, smtp_port: int = 2525, **more: str) -> CaseSettings:
    """The settings of a test's service; `more` adds environment variables, such as CASE_DB_POOL_SIZE."""
    return CaseSettings.from_env(
        {
            "CASE_DATABASE_URL": database_url,
            "CASE_GRANT_KEY_FILE": str(tmp_path / "grant" / "grant-key.pem"),
            "AUTH_DEV_DIR": str(tmp_path / "dev"),
            "CASE_SMTP_PORT": str(smtp_port),
            "AUTH_DEV": "true",
            **more,
        }
    )


@asynccontextmanager
async def running_cases(
    settings: CaseSettings, *, directory: Directory, clock: Clock
) -> AsyncIterator[Wiring[Cases]]:
    """The service wired by its own bootstrap, on a migrated database, with a fake directory and the test's
    clock; not serving, so the test calls its use cases directly."""
    async with wired(DEFINITION, settings, directory=directory, care_system=None, clock=clock) as wiring:
        yield wiring


async def register(cases: Cases, *, person: str | None = ASTRID, **changes: object) -> Case:
    """Registers a case through the use case, by the agent, with one phone contact."""
    summary = changes.pop("summary", "Frågar om hemtjänsten.")
    channel = changes.pop("channel", None)
    first = contact(summary=summary) if channel is None else contact(summary=summary, channel=channel)
    return await handlers.create_case(
        cases=cases,
        caller=AGENT,
        case=new_case(person_number=person, **changes),
        contact=first,
        anonymous=person is None,
    )


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    """How many cases, contacts, events and mails are stored, to show that a refusal wrote nothing."""
    async with engine.connect() as conn:
        return {
            table.name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for table in (cases_table, contacts, case_events, outbox)
        }


async def forward(cases: Cases, case: Case, *, note: str = "", postal_code: str = "") -> Case:
    forwarded = await handlers.forward_case(
        cases=cases, caller=AGENT, case_id=case.case_id, postal_code=postal_code, named_officer="", note=note
    )
    return forwarded.case


async def outbox_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(outbox).order_by(outbox.c.id)))


@contextmanager
def smtp_sink(port: int) -> Iterator[MailStore]:
    """A real SMTP server on `port` that keeps what it receives."""
    store = MailStore()
    controller = start_sink(store, port=port)
    try:
        yield store
    finally:
        controller.stop()


# ---- databases migrated once per session ---------------------------------------------------------------
#
# Migrating costs more than most tests; each test gets a copy of a database migrated once instead, and the
# service still runs its own (then empty) upgrade to head when it opens it.


async def migrate(url: str, migrations: Path = MIGRATIONS) -> None:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine, migrations)
    finally:
        await engine.dispose()


def migrated_sqlite_template(folder: Path) -> Path:
    path = folder / "case.db"
    run_blocking(migrate(f"sqlite+aiosqlite:///{path}"))
    return path


def copy_sqlite(template: Path, target: Path) -> str:
    """A copy of a SQLite database (with any write-ahead log beside it) and its URL."""
    for suffix in ("", "-wal", "-shm"):
        source = template.with_name(template.name + suffix)
        if source.exists():
            shutil.copyfile(source, target.with_name(target.name + suffix))
    return f"sqlite+aiosqlite:///{target}"


def migrated_postgres_template(server: PostgresServer) -> str:
    name = f"case_template_{uuid.uuid4().hex[:12]}"
    run_blocking(migrate(server.create_database(name)))
    return name


@contextmanager
def postgres_copy(server: PostgresServer, template: str) -> Iterator[str]:
    """A database of its own for one test, created from the migrated template, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name, template=template)
    try:
        yield url
    finally:
        server.drop_database(name)
