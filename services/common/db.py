"""The async database: engines for SQLite and PostgreSQL, and the unit of work every handler uses.

Core tables only (no ORM): each service's store maps rows to its domain types itself, so the domain
model never sees SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiosqlite
from sqlalchemy import ColumnElement, Table, and_, event, text, update
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction, create_async_engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from services.common.errors import StaleEtag
from services.common.gate import FairGate
from services.common.idempotency import IdempotencyKey, IdempotencyStore, Replayed

if TYPE_CHECKING:
    from services.common.settings import DatabaseTls

log = logging.getLogger("aldredirekt.db")

# A check run inside a transaction just before it commits (see UnitOfWork and services.common.leases).
Fence = Callable[[AsyncConnection], Awaitable[None]]


def utc(moment: datetime) -> datetime:
    """A time in UTC, to store, compare or return. SQLite keeps the wall-clock digits and drops the
    offset, so times go in as UTC, and the naive ones it hands back are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class DriverStatement:
    """A Core statement compiled once for asyncpg, and run on the driver's own connection.

    SQLAlchemy's execute costs about as much CPU as the round trip itself: it keys, binds and wraps the
    result anew every time. For the few statements of a hot path, handing asyncpg the compiled SQL and
    positional arguments removes that. Outside a transaction that SQLAlchemy began, the statement runs
    in autocommit and is its own transaction. Values must already be of the driver's types (bool, int,
    str, bytes, aware datetime): no SQLAlchemy type processing happens on this path.
    """

    def __init__(self, statement: ClauseElement):
        compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]

    async def fetch(self, conn: AsyncConnection, values: Mapping[str, Any]) -> list[Any]:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        rows: list[Any] = await driver.fetch(self.sql, *self.arguments(values))
        return rows

    async def fetchval(self, conn: AsyncConnection, values: Mapping[str, Any]) -> Any:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        return await driver.fetchval(self.sql, *self.arguments(values))


async def save_at_revision(
    conn: AsyncConnection,
    table: Table,
    where: ColumnElement[bool],
    *,
    revision: int,
    values: Mapping[str, Any],
    name: str,
) -> None:
    """Writes `values` to the row `where` selects, provided it is still at `revision` (the one read);
    the values carry the row's next revision. Raises StaleEtag naming the resource when someone else
    wrote it in between, so that an update is never made on a stale read."""
    result = await conn.execute(
        update(table).where(and_(where, table.c.revision == revision)).values(**values)
    )
    if result.rowcount != 1:
        raise StaleEtag(name)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


_gates: weakref.WeakKeyDictionary[Engine, FairGate] = weakref.WeakKeyDictionary()


def connection_gate(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[None]:
    """The gate to pass before taking one of the engine's connections (none for engines made elsewhere)."""
    return _gates.get(engine.sync_engine) or contextlib.nullcontext()


@contextlib.asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection, taken in turn with every other caller of the engine (see FairGate)."""
    async with connection_gate(engine), engine.connect() as conn:
        yield conn


def create_engine(url: str, *, pool_size: int = 20, tls: DatabaseTls | None = None) -> AsyncEngine:
    """An engine for a service's own database; SQLite files get their folder created.

    The pool has `pool_size` connections and no overflow: an overflow connection is closed when it comes
    back to a full pool, and under load that closed and reopened connections by the thousand (1,826 in
    20,000 registrations). Units of work take connections through a FairGate one smaller than the pool:
    the access log's writer keeps a connection of its own (see AccessLogWriter).
    """
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30, "async_creator_fn": _connect_sqlite},
            pool_size=pool_size,
            max_overflow=0,
        )
        _tune_sqlite(engine)
    else:
        ssl_argument = tls.connect_argument() if tls is not None else None
        engine = create_async_engine(
            url,
            connect_args={} if ssl_argument is None else {"ssl": ssl_argument},
            pool_size=pool_size,
            max_overflow=0,
            # No pre-ping: it costs a round trip on every checkout; a dropped connection fails one
            # statement, and pool_recycle retires connections before servers and firewalls drop them.
            pool_recycle=1800,
        )
    _gates[engine.sync_engine] = FairGate(max(1, pool_size - 1))
    return engine


class _SqliteConnection(aiosqlite.Connection):
    """aiosqlite's connection, whose close ends an open transaction first.

    sqlite3 only really closes a connection once all its statements are finished: while one is not, such
    as an INSERT … RETURNING whose rows were never read, close() leaves it open, still holding its
    transaction and the database's write lock, until the garbage collector frees the cursor. SQLAlchemy
    closes a connection that way when the task using it is cancelled between a statement and its fetch (a
    job stopped, a call whose client gave up); every other writer then waited out its busy timeout (30 s)
    and failed with "database is locked". A ROLLBACK first aborts the unfinished statements, and the close
    that follows it on the connection's thread is a real one.
    """

    async def close(self) -> None:
        if self._connection is not None:
            try:
                await self._execute(_end_transaction, self._connection)  # type: ignore[no-untyped-call]
            except sqlite3.Error as error:
                log.warning("rolling back before closing a SQLite connection failed: %s", error)
        await super().close()


def _end_transaction(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def _connect_sqlite(database: str, **kwargs: Any) -> _SqliteConnection:
    """What aiosqlite.connect does, with the connection above; SQLAlchemy awaits it."""
    connection = _SqliteConnection(functools.partial(sqlite3.connect, database, **kwargs), iter_chunk_size=64)
    # As SQLAlchemy's own aiosqlite connect does: the connection's thread must not keep the process alive.
    connection._thread.daemon = True
    return connection


def _tune_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling would start deferred transactions behind our back;
        # we begin them ourselves below so that writers take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer that began deferred and upgrades later can fail at once with "database is locked"
        # when another writer got there first; BEGIN IMMEDIATE waits for the lock instead.
        mode = "IMMEDIATE" if connection.info.get("sqlite_write", True) else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")

    @event.listens_for(sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        # The mode lives on the pooled connection: a read-only unit of work must not leave it behind
        # for the next user, who may write through engine.begin() (the access log, migrations).
        if record is not None:
            record.info.pop("sqlite_write", None)


async def database_answers(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@dataclass
class Idempotency:
    """What a unit of work needs to make one command safe to retry."""

    key: IdempotencyKey
    encode: Callable[[Any], bytes]


class UnitOfWork:
    """One transaction. Rolls back unless `commit()` is called; a service subclasses it to add repositories.

    With an `Idempotency` attached, entering claims the request_id first (raising `Replayed` with the first
    answer on a replay; a concurrent retry waits for the first call's transaction to end) and
    `commit(answer)` stores the encoded answer in the same transaction. A reader (`write=False`) with an
    `Idempotency` only looks the request up.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        write: bool = True,
        idempotency: Idempotency | None = None,
        fence: Fence | None = None,
    ):
        self.engine = engine
        self.write = write
        self.idempotency = idempotency
        # Checked just before commit: work under a lease (services.common.leases) commits only while the
        # lease is still the one the work began under.
        self.fence = fence
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None
        self._gate: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
        self.committed = False

    @property
    def conn(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not entered")
        return self._conn

    def bind(self, conn: AsyncConnection) -> None:
        """Called on entry; subclasses build their repositories on the connection here."""

    async def __aenter__(self) -> Self:
        self._gate = connection_gate(self.engine)
        await self._gate.__aenter__()
        try:
            self._conn = await self.engine.connect()
        except BaseException:
            await self._gate.__aexit__(None, None, None)
            raise
        try:
            if self.engine.dialect.name == "sqlite":
                info = (await self._conn.get_raw_connection()).info
                info["sqlite_write"] = self.write
            elif not self.write:
                # A reader on PostgreSQL runs without BEGIN and ROLLBACK, two round trips that would cost
                # more than most reads: under READ COMMITTED each statement takes its own snapshot inside
                # a transaction too, so nothing is lost. (The pool resets the mode when it takes the
                # connection back.)
                await self._conn.execution_options(isolation_level="AUTOCOMMIT")
            self._tx = await self._conn.begin()
            self.bind(self._conn)
            if self.idempotency is not None:
                # A writer claims the request_id; a reader (a command checking early whether it was
                # answered before) only looks, leaving the claim to the writer that follows.
                store = IdempotencyStore(self._conn)
                key = self.idempotency.key
                stored = await (store.claim(key) if self.write else store.find(key))
                if stored is not None:
                    raise Replayed(stored)
        except BaseException:
            await self._close(rollback=True)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close(rollback=not self.committed)

    async def commit(self, answer: Any = None) -> None:
        """Commits; `answer` is what the command returns, remembered for replays of its request_id."""
        if self._tx is None:
            raise RuntimeError("the unit of work is not entered")
        if self.idempotency is not None:
            await IdempotencyStore(self.conn).answer(self.idempotency.key, self.idempotency.encode(answer))
        if self.fence is not None:
            await self.fence(self.conn)
        await self._tx.commit()
        self.committed = True

    async def rollback(self) -> None:
        if self._tx is not None and self._tx.is_active:
            await self._tx.rollback()

    async def _close(self, *, rollback: bool) -> None:
        if self._conn is None:
            return
        try:
            if rollback:
                await self.rollback()
        finally:
            try:
                await self._conn.close()
            finally:
                self._conn = None
                self._tx = None
                await self._gate.__aexit__(None, None, None)
