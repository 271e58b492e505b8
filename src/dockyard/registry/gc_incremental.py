"""Garbage collection in proportion to what changed, where dockyard alone writes the store.

Every change that can make a blob garbage is recorded in the index as it is made: an upload
(garbage until a manifest needs it), and everything a forgotten manifest, layer link or
repository named. With no other writer, that list is complete, so the collection looks at
those candidates alone: no listing of the store, no comparison of the index with it. Each
candidate goes through the same sweep as a full pass, inside write transactions, and stops
being one once it is deleted or found in use (losing that use later makes it one again).

What no index ever recorded is left to a full pass: blobs a registry wrote before dockyard,
or one a crash left between its move into place and its record.
"""

from __future__ import annotations

import time

from dockyard.index.base import Index
from dockyard.registry.errors import DigestInvalid
from dockyard.registry.gc_model import SWEEP_BATCH, GCOptions, GCReport, Progress
from dockyard.registry.gc_repositories import remove_empty_repositories
from dockyard.registry.gc_sweep import sweep_blobs
from dockyard.registry.reference import Digest
from dockyard.storage import StorageDriver


async def collect_candidates(driver: StorageDriver, index: Index, options: GCOptions,
                             report: GCReport, progress: Progress | None = None) -> None:
    """Sweep the index's garbage candidates, then the repositories left empty."""
    report.full_pass = False
    cutoff = time.time() - options.grace_period
    if not options.dry_run:
        async with index.writing() as db:
            report.blobs_kept += await db.forget_referenced_candidates()
    candidates = await index.gc_candidates()
    report.candidates = len(candidates)
    digests = []
    for text in candidates:
        try:
            digests.append(Digest.parse(text))
        except DigestInvalid:
            continue
    for start in range(0, len(digests), SWEEP_BATCH):
        await sweep_blobs(driver, index, digests[start:start + SWEEP_BATCH], {}, cutoff,
                          options.dry_run, report, settle_candidates=True)
        if progress is not None:
            progress("blobs", min(start + SWEEP_BATCH, len(digests)), len(digests))
    report.repositories_removed = await remove_empty_repositories(
        driver, index, await index.repositories_without_manifests(), cutoff, options.dry_run)
