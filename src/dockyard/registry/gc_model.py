"""What a garbage collection is asked to do, and what it reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_GRACE_PERIOD = 3600.0
# In the index's meta table while the index may not know every blob of the store (it was
# built from a store something else wrote, or made before it recorded candidates): the next
# collection is a full pass, whatever storage.index.solewriter says.
NEEDS_FULL_PASS_KEY = "gc_needs_full_pass"
# Blobs deleted per write transaction: large enough that transactions cost little, small
# enough that a manifest push waits only milliseconds for the lock.
SWEEP_BATCH = 256


@dataclass(frozen=True)
class GCOptions:
    dry_run: bool = False
    delete_untagged: bool = False
    grace_period: float = DEFAULT_GRACE_PERIOD
    upload_purge_age: float | None = 168 * 3600.0
    # storage.index.solewriter: nothing but dockyard (on this index) writes the store, so
    # the index knows every change and a collection may look at what changed alone.
    sole_writer: bool = False
    # Look at the whole store even so: blobs no index ever recorded (left by a crash
    # between a blob's move and its record, or by a registry before dockyard).
    full: bool = False


@dataclass
class GCReport:
    dry_run: bool
    manifests_deleted: list[str] = field(default_factory=list)
    blobs_deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    blobs_kept: int = 0
    blobs_kept_fresh: int = 0
    manifests_kept_fresh: int = 0
    uploads_purged: list[str] = field(default_factory=list)
    repositories_removed: list[str] = field(default_factory=list)
    repositories_reindexed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # False: only what changed since the last collection was looked at (candidates from
    # the index, no listing of the store).
    full_pass: bool = True
    full_pass_reason: str | None = None
    candidates: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[str, int, int], None]  # phase, done, total
