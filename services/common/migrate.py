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
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.exc import DBAPIError
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


def migration_heads(directory: Path) -> frozenset[str]:
    """The revisions a database at head carries, read from the migration scripts once."""
    return frozenset(ScriptDirectory.from_config(alembic_config(directory)).get_heads())


async def schema_is_at(engine: AsyncEngine, heads: frozenset[str]) -> bool:
    """Whether the database's schema is at `heads`. Reads Alembic's version table with one query rather
    than through a MigrationContext, which logs two lines each time: the readiness check runs every few
    seconds."""
    async with engine.connect() as conn:
        try:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        except DBAPIError:
            return False  # not migrated at all: the table does not exist yet
        return frozenset(str(row[0]) for row in rows) == heads


async def schema_is_at_head(engine: AsyncEngine, directory: Path) -> bool:
    return await schema_is_at(engine, migration_heads(directory))


async def _main(services: list[str]) -> None:
    from services.common.db import create_engine
    from services.common.settings import Env, database_tls_setting, database_url_setting

    for service in services:
        # Only the database is needed: a migration job is given no other setting of its service.
        env = Env()
        url = database_url_setting(env, service)
        tls = database_tls_setting(env, service)
        env.check()
        engine = create_engine(url, tls=tls)
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
