"""Prometheus metrics on the debug server (http.debug): distribution's registry_http_* and
registry_storage_*, and dockyard's own, scraped over HTTP and parsed with prometheus_client's
parser after a known workload, with one worker process and with several."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gc.test_gc_in_server import wait_finished
from tests.support.oci import OCI_MANIFEST, digest_of, make_image, push_image, random_blob
from tests.support.server import RunningRegistry, free_port, run_registry
from tests.support.users import htpasswd_with_alice

Key = tuple[str, tuple[tuple[str, str], ...]]
ALICE = ("alice", "wonderland")


def scrape(url: str) -> dict[Key, float]:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def key(name: str, **labels: str) -> Key:
    return name, tuple(sorted(labels.items()))


def handler_of(path: str) -> str | None:
    """distribution's route name for a path, as its metrics label it."""
    rules = [(r"/v2/?", "base"), (r"/v2/_catalog", "catalog"), (r"/v2/.+/tags/list", "tags"),
             (r"/v2/.+/manifests/[^/]+", "manifest"), (r"/v2/.+/blobs/uploads/?", "blob_upload"),
             (r"/v2/.+/blobs/uploads/[^/]+", "blob_upload_chunk"),
             (r"/v2/.+/blobs/[^/]+", "blob"), (r"/admin/gc", "admin_gc")]
    return next((name for pattern, name in rules if re.fullmatch(pattern, path)), None)


class Ledger:
    """Every response the test's clients got, as the registry should have counted it."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()  # code, handler, method
        self.body_bytes: Counter[str] = Counter()  # by handler
        self.pulled = 0

    def hook(self, response: httpx.Response) -> None:
        response.read()
        handler = handler_of(response.request.url.path)
        if handler is None:
            return
        method = response.request.method.lower()
        self.requests[(str(response.status_code), handler, method)] += 1
        self.body_bytes[handler] += len(response.content)
        if handler == "blob" and method == "get" and response.status_code in (200, 206):
            self.pulled += len(response.content)

    def client(self, registry: RunningRegistry, **kwargs: Any) -> httpx.Client:
        return registry.client(auth=ALICE, event_hooks={"response": [self.hook]}, **kwargs)

    def get(self, registry: RunningRegistry, path: str, **kwargs: Any) -> httpx.Response:
        """A request on a connection of its own, for the kernel to hand to any worker."""
        with self.client(registry) as client:
            return client.get(path, **kwargs)


def changes(before: dict[Key, float], after: dict[Key, float], name: str
            ) -> dict[tuple[tuple[str, str], ...], float]:
    """What each series of `name` gained between two scrapes (zeros left out)."""
    found = {labels: value - before.get((metric, labels), 0.0)
             for (metric, labels), value in after.items() if metric == name}
    return {labels: value for labels, value in found.items() if value}


def wait_for(url: str, check: Callable[[dict[Key, float]], bool], timeout: float = 20
             ) -> dict[Key, float]:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def measured(request: pytest.FixtureRequest, tmp_path: Path
             ) -> Iterator[tuple[RunningRegistry, str]]:
    debug_port = free_port()
    config = {"http": {"workers": request.param, "admin": {"enabled": True},
                       "debug": {"addr": f"127.0.0.1:{debug_port}",
                                 "prometheus": {"enabled": True}}},
              "auth": {"htpasswd": {"realm": "metrics",
                                    "path": str(htpasswd_with_alice(tmp_path))},
                       "throttle": {"peraccount": 3}}}
    with run_registry(tmp_path, config=config) as running:
        yield running, f"http://127.0.0.1:{debug_port}/metrics"


def slow_upload(ledger: Ledger, registry: RunningRegistry, data: bytes,
                release: threading.Event) -> threading.Thread:
    """A one-request upload whose body stops halfway until `release` is set."""

    def body() -> Iterator[bytes]:
        yield data[:len(data) // 2]
        release.wait(30)
        yield data[len(data) // 2:]

    def run() -> None:
        with ledger.client(registry) as client:
            response = client.post(f"/v2/metrics/app/blobs/uploads/?digest={digest_of(data)}",
                                   content=body(), headers={"Content-Length": str(len(data))})
            assert response.status_code == 201, response.text

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def chunked_upload(client: httpx.Client, name: str, chunks: list[bytes]) -> None:
    location = client.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    offset = 0
    for chunk in chunks:
        response = client.patch(location, content=chunk, headers={
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            "Content-Type": "application/octet-stream"})
        assert response.status_code == 202, response.text
        location, offset = response.headers["Location"], offset + len(chunk)
    digest = digest_of(b"".join(chunks))
    separator = "&" if "?" in location else "?"
    assert client.put(f"{location}{separator}digest={digest}").status_code == 201


def run_gc(client: httpx.Client, **params: str) -> dict[str, Any]:
    assert client.post("/admin/gc", params={"graceperiod": "0", **params}).status_code == 202
    return wait_finished(client)


def test_counters_match_a_known_workload(measured: tuple[RunningRegistry, str]) -> None:
    registry, metrics_url = measured
    ledger = Ledger()
    # Once the probe that saw the server start (unauthenticated) is written.
    before = wait_for(metrics_url, lambda samples: samples.get(key(
        "registry_http_requests_total", code="401", handler="base", method="get")) == 1)
    kept = make_image(layer_count=2, layer_size=3000)
    dropped = make_image(layer_count=1, layer_size=5000)
    loose = [random_blob(4000), random_blob(6000)]
    slow = random_blob(70_000)

    with ledger.client(registry) as client:
        push_image(client, "metrics/app", "v1", kept)
        push_image(client, "metrics/app", "v2", dropped)
        chunked_upload(client, "metrics/app", loose)

    # An upload in progress shows while its body arrives, and no longer once it is stored.
    release = threading.Event()
    uploading = slow_upload(ledger, registry, slow, release)
    try:
        # Each worker writes what requests moved at most a second ago (metrics.tally).
        during = wait_for(metrics_url, lambda samples: samples.get(
            key("dockyard_uploads_in_progress")) == 1 and samples.get(
            key("registry_http_in_flight_requests", handler="blob_upload")) == 1)
    finally:
        release.set()
        uploading.join()
    assert during[key("dockyard_uploads_in_progress")] == 1
    assert during[key("registry_http_in_flight_requests", handler="blob_upload")] == 1

    for _ in range(4):  # manifest GETs
        assert ledger.get(registry, "/v2/metrics/app/manifests/v1",
                          headers={"Accept": OCI_MANIFEST}).status_code == 200
    for tag in ("v3", "v4", "v5"):  # and 404s
        assert ledger.get(registry, f"/v2/metrics/app/manifests/{tag}").status_code == 404
    for blob in (kept.config, *kept.layers):
        assert ledger.get(registry, f"/v2/metrics/app/blobs/{digest_of(blob)}").content == blob
    ranged = ledger.get(registry, f"/v2/metrics/app/blobs/{digest_of(kept.layers[0])}",
                        headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100
    with ledger.client(registry) as client:
        assert client.head(f"/v2/metrics/app/blobs/{digest_of(kept.config)}"
                           ).status_code == 200
        # One connection, one worker: its cache answers again what it answered once.
        for _ in range(3):
            assert client.get("/v2/metrics/app/tags/list").status_code == 200

    # Asked for credentials (not failures), wrong ones, and then too many wrong ones.
    for _ in range(2):
        assert ledger.get(registry, "/v2/", auth=None).status_code == 401
    for guess in ("a", "b", "c", "d"):
        expected = 429 if guess == "d" else 401
        assert ledger.get(registry, "/v2/", auth=("mallory", guess)).status_code == expected

    with ledger.client(registry) as client:
        assert client.delete(f"/v2/metrics/app/manifests/{dropped.digest}").status_code == 202
        assert run_gc(client, dryrun="true")["state"] == "finished"
        report = run_gc(client)["report"]

    kept_blobs = (kept.config, *kept.layers)
    expected_index = {"repositories": 1, "tags": 1, "manifests": 1, "blobs": len(kept_blobs)}

    def settled(samples: dict[Key, float]) -> bool:
        """The index counted again since the GC (each kind: a count may come between the
        collection's steps), and every request written."""
        requests = sum(value - before.get((name, labels), 0.0)
                       for (name, labels), value in samples.items()
                       if name == "registry_http_requests_total")
        return requests == sum(ledger.requests.values()) and all(
            samples.get(key("dockyard_index_entries", kind=kind)) == count
            for kind, count in expected_index.items())

    after = wait_for(metrics_url, settled)
    assert {tuple(labels): value for labels, value in changes(
        before, after, "registry_http_requests_total").items()} == \
        {(("code", code), ("handler", handler), ("method", method)): float(count)
         for (code, handler, method), count in ledger.requests.items()}
    by_method: Counter[tuple[tuple[str, str], ...]] = Counter()
    for (_, handler, method), count in ledger.requests.items():
        by_method[(("handler", handler), ("method", method))] += count
    assert changes(before, after, "registry_http_request_duration_seconds_count") == \
        {labels: float(count) for labels, count in by_method.items()}
    assert changes(before, after, "registry_http_response_size_bytes_sum") == \
        {(("handler", handler),): float(size) for handler, size in ledger.body_bytes.items()
         if size}
    assert not any(value for (name, _), value in after.items()
                   if name == "registry_http_in_flight_requests")
    assert after[key("dockyard_uploads_in_progress")] == 0

    pushed = sum(len(blob) for blob in (*kept_blobs, dropped.config, *dropped.layers, *loose,
                                        slow))
    assert changes(before, after, "dockyard_pushed_bytes_total") == {(): pushed}
    assert changes(before, after, "dockyard_pulled_bytes_total") == {(): ledger.pulled}
    assert ledger.pulled == sum(len(blob) for blob in kept_blobs) + 100
    assert changes(before, after, "dockyard_auth_failures_total") == {
        (("reason", "unauthorized"),): 3.0, (("reason", "throttled"),): 1.0}
    cache = changes(before, after, "dockyard_listing_cache_requests_total")
    assert sum(cache.values()) == 3 and cache.get((("result", "hit"),), 0) >= 1, cache
    assert changes(before, after, "dockyard_gc_runs_total") == {
        (("result", "dry_run"),): 1.0, (("result", "finished"),): 1.0}
    assert report["bytes_freed"] > sum(len(blob) for blob in loose)
    assert changes(before, after, "dockyard_gc_freed_bytes_total") == \
        {(): report["bytes_freed"]}
    assert after[key("dockyard_index_entries", kind="blobs")] == len(kept_blobs)
    assert after[key("dockyard_index_blob_bytes")] == sum(len(blob) for blob in kept_blobs)

    storage = changes(before, after, "registry_storage_action_seconds_count")
    for action in ("GetContent", "PutContent", "Stat", "List", "Move", "Delete"):
        assert storage.get((("action", action), ("driver", "filesystem")), 0) > 0, storage


def test_no_metrics_unless_prometheus_is_enabled(tmp_path: Path) -> None:
    debug_port = free_port()
    config = {"http": {"debug": {"addr": f"127.0.0.1:{debug_port}"}}}
    with run_registry(tmp_path / "debug", config=config) as running:
        assert httpx.get(running.url + "/v2/").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{debug_port}/metrics").status_code == 404
    with run_registry(tmp_path / "plain") as running:
        assert httpx.get(running.url + "/v2/").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{debug_port}/metrics")


def test_live_gauges_of_dead_workers_are_dropped_at_scrape(tmp_path: Path) -> None:
    """A worker killed mid-request leaves its in-flight gauge behind: the scrape forgets it,
    and keeps what the dead worker counted."""
    from dockyard.metrics import forget_dead_workers

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    names = [f"gauge_livesum_{gone.pid}.db", f"counter_{gone.pid}.db",
             f"gauge_livesum_{os.getpid()}.db", f"gauge_mostrecent_{gone.pid}.db"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    forget_dead_workers(str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(names[1:])


@pytest.mark.parametrize("workers", [1, 2])
def test_the_shared_directory_goes_with_the_server(tmp_path: Path, workers: int) -> None:
    """The workers' count files live in a directory of the temp dir: SIGTERM removes it, and
    after a SIGKILL (no cleanup possible) the next start removes the dead server's."""
    temp = tmp_path / "temp"
    temp.mkdir()
    config = {"http": {"workers": workers, "debug": {"addr": f"127.0.0.1:{free_port()}",
                                                     "prometheus": {"enabled": True}}}}
    with run_registry(tmp_path, config=config, env={"TMPDIR": str(temp)}) as running:
        [shared] = list(temp.iterdir())
        assert shared.name.startswith(f"dockyard-metrics-{running.process.pid}-")
        running.process.terminate()
        # One process ends by the signal, as it did before it cleaned up; several drain.
        assert running.process.wait(timeout=20) == (-15 if workers == 1 else 0)
    assert list(temp.iterdir()) == []
    with run_registry(tmp_path, config=config, env={"TMPDIR": str(temp)}) as killed:
        killed.process.kill()
        killed.process.wait()
    [left] = list(temp.iterdir())
    with run_registry(tmp_path, config=config, env={"TMPDIR": str(temp)}) as running:
        assert [path.name for path in temp.iterdir()] != [left.name]
        assert not left.exists()
