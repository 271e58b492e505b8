"""PostgreSQL connections as dockyard uses them: a psycopg pool bound to the event loop that
opened it, and a database that went away reported at once, as IndexUnavailable (the API's
503), rather than after the pool's timeout."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from dockyard.index.base import IndexUnavailable

# Advisory lock keys: (class, key) pairs of 32-bit integers, one class per use.
WRITE_LOCK = (0x646B7901, 0)  # every write transaction of the index
MIGRATION_LOCK = (0x646B7902, 0)
NAMED_LOCKS = 0x646B7903  # Locks.hold(name): an upload, the periodic re-sync
LOGIN_CLIENTS = 0x646B7904  # the login throttle, per client address (auth.throttle_postgres)


class LoopPool:
    """Pooled connections (autocommit) for the running event loop: connections belong to
    the loop that opened them, so a new loop (a CLI command runs a few) gets a new pool;
    `aclose` gives back the current one."""

    def __init__(self, conninfo: str, arguments: dict[str, Any], where: str) -> None:
        self.conninfo = conninfo
        self.arguments = arguments
        self.where = where  # for messages: the server, without its password
        self._pool: AsyncConnectionPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = False

    async def _opened(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            self._loop = loop
            self._pool = AsyncConnectionPool(self.conninfo, open=False,
                                             kwargs={"autocommit": True}, **self.arguments)
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

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection of the pool; IndexUnavailable if the server cannot be reached or
        the connection is lost meanwhile."""
        try:
            with unavailable_if_unreachable(self.where):
                pool = await self._opened()
                async with pool.connection() as connection:
                    yield connection
        except IndexUnavailable:
            self._failing = True
            raise

    async def aclose(self) -> None:
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = None


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
