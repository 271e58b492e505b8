"""The failed-login throttle in PostgreSQL, for registries (processes or hosts) sharing a
database: a guesser spreading its attempts over every host behind a load balancer gets
no more checks than against one.

The semantics are those of the SQLite throttle (see `throttle`): an attempt is counted
before its password is checked and forgotten if it succeeds; limits per client and
account and per client over all accounts; a block is logged once. Counting and recording
an attempt is one transaction that first takes a transaction-level advisory lock keyed by
the client address: every attempt that could change a count of that client's (on any
account) waits for the one before it to commit, on whichever host it runs, and clients
do not wait for one another. Times are the database server's clock, so hosts whose
clocks differ still agree on the window.

The tables (`login_attempts`, `login_blocks`) are made by the index's migration 3.
"""

from __future__ import annotations

from typing import Any

import psycopg

from dockyard.auth.throttle import (
    ACCOUNT_CHARS,
    MAX_CLIENT_FAILURES,
    MAX_FAILURES,
    WINDOW,
    log_block,
)
from dockyard.index.postgres_pool import LOGIN_CLIENTS, LoopPool, advisory_key

# Rows of other clients' expired attempts and blocks removed per login, skipping rows
# another transaction holds: never waiting there, that clean-up cannot deadlock.
SWEEP_ROWS = 100

_NOW = "SELECT extract(epoch FROM clock_timestamp())::float8"


class PostgresLoginThrottle:
    def __init__(self, conninfo: str, pool_arguments: dict[str, float] | None = None,
                 where: str = "PostgreSQL", max_failures: int = MAX_FAILURES,
                 max_client_failures: int = MAX_CLIENT_FAILURES, window: float = WINDOW
                 ) -> None:
        self.conninfo = conninfo
        self.where = where  # for messages: the server, without its password
        # Logins are few next to the index's queries: at most one connection kept idle.
        arguments: dict[str, Any] = dict(pool_arguments or {})
        arguments["min_size"] = min(int(arguments.get("min_size", 1)), 1)
        self._connections = LoopPool(conninfo, arguments, where)
        self.max_failures = max_failures
        self.max_client_failures = max_client_failures
        self.window = window

    async def begin(self, client: str, account: str) -> int | None:
        account = account[:ACCOUNT_CHARS]
        async with self._connections.connection() as connection:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                                         (LOGIN_CLIENTS, advisory_key(client)))
                attempt, blocked = await self._count(connection, client, account)
            await self._sweep(connection)
        if blocked is not None:
            failures, until, limit = blocked
            log_block(client, account, failures, until, limit, self.window)
        return attempt

    async def _count(self, connection: psycopg.AsyncConnection[Any], client: str,
                     account: str) -> tuple[int | None, tuple[int, float, str] | None]:
        """The attempt's id, or None and the block if this is its first refusal. Runs
        inside begin's transaction, holding the client's lock."""
        now = await _value(connection, _NOW)
        await connection.execute("DELETE FROM login_attempts WHERE client = %s AND at <= %s",
                                 (client, now - self.window))
        cursor = await connection.execute(
            "SELECT count(*) FILTER (WHERE account = %s), count(*) FROM login_attempts "
            "WHERE client = %s", (account, client))
        row = await cursor.fetchone()
        for_account, for_client = (int(row[0]), int(row[1])) if row else (0, 0)
        if for_account < self.max_failures and for_client < self.max_client_failures:
            attempt = await _value(connection, "INSERT INTO login_attempts (client, account, "
                                   "at) VALUES (%s, %s, %s) RETURNING id",
                                   (client, account, now))
            return int(attempt), None
        if for_account >= self.max_failures:
            limit, key, failures = "account", account, for_account
            oldest = await _value(connection, "SELECT min(at) FROM login_attempts "
                                  "WHERE client = %s AND account = %s", (client, account))
        else:
            limit, key, failures = "client", "", for_client
            oldest = await _value(connection, "SELECT min(at) FROM login_attempts "
                                  "WHERE client = %s", (client,))
        cursor = await connection.execute(
            "SELECT 1 FROM login_blocks WHERE client = %s AND kind = %s AND account = %s "
            "AND until > %s", (client, limit, key, now))
        if await cursor.fetchone() is not None:
            return None, None  # noted already
        # It lifts when the oldest failure counted leaves the window.
        until = (oldest if oldest is not None else now) + self.window
        await connection.execute(
            "INSERT INTO login_blocks (client, kind, account, until) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (client, kind, account) DO UPDATE SET until = excluded.until",
            (client, limit, key, until))
        return None, (failures, until, limit)

    async def _sweep(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Remove some expired attempts and blocks of any client, outside begin's
        transaction (it holds no lock then)."""
        now = await _value(connection, _NOW)
        await connection.execute(
            "DELETE FROM login_attempts WHERE id IN (SELECT id FROM login_attempts "
            "WHERE at <= %s LIMIT %s FOR UPDATE SKIP LOCKED)", (now - self.window, SWEEP_ROWS))
        await connection.execute(
            "DELETE FROM login_blocks WHERE ctid IN (SELECT ctid FROM login_blocks "
            "WHERE until <= %s LIMIT %s FOR UPDATE SKIP LOCKED)", (now, SWEEP_ROWS))

    async def forget(self, attempt: int) -> None:
        async with self._connections.connection() as connection:
            await connection.execute("DELETE FROM login_attempts WHERE id = %s", (attempt,))

    async def aclose(self) -> None:
        await self._connections.aclose()


async def _value(connection: psycopg.AsyncConnection[Any], sql: str,
                 params: tuple[Any, ...] = ()) -> Any:
    """The first column of the query's one row."""
    cursor = await connection.execute(sql, params)
    row = await cursor.fetchone()
    return row[0] if row else None
