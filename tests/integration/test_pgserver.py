"""The session's PostgreSQL server: real, isolated per test, and gone when its owner is."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from support.pgserver import SUPERUSER, PostgresServer


def _port_accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait_until_gone(host: str, port: int, folder: Path, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not folder.exists() and not _port_accepts_connections(host, port):
            return True
        time.sleep(0.1)
    return False


async def test_server_runs_postgresql_15_or_newer(postgres_server: PostgresServer) -> None:
    connection = await asyncpg.connect(
        host=postgres_server.host, port=postgres_server.port, user=SUPERUSER, database="postgres"
    )
    try:
        version_text = await connection.fetchval("SELECT version()")
        version_num = int(await connection.fetchval("SHOW server_version_num"))
    finally:
        await connection.close()

    assert version_text.startswith("PostgreSQL ")
    assert version_num >= 150000


async def test_postgres_url_opens_its_own_database_through_sqlalchemy(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            database = await connection.scalar(text("SELECT current_database()"))
            encoding = await connection.scalar(text("SHOW server_encoding"))
    finally:
        await engine.dispose()

    assert database == make_url(postgres_url).database
    assert encoding == "UTF8"


async def test_fresh_databases_do_not_share_tables(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    other_name = "test_pgserver_other"
    other_url = postgres_server.create_database(other_name)
    try:
        assert make_url(other_url).database != make_url(postgres_url).database
        engine = create_async_engine(postgres_url)
        other_engine = create_async_engine(other_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE visit (id integer PRIMARY KEY)"))
                await connection.execute(text("INSERT INTO visit VALUES (1)"))
            async with other_engine.connect() as connection:
                other_sees_table = await connection.scalar(text("SELECT to_regclass('visit') IS NOT NULL"))
        finally:
            await engine.dispose()
            await other_engine.dispose()
    finally:
        postgres_server.drop_database(other_name)

    assert other_sees_table is False


async def test_dropped_database_no_longer_accepts_connections(postgres_server: PostgresServer) -> None:
    postgres_server.create_database("test_pgserver_dropped")
    # A connection left open must not keep the database alive.
    leftover = await asyncpg.connect(
        host=postgres_server.host, port=postgres_server.port, user=SUPERUSER, database="test_pgserver_dropped"
    )

    postgres_server.drop_database("test_pgserver_dropped")

    assert not await _still_answers(leftover)
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(
            host=postgres_server.host,
            port=postgres_server.port,
            user=SUPERUSER,
            database="test_pgserver_dropped",
        )


async def _still_answers(connection: asyncpg.Connection) -> bool:
    try:
        await connection.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    finally:
        await connection.close()
    return True


@pytest.mark.parametrize("name", ['x"; DROP DATABASE postgres; --', "Upper", "", "a" * 64])
def test_database_name_that_is_not_a_plain_identifier_is_refused(
    postgres_server: PostgresServer, name: str
) -> None:
    with pytest.raises(ValueError, match="database name"):
        postgres_server.create_database(name)


def test_tests_using_the_server_are_marked_postgres(
    postgres_url: str, request: pytest.FixtureRequest
) -> None:
    assert request.node.get_closest_marker("postgres") is not None


def test_stopped_server_leaves_no_process_and_no_folder(postgres_server: PostgresServer) -> None:
    server = PostgresServer()
    server.start()
    folder = server.folder
    assert folder is not None
    assert _port_accepts_connections(server.host, server.port)

    server.stop()

    assert not folder.exists()
    assert not _port_accepts_connections(server.host, server.port)


def test_server_is_stopped_when_its_owner_is_killed(postgres_server: PostgresServer) -> None:
    owner_script = (
        "import time\n"
        "from support.pgserver import PostgresServer\n"
        "server = PostgresServer()\n"
        "server.start()\n"
        "print(server.port, server.folder, flush=True)\n"
        "time.sleep(120)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", owner_script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert owner.stdout is not None
        port_text, folder_text = owner.stdout.readline().split()
        port, folder = int(port_text), Path(folder_text)
        assert _port_accepts_connections("127.0.0.1", port)
    finally:
        # SIGKILL skips atexit handlers: only the watchdog can clean up now.
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()

    assert _wait_until_gone("127.0.0.1", port, folder)
