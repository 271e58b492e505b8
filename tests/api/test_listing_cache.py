"""The listing cache counts what its entries really hold, keys included."""

from __future__ import annotations

from dockyard.api.listing_cache import EncodedPage, ListingCache

LIMIT = 1024 * 1024


def test_keys_count_against_the_limit() -> None:
    cache = ListingCache(LIMIT)
    empty = EncodedPage(b'{"name":"r","tags":[]}', None)
    for number in range(2000):
        # A 100 KB key with a 22-byte body: counting bodies alone would keep all of them.
        cache.put(("tags", "r", f"{number:05d}" + "x" * 100_000, 10), (1, 0), empty)
    assert cache.size_bytes <= LIMIT
    assert len(cache) <= LIMIT // 100_000


def test_small_pages_are_bounded_by_count_too() -> None:
    cache = ListingCache(LIMIT)
    empty = EncodedPage(b"{}", None)
    for number in range(100_000):
        cache.put(("catalog", f"name{number}", 1), (1, 0), empty)
    assert cache.size_bytes <= LIMIT
    # Each entry costs at least its bookkeeping, so far fewer than 100,000 stay.
    assert len(cache) < LIMIT // 200


def test_recent_pages_are_kept_and_stale_ones_dropped() -> None:
    cache = ListingCache(LIMIT)
    page = EncodedPage(b'{"repositories":["a"]}', None)
    cache.put(("catalog", None, None), (1, 0), page)
    assert cache.get(("catalog", None, None), (1, 0)) == page
    assert cache.get(("catalog", None, None), (2, 0)) is None
    assert len(cache) == 0 and cache.size_bytes == 0
