"""Directory databases for tests: migrated, and seeded with the small city, once a session, copied per test.

Running the migrations and the import for every test would cost more than the tests themselves. A copy is
as fresh as a new database; the migrations and the import are still run, once, on each backend, and have
tests of their own.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from services.common.audit_writer import MemoryAccessLog
from services.common.runtime import wired
from services.directory import handlers
from services.directory.main import DEFINITION, DirectorySettings
from support.pgserver import PostgresServer, run_blocking
from tests.unit.directory.cities import city_files


@dataclass(frozen=True)
class Templates:
    """The migrated-but-empty and the seeded database: SQLite file paths or PostgreSQL database names."""

    empty: str
    seeded: str


async def prepare(database_url: str, *, seed: bool) -> None:
    settings = DirectorySettings.from_env({"DIRECTORY_DATABASE_URL": database_url, "AUTH_DEV": "true"})
    async with wired(DEFINITION, settings, access=MemoryAccessLog()) as wiring:
        if seed:
            await handlers.import_directory(directory=wiring.core, files=city_files(), validate_only=False)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def build_sqlite_templates(folder: Path) -> Templates:
    templates = Templates(empty=str(folder / "empty.db"), seeded=str(folder / "seeded.db"))
    run_blocking(prepare(sqlite_url(Path(templates.empty)), seed=False))
    run_blocking(prepare(sqlite_url(Path(templates.seeded)), seed=True))
    return templates


def copy_sqlite(template: str, folder: Path) -> str:
    # Every connection to the template was closed, so its write-ahead log is merged into the one file.
    target = folder / "directory.db"
    shutil.copyfile(template, target)
    return sqlite_url(target)


def build_postgres_templates(server: PostgresServer) -> Templates:
    suffix = uuid.uuid4().hex[:8]
    templates = Templates(empty=f"directory_empty_{suffix}", seeded=f"directory_seeded_{suffix}")
    run_blocking(prepare(server.create_database(templates.empty), seed=False))
    run_blocking(prepare(server.create_database(templates.seeded), seed=True))
    return templates


async def clone_postgres(server: PostgresServer, template: str) -> tuple[str, str]:
    """A new database copied from `template`: its name and URL."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    return name, await asyncio.to_thread(server.create_database, name, template=template)
