"""The storage drivers the contract suite runs against, one factory each.

A driver joins the suite by adding a `DriverKind` to `DRIVER_KINDS`. Its factory gets the
test's fixture request and a fresh directory and yields an empty driver; a driver that needs a
server (S3) asks for that server's fixture with `request.getfixturevalue(...)`, which skips
the test where the server is unavailable, and removes what it made after the yield.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.storage import StorageDriver
from dockyard.storage.filesystem import FilesystemDriver
from dockyard.storage.memory import MemoryDriver


@dataclass(frozen=True)
class DriverKind:
    name: str
    factory: Callable[[pytest.FixtureRequest, Path], Iterator[StorageDriver]]
    # Keeps directories of their own: an emptied directory stays until pruned, and a file
    # cannot be written where a directory is or below a file. Object stores have neither.
    directories: bool = True
    # One instance may be called from several threads, each with its own event loop (the
    # concurrent-reader tests use threads; a driver bound to one loop reads in tasks).
    thread_safe: bool = True


def filesystem_driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageDriver]:
    yield FilesystemDriver(str(tmp_path / "store"))


def memory_driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageDriver]:
    yield MemoryDriver()


DRIVER_KINDS: dict[str, DriverKind] = {
    kind.name: kind for kind in (
        DriverKind("filesystem", filesystem_driver),
        DriverKind("inmemory", memory_driver),
    )
}
