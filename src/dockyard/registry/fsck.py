"""Checking that every stored blob hashes to its digest.

Blobs are content-addressed, and a registry trusts a blob once it is in place: an existing
digest wins over a new upload of it. So bytes that do not match their digest (a damaged
disk, a store written by a tool that did not verify, or an upload race in old versions)
would be served for as long as they stay. This reads every blob once and says which do not
match; with `quarantine` it moves them out of the tree, so the digest reads as missing and
the next push of the real content stores it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dockyard.registry import layout
from dockyard.registry.gc import stored_blobs
from dockyard.registry.hashing import new_hasher
from dockyard.registry.reference import Digest
from dockyard.storage import PathNotFound, StorageDriver

QUARANTINE = "/dockyard/quarantine"
# Two blobs at a time: one hashing while the other's next piece is read.
PARALLEL = 2

Progress = Callable[[int, int], None]  # blobs done, blobs in all


@dataclass
class CorruptBlob:
    digest: str
    actual: str | None  # None: the blob has no data file
    size: int
    quarantined_to: str | None = None


@dataclass
class FsckReport:
    blobs_checked: int = 0
    bytes_checked: int = 0
    corrupt: list[CorruptBlob] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quarantine_path(digest: Digest) -> str:
    return f"{QUARANTINE}/{digest.algorithm}-{digest.hex}-{int(time.time())}"


async def verify_blobs(driver: StorageDriver, quarantine: bool = False,
                       progress: Progress | None = None) -> FsckReport:
    started = time.monotonic()
    report = FsckReport()
    digests = await stored_blobs(driver)
    queue: asyncio.Queue[Digest] = asyncio.Queue()
    for digest in digests:
        queue.put_nowait(digest)

    async def check_next() -> None:
        while not queue.empty():
            digest = queue.get_nowait()
            await _check(driver, digest, quarantine, report)
            if progress is not None:
                progress(report.blobs_checked, len(digests))

    await asyncio.gather(*(check_next() for _ in range(PARALLEL)))
    report.corrupt.sort(key=lambda item: item.digest)
    report.seconds = round(time.monotonic() - started, 3)
    return report


async def _check(driver: StorageDriver, digest: Digest, quarantine: bool,
                 report: FsckReport) -> None:
    hasher = new_hasher(digest.algorithm)
    size = 0
    try:
        async for piece in driver.read(layout.blob_data(digest)):
            size += len(piece)
            # hashlib and rehashes release the GIL: the other blob's read goes on meanwhile.
            await asyncio.to_thread(hasher.update, piece)
        actual: str | None = f"{digest.algorithm}:{hasher.hexdigest()}"
    except PathNotFound:
        actual = None
    report.blobs_checked += 1
    report.bytes_checked += size
    if actual == str(digest):
        return
    found = CorruptBlob(str(digest), actual, size)
    if quarantine:
        found.quarantined_to = quarantine_path(digest)
        await driver.move(layout.blob_dir(digest), found.quarantined_to)
    report.corrupt.append(found)
