"""The cache's metrics on the debug server (distribution's http.debug), summed over the
worker processes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.oci import OCI_MANIFEST, digest_of, make_image, push_image
from tests.support.server import free_port, run_registry

pytestmark = pytest.mark.clients


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def test_fetches_failures_and_stale_answers_are_counted_across_workers(
        tmp_path: Path) -> None:
    upstream_port, debug_port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    image = make_image(layer_count=2)
    config = {"proxy": {"remoteurl": upstream_url},
              "http": {"workers": 2, "debug": {"addr": f"127.0.0.1:{debug_port}",
                                               "prometheus": {"enabled": True}}}}
    metrics_url = f"http://127.0.0.1:{debug_port}/metrics"
    with run_registry(tmp_path / "cache", config=config) as cache:
        with run_registry(tmp_path / "upstream", kind="distribution",
                          port=upstream_port) as upstream, upstream.client() as pusher:
            push_image(pusher, "team/app", "v1", image)
            # Separate connections, so both workers are likely to take some.
            for _ in range(3):
                assert httpx.get(f"{cache.url}/v2/team/app/manifests/v1",
                                 headers={"Accept": OCI_MANIFEST}).status_code == 200
            for blob in (image.config, *image.layers):
                assert httpx.get(f"{cache.url}/v2/team/app/blobs/{digest_of(blob)}"
                                 ).content == blob
        for _ in range(4):
            assert httpx.get(f"{cache.url}/v2/team/app/manifests/v1",
                             headers={"Accept": OCI_MANIFEST}).status_code == 200
        assert httpx.get(f"{cache.url}/v2/team/other/manifests/v1").status_code == 503
        up = (("upstream", upstream_url),)
        deadline = time.monotonic() + 10
        while True:  # a blob is counted when its fetch is committed, just after the answer
            samples = scrape(metrics_url)
            if samples.get(("dockyard_proxy_fetches_total", (("kind", "blob"), *up))) == 3 \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert samples[("dockyard_proxy_fetches_total", (("kind", "manifest"), *up))] == 1
        assert samples[("dockyard_proxy_fetches_total", (("kind", "blob"), *up))] == 3
        assert samples[("dockyard_proxy_fetched_bytes_total", up)] == \
            len(image.config) + sum(len(layer) for layer in image.layers)
        assert samples[("dockyard_proxy_stale_served_total", up)] == 4
        assert samples[("dockyard_proxy_upstream_failures_total",
                        (("kind", "unavailable"), *up))] == 5
        assert httpx.get(f"http://127.0.0.1:{debug_port}/other").status_code == 404
