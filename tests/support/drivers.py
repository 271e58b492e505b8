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
from dockyard.storage.s3 import S3Driver, S3Settings
from tests.support.s3 import S3_BACKENDS, S3Bucket, bucket_on, service_of


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


def s3_settings(bucket: S3Bucket, **overrides: object) -> S3Settings:
    """Settings for a driver that works under the bucket's prefix (its root directory)."""
    options: dict[str, object] = {
        "bucket": bucket.bucket, "region": bucket.region, "regionendpoint": bucket.endpoint,
        "accesskey": bucket.access_key, "secretkey": bucket.secret_key,
        "forcepathstyle": bucket.service.path_style, "rootdirectory": f"/{bucket.prefix}",
        "secure": bucket.endpoint.startswith("https:")}
    options.update(overrides)
    return S3Settings(**options)  # type: ignore[arg-type]


def s3_driver_on(backend: str) -> Callable[[pytest.FixtureRequest, Path],
                                            Iterator[StorageDriver]]:
    def s3_driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageDriver]:
        with bucket_on(service_of(request, backend)) as bucket:
            # Parts of S3's smallest size, so the tests' files span several.
            yield S3Driver(s3_settings(bucket, chunksize=5 * 1024 * 1024))
    return s3_driver


DRIVER_KINDS: dict[str, DriverKind] = {
    kind.name: kind for kind in (
        DriverKind("filesystem", filesystem_driver),
        DriverKind("inmemory", memory_driver),
        # Its client belongs to one event loop at a time.
        *(DriverKind(f"s3-{backend}", s3_driver_on(backend), directories=False,
                     thread_safe=False) for backend in S3_BACKENDS),
    )
}
