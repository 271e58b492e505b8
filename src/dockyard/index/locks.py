"""Locks that every process serving one store respects: one holder per key at a time
(an upload, the periodic index re-sync).

An upload's data and saved hash states are shared by all workers (and by any other dockyard
on the same store), so chunks of one upload must never run at the same time anywhere: two
interleaved chunks could leave a hash state describing bytes the file does not hold.

Across processes the lock is an open-file-description byte-range lock (`F_OFD_SETLK`) on
one file beside the index: each key locks one byte at an offset taken from its hash, so no
lock files pile up, a crashed holder's locks vanish with it, and unrelated keys only collide
one time in 2**40. Within a process an asyncio lock per key comes first, so a process asks
the kernel for each key once at a time; entries go when nobody holds or waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

# struct flock on Linux: l_type, l_whence (short), l_start, l_len (off_t), l_pid (pid_t).
_FLOCK = struct.Struct("hhxxxxqqi4x")
_OFFSET_SPACE = 1 << 40
# Waiting for another process polls: contention means two requests for one upload at once,
# which well-behaved clients never cause, so a short sleep costs nothing in practice.
_POLL_FIRST = 0.002
_POLL_MAX = 0.1


class LockTimeout(Exception):
    """The key stayed locked by another request for longer than the caller would wait."""


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock
    users: int = 0


class KeyedLocks:
    """asyncio locks by key, with no entry left behind for a key nobody is using."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @contextlib.asynccontextmanager
    async def hold(self, key: str, timeout: float | None = None) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(asyncio.Lock())
        entry.users += 1
        try:
            if timeout == 0 and entry.lock.locked():
                raise LockTimeout(key)
            try:
                # An uncontended acquire returns without suspending, so timeout 0 works.
                await asyncio.wait_for(entry.lock.acquire(), None if timeout == 0 else timeout)
            except TimeoutError:
                raise LockTimeout(key) from None
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]


class StoreLocks:
    """One holder per key across every process using the same lock file (`path`), or
    within this process only when there is no file (an in-memory store)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._local = KeyedLocks()

    @contextlib.asynccontextmanager
    async def hold(self, key: str, timeout: float | None = None) -> AsyncIterator[None]:
        """Wait (up to `timeout` seconds, or forever) until `key` is ours, then hold it."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with self._local.hold(key, timeout):
            if self.path is None:
                yield
                return
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                delay = _POLL_FIRST
                while not _try_lock(fd, key):
                    if deadline is not None and loop.time() >= deadline:
                        raise LockTimeout(key)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _POLL_MAX)
                yield
            finally:
                os.close(fd)  # closing the description releases its lock

    def hold_if_free(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Hold `key` if nobody does (yields True), else yield False at once."""
        return try_hold(self.hold, key)


@contextlib.asynccontextmanager
async def try_hold(hold: Callable[[str, float | None], AbstractAsyncContextManager[None]],
                   key: str) -> AsyncIterator[bool]:
    """`hold(key, 0)` if the key is free (yields True), else yield False at once."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(hold(key, 0))
        except LockTimeout:
            yield False
            return
        yield True


def _offset(key: str) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _OFFSET_SPACE


def _try_lock(fd: int, key: str) -> bool:
    request = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, _offset(key), 1, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, request)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True
