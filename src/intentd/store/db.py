"""The application database: one async engine per process."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, AsyncIterator, TypeVar

import asyncpg
import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from intentd.config import Settings

log = structlog.get_logger("intentd.store")
T = TypeVar("T")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Store:
    """Owns the engines; hands out transactions (``tx``) and read connections (``read``).

    ``run_read`` and ``run_write`` run a whole function of a sync connection in
    one go: the hot paths (a socket's auth, an execution's acceptance, the
    event log) use them. On SQLite each statement of an async connection is
    several thread hops (cursor, execute, fetch, close, rollback); measured
    here, a one-row read took 1.2 ms that way and 0.4 ms as one function in a
    reader thread.
    """

    def __init__(self, url: str, *, pool_size: int = 8, synchronous: str = "normal", echo: bool = False) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self._readers: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        # SQLite's writers in this process take turns here rather than in
        # SQLite's busy handler, which sleeps up to 100 ms between tries.
        self._write_turn = asyncio.Lock()
        options: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads, "echo": echo}
        if self.dialect == "sqlite":
            path = url.split(":///", 1)[1]
            on_disk = bool(path) and path != ":memory:"
            if on_disk:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # One connection: SQLite has a single writer anyway, and queueing
            # in the pool beats "database is locked" retries.
            self.engine: AsyncEngine = create_async_engine(
                url, pool_size=1, max_overflow=0, pool_timeout=60, **options
            )
            on_connect = partial(_sqlite_on_connect, synchronous=synchronous)
            event.listen(self.engine.sync_engine, "connect", on_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_on_begin)
            if on_disk:
                # Readers beside the writer (WAL), each statement seeing the latest commit.
                self._sync_reader = _sync_sqlite_engine(path, pool_size, options, on_connect)
                self._readers = ThreadPoolExecutor(pool_size, thread_name_prefix="intentd-sqlite-read")
                self._sync_writer = _sync_sqlite_engine(path, 1, options, on_connect)
                event.listen(self._sync_writer, "begin", _sqlite_on_begin)
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="intentd-sqlite-write")
        else:
            self.engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size // 2,
                pool_timeout=30, connect_args={"timeout": 5, "command_timeout": 30}, **options,
            )
            ping_when_idle(self.engine.sync_engine)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.app_database_url, pool_size=settings.db_pool_size, synchronous=settings.sqlite_synchronous)

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncConnection]:
        """A transaction: committed when the block ends, rolled back on error."""
        if self._writer is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_turn, self.engine.begin() as conn:
            yield conn

    async def run_write(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(connection)`` in one transaction, committed when it returns, rolled back if it raises:
        in one hop to the writer thread (SQLite) or via the async driver."""
        if self._writer is None:
            async with self.engine.begin() as conn:
                return await conn.run_sync(fn)
        async with self._write_turn:
            return await asyncio.get_running_loop().run_in_executor(self._writer, self._write_in_thread, fn)

    def _write_in_thread(self, fn: Callable[[sa.Connection], T]) -> T:
        with self._sync_writer.begin() as conn:
            return fn(conn)

    async def write_native(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """SQLite: ``fn(sqlite3 connection)`` in one transaction, in one hop to the writer thread.

        For the hottest writes (acceptance, the event log), as ``fetch_native``
        is on PostgreSQL: through SQLAlchemy's layers an acceptance took 0.42
        ms of the writer's CPU, 0.09 ms of it sqlite3's. Errors come out as
        SQLAlchemy's (``IntegrityError``, ``OperationalError``…), as from ``run_write``.
        """
        if self._writer is None:
            raise RuntimeError("write_native needs an on-disk SQLite database")
        async with self._write_turn:
            return await asyncio.get_running_loop().run_in_executor(self._writer, self._write_native_in_thread, fn)

    def _write_native_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        pooled = self._sync_writer.raw_connection()  # the writer's one connection, its pragmas set
        try:
            conn: sqlite3.Connection = pooled.driver_connection
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        except sqlite3.Error as error:
            raise sa_exc.DBAPIError.instance(None, None, error, sqlite3.Error, hide_parameters=True) from error
        finally:
            pooled.close()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def run_read(self, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(connection)`` for reading, in one hop to a reader thread (SQLite) or via the async driver."""
        if self._readers is None:
            async with self.engine.connect() as conn:
                return await conn.run_sync(fn)
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read_in_thread, fn)

    def _read_in_thread(self, fn: Callable[[sa.Connection], T]) -> T:
        with self._sync_reader.connect() as conn:
            return fn(conn)

    async def fetch_native(self, statement: NativeStatement, params: Mapping[str, Any]) -> list[Any]:
        """Run one PostgreSQL statement, its own transaction, straight on a pooled asyncpg connection.

        For the hottest writes (acceptance, the event log): through
        SQLAlchemy's layers such a statement took 0.4 ms of CPU, 0.1 ms of it
        asyncpg's; the pool's connection alone, without an ``AsyncConnection``
        around it, takes half of that. Errors come out as SQLAlchemy's, as
        from ``execute``: a refused statement as ``IntegrityError`` or
        ``DBAPIError``, any other failure as ``OperationalError``, its
        connection invalidated.
        """
        args = [params[name] for name in statement.names]
        pooled = await self.engine.raw_connection()
        driver = pooled.driver_connection
        try:
            return await driver.fetch(statement.sql, *args)
        except Exception as error:
            # The server refused the statement on a live connection; anything
            # else (a killed backend, a timeout, a protocol error) leaves the
            # connection in doubt, and the pool replaces it.
            refused = isinstance(error, asyncpg.PostgresError) and not driver.is_closed()
            if not refused:
                pooled.invalidate(error)
            kind = (
                sa_exc.OperationalError if not refused
                else sa_exc.IntegrityError if isinstance(error, asyncpg.IntegrityConstraintViolationError)
                else sa_exc.DBAPIError
            )
            raise kind(statement.sql, None, error, hide_parameters=True, connection_invalidated=not refused) from error
        finally:
            pooled.close()  # back to the pool: no transaction was begun, so its reset sends nothing

    def insert(self, table: sa.Table) -> Any:
        """A dialect-specific INSERT that supports ``on_conflict_do_nothing``."""
        return dialect_insert(self.dialect, table)

    async def ping(self) -> None:
        await self.run_read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())

    async def close(self) -> None:
        await self.engine.dispose()
        if self._readers is not None:
            await asyncio.to_thread(self._readers.shutdown)
            await asyncio.to_thread(self._sync_reader.dispose)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.shutdown)
            await asyncio.to_thread(self._sync_writer.dispose)


# A connection is checked before use only when it has been idle this long;
# one in steady use was alive a moment ago (HikariCP's "alive bypass window").
# The asyncpg dialect's ping is three round trips (BEGIN, ";", ROLLBACK): on
# every checkout it was three of an execution's ~eight round trips. Ours is one.
PING_WHEN_IDLE_FOR = 0.5


def ping_when_idle(engine: sa.Engine) -> None:
    """Pessimistic disconnect handling: a dead idle connection is replaced before anyone uses it."""

    @event.listens_for(engine, "checkin")
    def idle_from(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_WHEN_IDLE_FOR:
            return  # just opened, or in steady use
        if engine.dialect.driver == "asyncpg":
            # One round trip, not the dialect's three. The simple query
            # protocol prepares nothing: a transaction-mode pgbouncer takes it.
            try:
                await_only(record.driver_connection.execute("SELECT 1"))
            except Exception as exc:  # whatever it was, this connection cannot be trusted
                raise sa_exc.DisconnectionError(str(exc)) from exc
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):
                raise sa_exc.DisconnectionError(str(exc)) from exc  # the pool connects afresh
            raise


@dataclass(frozen=True, slots=True)
class NativeStatement:
    """A PostgreSQL statement in asyncpg's form (``$1``…), and the parameter name of each number."""

    sql: str
    names: tuple[str, ...]


def native_statement(sql: str) -> NativeStatement:
    """``sql`` written with ``:name`` parameters, numbered in order of first use."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return NativeStatement(re.sub(r"(?<![:\w]):(\w+)", number, sql), tuple(names))


def dialect_insert(dialect: str, table: sa.Table) -> Any:
    """An INSERT of ``dialect`` ("sqlite" or "postgresql") that supports ``on_conflict_do_nothing``."""
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)


def _sync_sqlite_engine(path: str, connections: int, options: dict[str, Any],
                        on_connect: Callable[[Any, Any], None]) -> sa.Engine:
    """A sync engine on the database file, for functions run whole in a thread of ours."""
    engine = sa.create_engine(
        f"sqlite:///{path}", pool_size=connections, max_overflow=0, pool_timeout=60,
        connect_args={"check_same_thread": False}, **options,
    )
    event.listen(engine, "connect", on_connect)
    return engine


def _sqlite_on_connect(dbapi_conn: Any, _record: Any, synchronous: str) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_on_begin)
    cursor = dbapi_conn.cursor()
    for pragma in ("busy_timeout=10000", "journal_mode=WAL", f"synchronous={_synchronous(synchronous)}",
                   "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def sqlite_synchronous(engine: sa.Engine, level: str) -> None:
    """Every connection of ``engine`` at SQLite's ``synchronous`` ``level``, those open already included.

    For an engine made elsewhere (DBOS's): a connection is set on its next checkout.
    """
    pragma = f"PRAGMA synchronous={_synchronous(level)}"

    @event.listens_for(engine, "checkout")
    def set_level(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("synchronous") != level:
            dbapi_connection.execute(pragma)
            record.info["synchronous"] = level


def _synchronous(level: str) -> str:
    if level not in ("normal", "full"):  # it goes into a statement
        raise ValueError(f"SQLite's synchronous level is 'normal' or 'full', not {level!r}")
    return level.upper()


def _sqlite_on_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front, so a transaction never fails
    # half-way when another process (an `intentd user` command) writes too.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


# serialization_failure, deadlock_detected, too_many_connections, cannot_connect_now
_RETRYABLE_STATES = frozenset({"40001", "40P01", "53300", "57P03"})


def _sqlstate(orig: BaseException | None) -> str | None:
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_transient(exc: BaseException) -> bool:
    """A lost or refused database connection, as opposed to a wrong statement."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.DBAPIError) and _sqlstate(exc.orig) in _RETRYABLE_STATES:
        return True  # the transaction lost a race; running it again is the cure
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return not isinstance(exc.orig, sqlite3.OperationalError) or "locked" in str(exc.orig)
    return isinstance(exc, (OSError, ConnectionError, TimeoutError))


async def retry_transient(fn: Callable[[], Awaitable[T]], *, what: str) -> T:
    """Run ``fn`` until it succeeds or fails for a reason other than connectivity.

    Work in flight waits out a database outage instead of failing: like DBOS
    itself, we trade availability for not losing what was accepted.
    """
    delay = 0.1
    while True:
        try:
            return await fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("database unreachable, retrying", what=what, error=type(exc).__name__, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
