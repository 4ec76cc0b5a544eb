"""Alembic, one history per service, run by `make migrate`, at start-up when configured, and by tests.

`python -m services.common.migrate directory case …` upgrades each named service's database (its URL
from the service's own <SERVICE>_DATABASE_URL variable) to head.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

SERVICES_ROOT = Path(__file__).resolve().parent.parent


def migrations_dir(service: str) -> Path:
    return SERVICES_ROOT / service / "migrations"


def alembic_config(directory: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(directory))
    return config


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py: migrate on the connection handed over in attributes."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("migrations run through services.common.migrate, which supplies the connection")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def upgrade_to_head(engine: AsyncEngine, directory: Path) -> None:
    config = alembic_config(directory)

    def upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)


async def schema_is_at_head(engine: AsyncEngine, directory: Path) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config(directory)).get_heads())

    def current(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(current) == heads


async def _main(services: list[str]) -> None:
    from services.common.db import create_engine
    from services.common.settings import Env, ServerSettings

    for service in services:
        env = Env()
        settings = ServerSettings.from_env(env, service=service, default_port=0)
        env.check()
        engine = create_engine(settings.database_url)
        try:
            await upgrade_to_head(engine, migrations_dir(service))
        finally:
            await engine.dispose()
        print(f"{service}: database at head")


if __name__ == "__main__":
    names = sys.argv[1:]
    unknown = [n for n in names if not migrations_dir(n).is_dir()]
    if not names or unknown:
        sys.exit(
            f"usage: python -m services.common.migrate SERVICE [SERVICE…] (unknown: {', '.join(unknown)})"
        )
    asyncio.run(_main(names))
