"""The index's size as gauges (`dockyard_index_entries{kind}`, `dockyard_index_blob_bytes`).

Every worker counts, on the index they share, when the index has changed since its last
count (checked every CHECK_EVERY seconds, a cheap question), and the gauges keep the value
written last (multiprocess mode "mostrecent"): whichever worker counted last, the scrape
shows one count of the whole index, at most CHECK_EVERY seconds old. Counting at scrape
time instead would need the index in the debug server's process, which an in-memory store
does not share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable

from dockyard.index.base import Index
from dockyard.metrics.own import OwnMetrics

log = logging.getLogger("dockyard.metrics")
CHECK_EVERY = 5.0
KINDS = ("repositories", "tags", "manifests", "blobs")


async def count_index_forever(index: Index, metrics: OwnMetrics,
                              every: float = CHECK_EVERY) -> None:
    entries = {kind: metrics.index_entries.labels(kind) for kind in KINDS}
    counted: Hashable = None
    while True:
        try:
            version = await index.version()
            if version != counted:
                counts = await index.entry_counts()
                for kind, child in entries.items():
                    child.set(counts[kind])
                metrics.index_blob_bytes.set(counts["blob_bytes"])
                counted = version
        except Exception as error:  # the database away for a while: count when it is back
            log.debug("counting the index for metrics failed: %s", error)
        await asyncio.sleep(every)
