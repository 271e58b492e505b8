"""The index in PostgreSQL: several registries (processes or hosts) over one store share it.

Write transactions are real PostgreSQL transactions that first take one transaction-level
advisory lock, so writers follow one another as SQLite's BEGIN IMMEDIATE makes them do: a
manifest's blob check and garbage collection's delete exclude each other across hosts
exactly as they do across one host's workers. Reads take a pooled connection in autocommit
mode and see the latest commit.

Connections belong to the event loop that opened them; `aclose` gives them back, and the
next use (from another loop: a CLI command runs a few) opens new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from dockyard.index import schema
from dockyard.index.base import IndexUnavailable, SchemaMismatch
from dockyard.index.locks import KeyedLocks, LockTimeout
from dockyard.index.sql import BUILT_KEY, Row, SQLIndex, SQLWrite

# Advisory lock keys: (class, key) pairs of 32-bit integers, one class per use.
WRITE_LOCK = (0x646B7901, 0)  # every write transaction
MIGRATION_LOCK = (0x646B7902, 0)
NAMED_LOCKS = 0x646B7903  # Locks.hold(name): an upload, the periodic re-sync
LOGIN_CLIENTS = 0x646B7904  # the login throttle, per client address (auth.throttle_postgres)
_POLL_FIRST = 0.002
_POLL_MAX = 0.1

_placeholders: dict[str, str] = {}


def _postgres_sql(sql: str) -> str:
    """The shared queries' `?` placeholders as psycopg's `%s`."""
    converted = _placeholders.get(sql)
    if converted is None:
        converted = _placeholders[sql] = sql.replace("?", "%s")
    return converted


class PostgresStatements:
    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.connection.execute(_postgres_sql(sql), params)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.connection.cursor() as cursor:
            await cursor.executemany(_postgres_sql(sql), rows)

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = await self.connection.execute(_postgres_sql(sql), params)
        return await cursor.fetchall()

    async def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cursor = await self.connection.execute(_postgres_sql(sql), params)
        return await cursor.fetchone()


class PostgresLocks:
    """Named locks held as session-level advisory locks on one connection of this
    process's: they hold across every process and host using the database, and vanish
    with the connection if the process dies."""

    def __init__(self, conninfo: str, where: str) -> None:
        self.conninfo = conninfo
        self.where = where
        self._local = KeyedLocks()
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = asyncio.Lock()
        self._unlocking: set[asyncio.Task[None]] = set()

    async def _session(self) -> psycopg.AsyncConnection[Any]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._connection, self._loop, self._opening = None, loop, asyncio.Lock()
        async with self._opening:
            if self._connection is None or self._connection.closed:
                self._connection = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True)
        return self._connection

    async def _try_lock(self, key: tuple[int, int]) -> bool:
        with unavailable_if_unreachable(self.where):
            session = await self._session()
            try:
                return await _try_lock(session, key)
            except psycopg.OperationalError:
                if not session.broken:
                    raise
            # The session was cut (a database restart; every lock it held went with it):
            # a new one, once.
            return await _try_lock(await self._session(), key)

    @contextlib.asynccontextmanager
    async def hold(self, key: str, timeout: float | None = None) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        lock_key = (NAMED_LOCKS, advisory_key(key))
        async with self._local.hold(key, timeout):
            delay = _POLL_FIRST
            while not await self._try_lock(lock_key):
                if deadline is not None and loop.time() >= deadline:
                    raise LockTimeout(key)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)
            session = self._connection
            try:
                yield
            finally:
                if session is not None and not session.closed:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        # The server is stopping: the request answers first, and the
                        # lock goes after it (or with the connection, if the process
                        # ends before).
                        unlock = asyncio.create_task(_unlock(session, lock_key))
                        self._unlocking.add(unlock)
                        unlock.add_done_callback(self._unlocking.discard)
                    else:
                        await _unlock(session, lock_key)

    @contextlib.asynccontextmanager
    async def hold_if_free(self, key: str) -> AsyncIterator[bool]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self.hold(key, timeout=0))
            except LockTimeout:
                yield False
                return
            yield True

    async def aclose(self) -> None:
        if self._connection is not None and self._loop is asyncio.get_running_loop():
            await self._connection.close()
        self._connection = None


async def _unlock(session: psycopg.AsyncConnection[Any], key: tuple[int, int]) -> None:
    with contextlib.suppress(psycopg.OperationalError):
        await session.execute("SELECT pg_advisory_unlock(%s, %s)", key)


async def _try_lock(session: psycopg.AsyncConnection[Any], key: tuple[int, int]) -> bool:
    cursor = await session.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
    row = await cursor.fetchone()
    return bool(row and row[0])


@contextlib.contextmanager
def unavailable_if_unreachable(where: str) -> Iterator[None]:
    """A lost or refused connection as IndexUnavailable (the API's 503); other database
    errors are bugs and stay what they are."""
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as error:
        raise IndexUnavailable(f"the index database {where} is unavailable: "
                               f"{str(error).strip()}") from error


def advisory_key(name: str) -> int:
    """A name as the second half of an advisory lock's key (names may share one)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big",
                          signed=True)


class PostgresIndex(SQLIndex):
    def __init__(self, conninfo: str, pool_arguments: dict[str, float] | None = None,
                 where: str = "PostgreSQL") -> None:
        self.conninfo = conninfo
        self.where = where  # for messages: the server, without its password
        self.pool_arguments: dict[str, Any] = dict(pool_arguments or {})
        self._session_locks = PostgresLocks(conninfo, where)
        self.locks = self._session_locks
        self._pool: AsyncConnectionPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = False

    async def _connections(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            self._loop = loop
            self._pool = AsyncConnectionPool(self.conninfo, open=False,
                                             kwargs={"autocommit": True},
                                             **self.pool_arguments)
            await self._pool.open(wait=True)
        elif self._failing:
            # A connection failed: the pool would keep trying to replace it until its
            # timeout, so until one works, a connection of our own says at once whether
            # the server is back.
            probe = await psycopg.AsyncConnection.connect(self.conninfo)
            await probe.close()
            await self._pool.check()  # drops the idle connections the outage broke
            self._failing = False
        return self._pool

    @contextlib.contextmanager
    def _failures_noted(self) -> Iterator[None]:
        try:
            with unavailable_if_unreachable(self.where):
                yield
        except IndexUnavailable:
            self._failing = True
            raise

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[PostgresStatements]:
        with self._failures_noted():
            pool = await self._connections()
            async with pool.connection() as connection:
                yield PostgresStatements(connection)

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[SQLWrite]:
        with self._failures_noted():
            pool = await self._connections()
            async with pool.connection() as connection, connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", WRITE_LOCK)
                yield SQLWrite(PostgresStatements(connection))
                await connection.execute(
                    "UPDATE commits SET counter = counter + 1 WHERE id = 1")

    async def version(self) -> int:
        """The commit counter every write transaction moves (one row, one query)."""
        async with self.reading() as db:
            row = await db.fetch_one("SELECT counter FROM commits WHERE id = 1")
        return int(row[0]) if row else 0

    async def schema_version(self) -> int:
        # One connection of its own first: a server that cannot be reached is reported at
        # once with libpq's reason, where the pool would retry until its timeout.
        connection = await psycopg.AsyncConnection.connect(self.conninfo)
        await connection.close()
        async with self.reading() as db:
            exists = await db.fetch_one("SELECT to_regclass('meta') IS NOT NULL")
            if not exists or not exists[0]:
                return 0
            row = await db.fetch_one("SELECT value FROM meta WHERE key = ?",
                                     (schema.VERSION_KEY,))
        return int(row[0]) if row else 0

    async def check_schema(self) -> None:
        """SchemaMismatch unless the database is at the schema this dockyard knows."""
        current = await self.schema_version()
        if schema.pending(current):
            raise SchemaMismatch(
                f"the index in {self.where} is at schema version {current}, this dockyard "
                f"needs {schema.LATEST}: run `dockyard index migrate` first")

    async def migrate(self) -> list[schema.Migration]:
        """Apply the migrations the database lacks, in one transaction; those applied."""
        await self.schema_version()  # reports an unreachable server at once
        pool = await self._connections()
        async with pool.connection() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
            await connection.execute(schema.META_TABLE)
            db = PostgresStatements(connection)
            row = await db.fetch_one("SELECT value FROM meta WHERE key = ?",
                                     (schema.VERSION_KEY,))
            applied = schema.pending(int(row[0]) if row else 0)
            for migration in applied:
                await connection.execute(migration.postgres.encode())
                if migration.rebuild:
                    await db.execute("DELETE FROM meta WHERE key = ?", (BUILT_KEY,))
                await SQLWrite(db).set_meta(schema.VERSION_KEY, str(migration.version))
        return applied

    async def aclose(self) -> None:
        await self._session_locks.aclose()
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = None

    def close(self) -> None:
        """Connections go with `aclose`, in the loop that opened them."""
