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

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg

from dockyard.index import schema
from dockyard.index.base import SchemaMismatch
from dockyard.index.postgres_locks import PostgresLocks
from dockyard.index.postgres_pool import MIGRATION_LOCK, WRITE_LOCK, LoopPool
from dockyard.index.sql import BUILT_KEY, Row, SQLIndex, SQLWrite

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


class PostgresIndex(SQLIndex):
    def __init__(self, conninfo: str, pool_arguments: dict[str, float] | None = None,
                 where: str = "PostgreSQL") -> None:
        self.conninfo = conninfo
        self.where = where  # for messages: the server, without its password
        self._connections = LoopPool(conninfo, dict(pool_arguments or {}), where)
        self._session_locks = PostgresLocks(conninfo, where)
        self.locks = self._session_locks

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[PostgresStatements]:
        async with self._connections.connection() as connection:
            yield PostgresStatements(connection)

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[SQLWrite]:
        async with self._connections.connection() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", WRITE_LOCK)
            yield SQLWrite(PostgresStatements(connection))
            await connection.execute("UPDATE commits SET counter = counter + 1 WHERE id = 1")

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
        async with self._connections.connection() as connection, connection.transaction():
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
        await self._connections.aclose()

    def close(self) -> None:
        """Connections go with `aclose`, in the loop that opened them."""
