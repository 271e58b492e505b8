"""Encoded tag-list and catalog pages, kept per worker while the index is unchanged.

A repository with thousands of tags is listed over and over (CI jobs polling for a tag,
tools resolving `latest`); reading thousands of rows and encoding them again each time
costs milliseconds. A page stays valid until the registry's metadata version moves, which
any write in any worker does, so a cached page is never older than the index.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

DEFAULT_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EncodedPage:
    body: bytes
    next_last: str | None  # where the next page starts (for the Link header), if one follows


class ListingCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Hashable, EncodedPage]] = OrderedDict()

    def get(self, key: Hashable, version: Hashable) -> EncodedPage | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] != version:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, version: Hashable, page: EncodedPage) -> None:
        if len(page.body) > self.max_bytes // 4:
            return  # one huge listing must not flush everything else
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (version, page)
        self._bytes += len(page.body)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        _, page = self._entries.pop(key)
        self._bytes -= len(page.body)
