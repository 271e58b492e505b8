"""Named locks across every process and host sharing the index in PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg

from dockyard.index.locks import KeyedLocks, LockTimeout, try_hold
from dockyard.index.postgres_pool import NAMED_LOCKS, advisory_key, unavailable_if_unreachable

# Waiting for another holder polls, as for the file locks (index/locks.py).
_POLL_FIRST = 0.002
_POLL_MAX = 0.1


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

    def hold_if_free(self, key: str) -> contextlib.AbstractAsyncContextManager[bool]:
        return try_hold(self.hold, key)

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
