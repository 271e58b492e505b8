"""The operator commands on an S3 bucket, as subprocesses: `garbage-collect`, `fsck`,
`index rebuild` and `du --config` work there as on a filesystem, and what they leave is
checked key by key in the bucket and by pulling every image that must remain."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gc.test_garbage_collect import image_blobs, shared_layer_images
from tests.gc.test_gc_in_server import wait_finished
from tests.storage.test_s3_serve import s3_section
from tests.support.distribution_layout import layout_of
from tests.support.oci import Image, digest_of, make_image, push_blob, push_image, random_blob
from tests.support.s3 import S3Bucket, botocore_client, on_primary_s3
from tests.support.server import (
    GC_SCOPES,
    RunningRegistry,
    deep_merge,
    free_port,
    run_registry,
)


def s3_config(bucket: S3Bucket, tmp_path: Path) -> dict[str, Any]:
    """A config naming only the bucket (no filesystem section), deletes enabled."""
    return {"storage": {"filesystem": None, "s3": s3_section(bucket, tmp_path),
                        "delete": {"enabled": True}}}


@contextmanager
def s3_registry(bucket: S3Bucket, tmp_path: Path, **extra: Any) -> Iterator[RunningRegistry]:
    config = s3_config(bucket, tmp_path)
    config["http"] = {"workers": 2, **extra.pop("http", {})}
    config = deep_merge(config, extra)
    with run_registry(tmp_path, config=config) as running:
        yield running


def command(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def gc(config: Path, *flags: str) -> dict[str, Any]:
    result = command("garbage-collect", "--json", *flags, str(config))
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def bucket_keys(bucket: S3Bucket) -> set[str]:
    """Every key of this test's store, relative to distribution's v2 root."""
    client = botocore_client(bucket.service)
    root = f"{bucket.prefix}registry/docker/registry/v2/"
    return {item["Key"][len(root):]
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket.bucket, Prefix=bucket.prefix)
            for item in page.get("Contents", []) if item["Key"].startswith(root)}


def blob_key(digest: str) -> str:
    hex_digest = digest.split(":", 1)[1]
    return f"blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"


def stored_blobs(keys: set[str]) -> set[str]:
    return {f"sha256:{key.split('/')[3]}" for key in keys
            if key.startswith("blobs/sha256/") and key.endswith("/data")}


def assert_pulls(running: RunningRegistry, name: str, tag: str, image: Image) -> None:
    with running.client(follow_redirects=True) as client:
        got = client.get(f"/v2/{name}/manifests/{tag}", headers={"Accept": image.media_type})
        assert got.status_code == 200 and got.content == image.manifest, (name, tag)
        for blob in (image.config, *image.layers):
            assert client.get(f"/v2/{name}/blobs/{digest_of(blob)}").content == blob


@pytest.mark.parametrize("scope", GC_SCOPES)
def test_garbage_collect_on_s3(s3_bucket: S3Bucket, tmp_path: Path, scope: str) -> None:
    first, second, shared = shared_layer_images()
    untagged = make_image()
    with s3_registry(s3_bucket, tmp_path, **GC_SCOPES[scope]) as running, \
            running.client() as client:
        # A collection while the index is still being built looks at everything.
        assert "index: built" in running.wait_for_log("index: built")
        push_image(client, "gc/one", "v1", first)
        push_image(client, "gc/two", "v1", second)
        push_image(client, "gc/two", untagged.digest, untagged)  # by digest: untagged
        stray = push_blob(client, "gc/three", random_blob(3000))  # no manifest needs it
        assert client.delete(f"/v2/gc/one/manifests/{first.digest}").status_code == 202
        config = running.config_path
        before = bucket_keys(s3_bucket)
        only_first = image_blobs(first) - {digest_of(shared)}

        dry = gc(config, "--dry-run", "--delete-untagged", "--grace-period", "0")
        assert dry["dry_run"] is True
        # A dry run keeps the untagged manifest in its view, so its blobs too.
        assert set(dry["blobs_deleted"]) == only_first | {first.digest, stray}
        doomed = only_first | {first.digest, stray} | image_blobs(untagged) | {untagged.digest}
        assert dry["manifests_deleted"] == [f"gc/two@{untagged.digest}"]
        assert bucket_keys(s3_bucket) == before  # a dry run deletes nothing

        # While the registry serves: its index and the command's are the same file.
        report = gc(config, "--delete-untagged", "--grace-period", "0")
        assert report["full_pass"] is (scope == "full")
        assert set(report["blobs_deleted"]) == doomed
        assert report["manifests_deleted"] == [f"gc/two@{untagged.digest}"]
        assert report["bytes_freed"] == sum(
            len(blob) for blob in (first.config, *first.layers[1:], untagged.config,
                                   *untagged.layers, first.manifest, untagged.manifest)) + 3000
        assert report["repositories_removed"] == ["gc/one", "gc/three"]
        after = bucket_keys(s3_bucket)
        assert stored_blobs(after) == stored_blobs(before) - doomed
        for digest in doomed:
            assert not [key for key in after if digest.split(":", 1)[1] in key], digest
        assert not [key for key in after if key.startswith(("repositories/gc/one/",
                                                            "repositories/gc/three/"))]
        assert_pulls(running, "gc/two", "v1", second)
        assert client.get("/v2/_catalog").json() == {"repositories": ["gc/two"]}

        again = gc(config, "--delete-untagged", "--grace-period", "0")
        assert again["blobs_deleted"] == [] and again["manifests_deleted"] == []
        assert bucket_keys(s3_bucket) == after

    # A fresh index (another host, a lost disk): the collection reads the bucket first.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    config_path = fresh / "config.yml"
    config_path.write_text(yaml.safe_dump({"version": 0.1, **_plain(s3_config(s3_bucket,
                                                                               fresh))}))
    report = gc(config_path, "--delete-untagged", "--grace-period", "0")
    assert report["blobs_deleted"] == [] and report["manifests_deleted"] == []
    assert report["blobs_kept"] == len(image_blobs(second)) + 1
    assert bucket_keys(s3_bucket) == after


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """A config without the None markers that drop the test default's keys."""
    return {key: _plain(value) if isinstance(value, dict) else value
            for key, value in config.items() if value is not None}


def test_fsck_index_rebuild_and_du_on_s3(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    image = make_image(layer_count=2, layer_size=20_000)
    with s3_registry(s3_bucket, tmp_path) as running, running.client() as client:
        push_image(client, "ops/app", "v1", image)
        config = running.config_path

    clean = command("fsck", str(config))
    assert clean.returncode == 0, clean.stderr
    assert "checked 4 blobs" in clean.stdout and "0 do not match" in clean.stdout

    damaged = digest_of(image.layers[0])
    s3 = botocore_client(s3_bucket.service)
    root = f"{s3_bucket.prefix}registry/docker/registry/v2/"
    s3.put_object(Bucket=s3_bucket.bucket, Key=root + blob_key(damaged), Body=b"x" * 20_000)
    found = command("fsck", "--json", str(config))
    assert found.returncode == 1, found.stderr
    assert [item["digest"] for item in json.loads(found.stdout)["corrupt"]] == [damaged]
    moved = command("fsck", "--quarantine", str(config))
    assert moved.returncode == 1 and f"corrupt blob: {damaged}" in moved.stdout
    keys = bucket_keys(s3_bucket)
    assert blob_key(damaged) not in keys
    quarantined = [key for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=s3_bucket.bucket, Prefix=f"{s3_bucket.prefix}registry/dockyard/quarantine/")
        for key in (item["Key"] for item in page.get("Contents", []))]
    assert len(quarantined) == 1 and quarantined[0].endswith("/data")

    # A new index directory: `index rebuild` reads it all back from the bucket.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = elsewhere / "config.yml"
    other.write_text(yaml.safe_dump({"version": 0.1, **_plain(s3_config(s3_bucket, elsewhere))}))
    rebuilt = command("index", "rebuild", str(other))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "index: 1 repositories, 1 re-read" in rebuilt.stderr
    assert (elsewhere / "index/dockyard/index.sqlite").exists()

    usage = command("du", "--config", str(other), "--json")
    assert usage.returncode == 0, usage.stderr
    report = json.loads(usage.stdout)
    assert report["store"] == f"s3://{s3_bucket.bucket}/{s3_bucket.prefix}registry"
    assert [item["repository"] for item in report["repositories"]] == ["ops/app"]
    assert report["stored"] == {"blobs": 3, "size": len(image.config) + 20_000
                                + len(image.manifest)}
    assert bucket_keys(s3_bucket) == keys  # du writes nothing


class SlowRelay:
    """A TCP relay to an S3 endpoint that holds back each answer by `delay` seconds, as a
    distant S3 would, and counts the exchanges (a request, then its answer) it relays. A
    client sending one request after another then needs at least exchanges x delay; one
    keeping many in flight, a fraction of that."""

    def __init__(self, target: str, delay: float) -> None:
        address = target.split("://", 1)[1].rstrip("/")
        host, _, port = address.rpartition(":")
        self.target = (host, int(port))
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.exchanges = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            asked = threading.Event()  # a request went up, its answer has not come back
            threading.Thread(target=self._pipe, args=(client, upstream, asked, False),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, asked, True),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, asked: threading.Event,
              answers: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not answers:
                    asked.set()
                elif asked.is_set():  # the first bytes of an answer
                    asked.clear()
                    with self._lock:
                        self.exchanges += 1
                    time.sleep(self.delay)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def test_index_rebuild_reads_many_repositories_at_once(s3_bucket: S3Bucket, tmp_path: Path
                                                       ) -> None:
    s3 = botocore_client(s3_bucket.service)
    objects = layout_of(f"{s3_bucket.prefix}registry/docker/registry/v2", 40, 2)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda item: s3.put_object(Bucket=s3_bucket.bucket, Key=item[0],
                                                 Body=item[1]), objects.items()))
    relay = SlowRelay(s3_bucket.endpoint, delay=0.2)
    try:
        config = s3_config(s3_bucket, tmp_path)
        scheme = s3_bucket.endpoint.split("://", 1)[0]
        config["storage"]["s3"].update(regionendpoint=f"{scheme}://127.0.0.1:{relay.port}",
                                       skipverify=True)
        path = tmp_path / "config.yml"
        path.write_text(yaml.safe_dump({"version": 0.1, **_plain(config)}))
        started = time.monotonic()
        rebuilt = command("index", "rebuild", str(path))
        elapsed = time.monotonic() - started
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "index: 40 repositories, 40 re-read, 0 dropped" in rebuilt.stderr
        # One request at a time cannot take less than the delays added up; this asks for
        # four in flight on average (unchanged: 1; here about 16).
        assert elapsed < relay.exchanges * relay.delay / 4, (elapsed, relay.exchanges)
        # A listing per directory of repositories and per repository, and each manifest
        # read once: links are known from the listing, not read one by one (unchanged:
        # about 780 requests here).
        assert relay.exchanges <= 21 + 40 * 4, relay.exchanges
    finally:
        relay.close()
    direct = tmp_path / "direct.yml"
    direct.write_text(yaml.safe_dump({"version": 0.1, **_plain(s3_config(s3_bucket, tmp_path))}))
    usage = command("du", "--config", str(direct), "--json")
    assert usage.returncode == 0, usage.stderr
    repositories = json.loads(usage.stdout)["repositories"]
    assert len(repositories) == 40
    assert all(item["tags"] == 2 and item["manifests"] == 2 for item in repositories)

    # Another registry moves a tag: the next start sees where it points now.
    root = f"{s3_bucket.prefix}registry/docker/registry/v2/repositories/team0/app0/_manifests"
    revisions = [key for key in objects if key.startswith(f"{root}/revisions/")]
    current = objects[f"{root}/tags/v0/current/link"].decode()
    other = next(objects[key].decode() for key in revisions if objects[key].decode() != current)
    s3.put_object(Bucket=s3_bucket.bucket, Key=f"{root}/tags/v0/current/link",
                  Body=other.encode())
    with run_registry(tmp_path, config=s3_config(s3_bucket, tmp_path)) as running, \
            running.client() as client:
        moved = client.head("/v2/team0/app0/manifests/v0",
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert moved.headers["Docker-Content-Digest"] == other


@pytest.mark.parametrize("scope", GC_SCOPES)
@on_primary_s3
def test_online_gc_on_s3_keeps_a_push_in_flight(s3_bucket: S3Bucket, tmp_path: Path,
                                                scope: str) -> None:
    grace = 20
    kept, dropped, arriving = make_image(), make_image(), make_image(layer_count=2)
    with s3_registry(s3_bucket, tmp_path, http={"admin": {"enabled": True}},
                     **GC_SCOPES[scope]) as running, \
            running.client(follow_redirects=True) as client:
        push_image(client, "online/app", "keep", kept)
        push_image(client, "online/app", "drop", dropped)
        assert client.delete(f"/v2/online/app/manifests/{dropped.digest}").status_code == 202
        time.sleep(grace + 1)  # garbage older than the grace period
        # A push in flight: its config and first layer stored, its second layer half sent.
        for blob in (arriving.config, arriving.layers[0]):
            push_blob(client, "online/new", blob)
        started = client.post("/v2/online/new/blobs/uploads/")
        assert started.status_code == 202
        half = len(arriving.layers[1]) // 2
        patched = client.patch(started.headers["Location"], content=arriving.layers[1][:half],
                               headers={"Content-Type": "application/octet-stream"})
        assert patched.status_code == 202, patched.text

        ran = client.post("/admin/gc", params={"graceperiod": f"{grace}s",
                                               "deleteuntagged": "true"})
        assert ran.status_code == 202, ran.text
        status = wait_finished(client)
        assert status["state"] == "finished", status
        assert set(status["report"]["blobs_deleted"]) == image_blobs(dropped) | {dropped.digest}
        assert status["report"]["uploads_purged"] == []

        # The push finishes as if nothing happened, and everything kept still pulls.
        done = client.put(patched.headers["Location"], content=arriving.layers[1][half:],
                          params={"digest": digest_of(arriving.layers[1])})
        assert done.status_code == 201, done.text
        pushed = client.put("/v2/online/new/manifests/v1", content=arriving.manifest,
                            headers={"Content-Type": arriving.media_type})
        assert pushed.status_code == 201, pushed.text
        assert_pulls(running, "online/new", "v1", arriving)
        assert_pulls(running, "online/app", "keep", kept)
        for digest in image_blobs(dropped):
            assert client.head(f"/v2/online/app/blobs/{digest}").status_code == 404
        assert not [key for key in bucket_keys(s3_bucket) if "/_uploads/" in key]


# Every store command opens the store the same way (`require_persistent`); each attempt
# waits out the SDK's retries, so two stand for the four.
@pytest.mark.parametrize("args", [["garbage-collect", "--dry-run"], ["du", "--config"]],
                         ids=["garbage-collect", "du"])
def test_an_unreachable_bucket_is_a_message_not_a_traceback(tmp_path: Path,
                                                            args: list[str]) -> None:
    closed = free_port()  # nothing listens there
    config = {"version": 0.1, "storage": {"s3": {
        "bucket": "registry", "region": "us-east-1",
        "regionendpoint": f"http://127.0.0.1:{closed}", "accesskey": "key",
        "secretkey": "secret", "indexdirectory": str(tmp_path / "index")}}}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    result = command(*args, str(path))
    assert result.returncode == 1, result.stderr
    assert "storage.s3: bucket registry is not usable" in result.stderr
    assert "Traceback" not in result.stderr
