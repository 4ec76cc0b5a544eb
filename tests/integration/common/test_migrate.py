"""Alembic through services.common.migrate, on the directory's real migration history."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import create_engine
from services.common.migrate import alembic_config, migrations_dir, schema_is_at_head, upgrade_to_head

DIRECTORY = migrations_dir("directory")
REPOSITORY = Path(__file__).resolve().parents[3]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    created = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'directory.db'}")
    yield created
    await created.dispose()


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


def test_each_service_has_its_own_history():
    assert DIRECTORY.name == "migrations"
    assert DIRECTORY.parent.name == "directory"
    assert (DIRECTORY / "env.py").is_file()


async def test_an_unmigrated_database_is_not_at_head(engine: AsyncEngine):
    assert not await schema_is_at_head(engine, DIRECTORY)


async def test_a_database_upgraded_to_head_is_at_head(engine: AsyncEngine):
    await upgrade_to_head(engine, DIRECTORY)

    assert await schema_is_at_head(engine, DIRECTORY)
    assert {"alembic_version", "idempotency_keys", "access_log", "access_log_head"} <= await table_names(
        engine
    )


async def test_upgrading_a_database_already_at_head_changes_nothing(engine: AsyncEngine):
    await upgrade_to_head(engine, DIRECTORY)
    tables = await table_names(engine)

    await upgrade_to_head(engine, DIRECTORY)

    assert await schema_is_at_head(engine, DIRECTORY)
    assert await table_names(engine) == tables


async def test_a_database_at_another_revision_is_not_at_head(engine: AsyncEngine):
    await upgrade_to_head(engine, DIRECTORY)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'not-a-known-revision'")

    assert not await schema_is_at_head(engine, DIRECTORY)


def test_migrations_run_only_on_the_connection_they_are_handed():
    # Alembic's own command line would open a connection of its own from a URL we do not keep there.
    with pytest.raises(RuntimeError, match=r"services\.common\.migrate"):
        command.upgrade(alembic_config(DIRECTORY), "head")


def run_migrate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.common.migrate", *args],
        cwd=REPOSITORY,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_command_line_upgrades_each_named_service_from_its_own_variable(tmp_path: Path):
    database = tmp_path / "cli" / "directory.db"

    done = run_migrate("directory", env={"DIRECTORY_DATABASE_URL": f"sqlite+aiosqlite:///{database}"})

    assert done.returncode == 0, done.stderr
    assert "directory: database at head" in done.stdout
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        assert await schema_is_at_head(engine, DIRECTORY)
    finally:
        await engine.dispose()
