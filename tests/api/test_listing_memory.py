"""Tag lists and catalog pages asked for with hostile `last` values do not grow the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.memory import server_rss_kib
from tests.support.oci import make_image, push_image
from tests.support.server import Storage, run_registry

REQUESTS = 2000
JUNK = "x" * 60_000  # neither a tag nor a repository name; fits in a 64 KiB request head
# The listing cache may hold 16 MiB; the rest is room for the allocator on a busy machine.
ALLOWED_GROWTH_KIB = 48 * 1024


@pytest.mark.filesystem_only(reason="the storage plays no part: these "
                             "listings are answered from the index and the listing cache")
def test_junk_last_values_do_not_accumulate(tmp_path: Path, storage: Storage) -> None:
    with run_registry(tmp_path, config={"http": {"workers": 1}}, storage=storage) as registry, \
            registry.client() as client:
        push_image(client, "hostile/tags", "latest", make_image())
        for path in ("/v2/hostile/tags/tags/list", "/v2/_catalog"):  # warm up both handlers
            assert client.get(path, params={"last": "a" + JUNK}).status_code == 200
        before = server_rss_kib(registry.process.pid)
        for number in range(REQUESTS):
            path = "/v2/hostile/tags/tags/list" if number % 2 else "/v2/_catalog"
            response = client.get(path, params={"last": f"{number:05d}{JUNK}", "n": 10})
            assert response.status_code == 200
        growth = server_rss_kib(registry.process.pid) - before
        assert growth < ALLOWED_GROWTH_KIB, f"server grew by {growth} KiB"
        # Listings still work, and are still paginated.
        page = client.get("/v2/hostile/tags/tags/list", params={"n": 1})
        assert page.json() == {"name": "hostile/tags", "tags": ["latest"]}
