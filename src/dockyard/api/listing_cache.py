"""Encoded tag-list and catalog pages, kept per worker while the index is unchanged.

A repository with thousands of tags is listed over and over (CI jobs polling for a tag,
tools resolving `latest`); reading thousands of rows and encoding them again each time
costs milliseconds. A page stays valid until the registry's metadata version moves, which
any write in any worker does, so a cached page is never older than the index.

The cache is bounded by what its entries really take: keys (which hold the client's `last`)
and bookkeeping count as well as the encoded bodies, so many tiny pages asked for under
distinct keys cannot grow it past its limit either.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from dockyard.metrics.own import count_listing

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
# The ordered dict's slot and link, the (version, page) pair and the page object: measured
# at about 250 bytes on CPython 3.11; rounded up.
ENTRY_OVERHEAD = 320


@dataclass(frozen=True, slots=True)
class EncodedPage:
    body: bytes
    next_last: str | None  # where the next page starts (for the Link header), if one follows


def footprint(value: object) -> int:
    """Bytes held by a key or version: tuples of strings and numbers, followed down."""
    size = sys.getsizeof(value)
    if isinstance(value, tuple):
        size += sum(footprint(item) for item in value)
    return size


class ListingCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size_bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Hashable, EncodedPage, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, version: Hashable) -> EncodedPage | None:
        entry = self._entries.get(key)
        if entry is None:
            count_listing(hit=False)
            return None
        if entry[0] != version:
            self._drop(key)
            count_listing(hit=False)
            return None
        self._entries.move_to_end(key)
        count_listing(hit=True)
        return entry[1]

    def put(self, key: Hashable, version: Hashable, page: EncodedPage) -> None:
        size = (ENTRY_OVERHEAD + footprint(key) + footprint(version)
                + sys.getsizeof(page.body) + sys.getsizeof(page.next_last))
        if size > self.max_bytes // 4:
            return  # one huge listing must not flush everything else
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (version, page, size)
        self.size_bytes += size
        while self.size_bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        _, _, size = self._entries.pop(key)
        self.size_bytes -= size
