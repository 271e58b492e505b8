"""Whether the store can be used: listed, written, and not out of space.

Load balancers and operators poll this; a store that can still be read but no longer
written (a full disk, a read-only remount, permissions changed under the registry) fails
every push while pulls go on, so it is reported too, not only a store that cannot be listed.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass

from dockyard.registry import layout
from dockyard.storage import PathNotFound, StorageDriver

# Below this much free space pushes are about to fail: report it before they do.
MIN_FREE_BYTES = 32 * 1024 * 1024
# Where pushes write (distribution ignores files directly in its v2 directory).
PROBE_PREFIX = f"{layout.ROOT}/.dockyard-health-"


@dataclass(frozen=True, slots=True)
class StorageHealth:
    problem: str | None  # a fixed phrase safe to show anyone; None when healthy
    cause: str | None = None  # what went wrong, for the log (may name paths)

    @property
    def ok(self) -> bool:
        return self.problem is None


HEALTHY = StorageHealth(None)


def describe_os_error(error: OSError) -> str:
    """A phrase for a storage failure, the same for every path (clients see it)."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "storage is full"
    if error.errno == errno.EROFS:
        return "storage is read-only"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "storage is not writable (permission denied)"
    return "storage is not available"


async def check_storage(driver: StorageDriver, probe_writes: bool = True) -> StorageHealth:
    try:
        await driver.list("/")
    except PathNotFound:
        pass  # an empty store
    except Exception as error:
        return StorageHealth("storage is not available", f"{type(error).__name__}: {error}")
    if not probe_writes:
        return HEALTHY
    probe = f"{PROBE_PREFIX}{socket.gethostname()}-{os.getpid()}"
    try:
        await driver.put_content(probe, b"ok")
        await driver.delete(probe)
    except OSError as error:
        return StorageHealth(describe_os_error(error), f"writing {probe}: {error}")
    except Exception as error:
        return StorageHealth("storage is not writable", f"{type(error).__name__}: {error}")
    free = await driver.free_space()
    if free is not None and free < MIN_FREE_BYTES:
        return StorageHealth("storage is full",
                             f"{free} bytes free, below {MIN_FREE_BYTES} bytes")
    return HEALTHY
