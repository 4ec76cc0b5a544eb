"""The fees service's migrations make exactly the tables its store describes, on SQLite and PostgreSQL, and
undo them."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from services.common.db import create_engine
from services.common.migrate import alembic_config, schema_is_at_head, upgrade_to_head
from services.fees.main import MIGRATIONS
from services.fees.store import metadata


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fees.db'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


async def test_the_migrated_schema_is_the_stores_and_goes_back_down(url: str):
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine, MIGRATIONS)
        assert await schema_is_at_head(engine, MIGRATIONS)

        def differences(connection: Connection) -> list[object]:
            found: list[object] = compare_metadata(MigrationContext.configure(connection), metadata)
            return found

        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []

        def downgrade(connection: Connection) -> list[str]:
            config = alembic_config(MIGRATIONS)
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
            return [t for t in inspect(connection).get_table_names() if t != "alembic_version"]

        async with engine.begin() as conn:
            assert await conn.run_sync(downgrade) == []
    finally:
        await engine.dispose()
