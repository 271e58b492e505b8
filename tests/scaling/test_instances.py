"""Several dockyard instances over one S3 bucket and one PostgreSQL index are one registry.

Three registries share a store (a key prefix of one bucket) and an index (one database), each
with a local directory of its own as on separate hosts, behind nginx spreading requests
round-robin with no session affinity. Nothing a request needs may live in one instance only:
uploads continue wherever their next request lands, deletes and pushes show at once on every
instance (their listing caches included), garbage collection runs once at a time across
them while pushes go on, and an instance killed mid-upload leaves nothing half-written
visible.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.test_docker import Docker, check_pushed, load_image
from tests.clients.test_podman import Podman
from tests.support.clients import RegistryReader, Skopeo
from tests.support.daemons import run_dockerd
from tests.support.images import read_oci_layout, sample_image, write_docker_archive
from tests.support.images import write_image_layout as write_layout
from tests.support.nginx import Proxy, run_nginx
from tests.support.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Image,
    descriptor,
    digest_of,
    error_codes,
    make_image,
    push_blob,
    push_image,
)
from tests.support.postgres import PostgresServer
from tests.support.s3 import S3_BACKENDS, bucket_on, service_of
from tests.support.server import MIB, RunningRegistry, Storage, require_tool, run_registry

GC_DONE = re.compile(r"garbage collection \(http\) deleted")


@dataclass
class Cluster:
    instances: list[RunningRegistry]
    proxy: Proxy
    root: Path
    configs: list[dict[str, Any]] = field(default_factory=list)

    def proxy_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.proxy.url, timeout=120)


def instance_config(local: Path) -> dict[str, Any]:
    """One worker each (the instances are the point here), the admin API for garbage
    collection, and a local directory of the instance's own, as on a host of its own."""
    return {"http": {"workers": 1, "admin": {"enabled": True}},
            "storage": {"s3": {"indexdirectory": str(local)}}}


@contextmanager
def run_cluster(tmp: Path, storage: Storage, count: int) -> Iterator[Cluster]:
    """`count` dockyards on one store and one index (the same root), behind nginx."""
    root = tmp / "store"
    for n in range(count):
        (tmp / f"host-{n}").mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        configs = [instance_config(tmp / f"host-{n}") for n in range(count)]
        instances = [stack.enter_context(run_registry(tmp / f"host-{n}", root=root,
                                                      storage=storage, config=config))
                     for n, config in enumerate(configs)]
        proxy = stack.enter_context(run_nginx(tmp, [each.host for each in instances], False))
        yield Cluster(instances, proxy, root, configs)


@pytest.fixture(scope="module")
def shared_storage(request: pytest.FixtureRequest, postgres_server: PostgresServer
                   ) -> Iterator[Storage]:
    with bucket_on(service_of(request, S3_BACKENDS[0])) as bucket:
        yield Storage("s3", bucket, postgres=postgres_server)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, shared_storage: Storage
            ) -> Iterator[Cluster]:
    with run_cluster(tmp_path_factory.mktemp("instances"), shared_storage, 3) as running:
        yield running


def request_path(location: str) -> str:
    """Path and query of a Location, to send it to another instance than the one that gave
    it."""
    return httpx.URL(location).raw_path.decode()


def with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def upload_chunked(clients: Sequence[httpx.Client], repo: str, data: bytes, chunk: int
                   ) -> httpx.Response:
    """POST on the first client, each chunk PATCHed on the next client in turn, the PUT
    that commits on the next: the response to that PUT."""
    turn = iter(clients[n % len(clients)] for n in range(1 << 30))
    started = next(turn).post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = request_path(started.headers["Location"])
    for offset in range(0, len(data), chunk):
        piece = data[offset:offset + chunk]
        response = next(turn).patch(location, content=piece, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(piece) - 1}"})
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{offset + len(piece) - 1}"
        location = request_path(response.headers["Location"])
    return next(turn).put(with_digest(location, digest_of(data)))


def assert_blob(client: httpx.Client, repo: str, data: bytes) -> None:
    digest = digest_of(data)
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200, (client.base_url, repo, digest, response.text)
    assert digest_of(response.content) == digest
    assert response.headers["Docker-Content-Digest"] == digest


def assert_image(client: httpx.Client, repo: str, reference: str, image: Image) -> None:
    """`client`'s registry serves `image` completely: the manifest, and every blob it
    needs, each with the right digest."""
    response = client.get(f"/v2/{repo}/manifests/{reference}",
                          headers={"Accept": image.media_type})
    assert response.status_code == 200, (client.base_url, repo, reference, response.text)
    assert response.content == image.manifest
    assert response.headers["Docker-Content-Digest"] == image.digest
    for blob in (image.config, *image.layers):
        assert_blob(client, repo, blob)


def image_of(layers: Sequence[bytes]) -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex,
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, config),
                "layers": [descriptor(OCI_LAYER, layer) for layer in layers]}
    return Image(config, list(layers), json.dumps(manifest).encode(), OCI_MANIFEST)


def clients_of(instances: Sequence[RunningRegistry], stack: ExitStack) -> list[httpx.Client]:
    return [stack.enter_context(each.client()) for each in instances]


def listing(client: httpx.Client, path: str) -> tuple[int, Any]:
    response = client.get(path)
    return response.status_code, response.json()


def wait_gc_finished(client: httpx.Client, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = client.get("/admin/gc").json()
        if status["state"] in ("finished", "failed"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def collect_garbage(instance: RunningRegistry) -> dict[str, Any]:
    with instance.client() as client:
        started = client.post("/admin/gc", params={"graceperiod": "0"})
        assert started.status_code == 202, started.text
        status = wait_gc_finished(client)
    assert status["state"] == "finished", status
    return status


# 1. Uploads continue on any instance -----------------------------------------------------


def test_upload_continues_on_other_instances(cluster: Cluster) -> None:
    data = os.urandom(14 * MIB + 12345)  # parts of 5 MiB: every chunk sends parts to S3
    digest = digest_of(data)
    repo = "hop/blob"
    with ExitStack() as stack:
        a, b, c = clients_of(cluster.instances, stack)
        started = a.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = request_path(started.headers["Location"])
        sent = 0
        for client, size in ((b, 6 * MIB), (c, 6 * MIB)):
            response = client.patch(location, content=data[sent:sent + size], headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{sent}-{sent + size - 1}"})
            assert response.status_code == 202, response.text
            sent += size
            assert response.headers["Range"] == f"0-{sent - 1}"
            location = request_path(response.headers["Location"])
            # Every instance knows where the upload stands, and none has the blob yet.
            for each in (a, b, c):
                status = each.get(location)
                assert status.status_code == 204, status.text
                assert status.headers["Range"] == f"0-{sent - 1}"
                assert each.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
        finished = b.put(with_digest(location, digest), content=data[sent:],
                         headers={"Content-Type": "application/octet-stream"})
        assert finished.status_code == 201, finished.text
        assert finished.headers["Docker-Content-Digest"] == digest
        for each in (a, b, c):
            head = each.head(f"/v2/{repo}/blobs/{digest}")
            assert head.status_code == 200
            assert int(head.headers["Content-Length"]) == len(data)
            assert_blob(each, repo, data)
            # The upload is gone everywhere once committed.
            assert each.get(location).status_code == 404


def test_pushes_through_the_load_balancer(cluster: Cluster, tmp_path: Path) -> None:
    with ExitStack() as stack:
        direct = clients_of(cluster.instances, stack)
        proxied = stack.enter_context(cluster.proxy_client())
        monolithic = make_image(layer_count=2, layer_size=3 * MIB)
        push_image(proxied, "lb/monolithic", "v1", monolithic)

        chunked = make_image(layer_count=2, layer_size=11 * MIB)
        for blob in (chunked.config, *chunked.layers):
            response = upload_chunked([proxied], "lb/chunked", blob, 4 * MIB)
            assert response.status_code == 201, response.text
        response = proxied.put("/v2/lb/chunked/manifests/v1", content=chunked.manifest,
                               headers={"Content-Type": chunked.media_type})
        assert response.status_code == 201, response.text

        for client in (*direct, proxied):
            assert_image(client, "lb/monolithic", "v1", monolithic)
            assert_image(client, "lb/chunked", "v1", chunked)

    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    image = sample_image("balanced", layers=3)
    layout = write_layout(tmp_path / "source", "v1", image)
    remote = f"docker://{cluster.proxy.host}/lb/skopeo"
    skopeo.copy(layout.ref("v1"), f"{remote}:v1")
    skopeo.copy(f"{remote}:v1", f"oci:{tmp_path / 'back'}:v1")
    back = read_oci_layout(tmp_path / "back")
    for blob in image.blobs:
        assert back.read_blob(blob.digest) == blob.data
    for instance in cluster.instances:
        with RegistryReader(instance.url) as reader:
            assert reader.manifest("lb/skopeo", "v1").digest == \
                digest_of(back.read_blob(json.loads(
                    (tmp_path / "back" / "index.json").read_text())["manifests"][0]["digest"]))
    # The requests really were spread: every instance answered some of them.
    used = set(cluster.proxy.upstreams_used())
    assert {instance.host for instance in cluster.instances} <= used, used


# 2. docker and podman through the load balancer ------------------------------------------


def test_docker_push_pull_through_the_load_balancer(cluster: Cluster, tmp_path: Path) -> None:
    binary = require_tool("docker")
    dockerd = require_tool("dockerd")
    image = sample_image("docker-balanced", layers=3, docker=True)
    reference = f"{cluster.proxy.host}/lb/docker:v1"
    with run_dockerd(tmp_path / "dockerd", dockerd, binary) as daemon:
        docker = Docker(binary, daemon)
        load_image(docker, tmp_path, image, "dockyard-test/balanced:v1")
        docker("tag", "dockyard-test/balanced:v1", reference)
        digest = docker.push(reference)
        for instance in cluster.instances:
            with RegistryReader(instance.url) as reader:
                check_pushed(reader, "lb/docker", "v1", digest, image)
        docker("rmi", reference, "dockyard-test/balanced:v1")
        assert not docker.has_image(reference)
        docker("pull", reference)
        assert docker.image_id(reference) == image.config.digest
        assert f"{cluster.proxy.host}/lb/docker@{digest}" in docker.repo_digests(reference)


def test_podman_push_pull_through_the_load_balancer(cluster: Cluster, tmp_path: Path) -> None:
    binary = require_tool("podman")
    image = sample_image("podman-balanced", layers=3)
    reference = f"{cluster.proxy.host}/lb/podman:v1"
    runtime = Path(tempfile.mkdtemp(prefix="dy-podman-"))
    try:
        podman = Podman(binary, tmp_path / "podman", runtime, cluster.proxy.host)
        archive = write_docker_archive(tmp_path / "image.tar", image, [reference])
        podman("load", "--signature-policy", str(podman.policy), "--input", str(archive))
        digest_file = tmp_path / "digest"
        podman("push", "--signature-policy", str(podman.policy), "--digestfile",
               str(digest_file), reference)
        digest = digest_file.read_text().strip()
        for instance in cluster.instances:
            with RegistryReader(instance.url) as reader:
                served = reader.manifest("lb/podman", "v1")
                assert served.digest == digest
                assert served.json()["config"]["digest"] == image.config.digest
                assert reader.blob("lb/podman", image.config.digest) == image.config.data
        podman("rmi", reference)
        podman("pull", "--signature-policy", str(podman.policy), reference)
        assert podman.image_field(reference, "Id") == image.config.digest.removeprefix("sha256:")
        assert podman.image_field(reference, "Digest") == digest
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


# 3. and 4. What one instance changes, the others show at once ------------------------------


def test_deletes_show_on_every_instance_at_once(cluster: Cluster) -> None:
    repo = "gone/repo"
    one, two = make_image(), make_image()
    with ExitStack() as stack:
        a, b, c = clients = clients_of(cluster.instances, stack)
        push_image(a, repo, "one", one)
        push_image(a, repo, "two", two)
        for client in clients:  # every instance reads (and caches) what is there
            assert listing(client, f"/v2/{repo}/tags/list") == \
                (200, {"name": repo, "tags": ["one", "two"]})
            assert repo in listing(client, "/v2/_catalog")[1]["repositories"]
            assert_image(client, repo, "one", one)
            assert_image(client, repo, one.digest, one)

        assert b.delete(f"/v2/{repo}/manifests/{one.digest}").status_code == 202
        for client in clients:
            assert listing(client, f"/v2/{repo}/tags/list") == \
                (200, {"name": repo, "tags": ["two"]})
            for reference in ("one", one.digest):
                gone = client.get(f"/v2/{repo}/manifests/{reference}",
                                  headers={"Accept": one.media_type})
                assert gone.status_code == 404, (client.base_url, reference)
                assert error_codes(gone) == ["MANIFEST_UNKNOWN"]
            assert_image(client, repo, "two", two)

        assert c.delete(f"/v2/{repo}/manifests/{two.digest}").status_code == 202
        answers = [listing(client, f"/v2/{repo}/tags/list") for client in clients]
        assert answers[0] == answers[1] == answers[2]
        status, body = answers[0]
        assert status == 404 or body["tags"] in (None, []), answers

        collect_garbage(cluster.instances[0])
        for client in clients:
            assert repo not in listing(client, "/v2/_catalog")[1]["repositories"]
            for blob in (one.config, *one.layers, two.config, *two.layers):
                assert client.head(f"/v2/{repo}/blobs/{digest_of(blob)}").status_code == 404


def test_listing_caches_follow_other_instances(cluster: Cluster) -> None:
    known, new = "cached/known", f"cached/new-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        a, b, _ = clients_of(cluster.instances, stack)
        push_image(a, known, "v1", make_image())
        for _ in range(2):  # the second answer comes from b's cache
            assert listing(b, f"/v2/{known}/tags/list") == (200, {"name": known, "tags": ["v1"]})
            catalog = listing(b, "/v2/_catalog")[1]["repositories"]
            assert known in catalog and new not in catalog

        push_image(a, known, "v2", make_image())
        push_image(a, new, "latest", make_image())
        assert listing(b, f"/v2/{known}/tags/list") == \
            (200, {"name": known, "tags": ["v1", "v2"]})
        assert new in listing(b, "/v2/_catalog")[1]["repositories"]
        assert listing(b, f"/v2/{new}/tags/list") == (200, {"name": new, "tags": ["latest"]})


# 5. Pushes go on while garbage collection runs, one collection at a time --------------------


@dataclass
class PushLog:
    kept: list[tuple[str, str, Image]] = field(default_factory=list)
    deleted: list[tuple[str, Image]] = field(default_factory=list)
    retries: int = 0
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def push_until_accepted(client: httpx.Client, repo: str, tag: str, image: Image,
                        chunked: bool, log: PushLog) -> None:
    """Push as clients do: send the blobs the registry lacks, then the manifest; a blob that
    a garbage collection took in between (MANIFEST_BLOB_UNKNOWN) is sent again."""
    for _ in range(20):
        for blob in (image.config, *image.layers):
            if client.head(f"/v2/{repo}/blobs/{digest_of(blob)}").status_code == 200:
                continue
            if chunked and len(blob) > 64 * 1024:
                response = upload_chunked([client], repo, blob, 64 * 1024)
                assert response.status_code == 201, response.text
            else:
                push_blob(client, repo, blob)
        response = client.put(f"/v2/{repo}/manifests/{tag}", content=image.manifest,
                              headers={"Content-Type": image.media_type})
        if response.status_code == 201:
            return
        assert response.status_code == 400 and error_codes(response) == \
            ["MANIFEST_BLOB_UNKNOWN"], response.text
        with log.lock:
            log.retries += 1
    raise AssertionError(f"{repo}:{tag} never accepted")


def pusher(proxy: Proxy, number: int, bases: Sequence[bytes], stop_at: float,
           log: PushLog) -> None:
    repo = f"busy/pusher-{number}"
    try:
        with httpx.Client(base_url=proxy.url, timeout=120) as client:
            count = 0
            while time.monotonic() < stop_at:
                image = image_of([bases[(number + count) % len(bases)],
                                  os.urandom(48 * 1024 + count)])
                tag = f"t{count}"
                push_until_accepted(client, repo, tag, image, chunked=count % 2 == 1, log=log)
                if count % 3 == 2:  # some become garbage for the collections to find
                    deleted = client.delete(f"/v2/{repo}/manifests/{image.digest}")
                    assert deleted.status_code == 202, deleted.text
                    with log.lock:
                        log.deleted.append((repo, image))
                else:
                    with log.lock:
                        log.kept.append((repo, tag, image))
                count += 1
    except BaseException as error:  # reported by the test
        with log.lock:
            log.errors.append(error)


def start_gc_at_once(instances: Sequence[RunningRegistry]) -> list[int]:
    """Ask every instance to start a collection at the same moment: their statuses."""
    ready = threading.Barrier(len(instances))

    def start(instance: RunningRegistry) -> int:
        with instance.client() as client:
            ready.wait()
            return client.post("/admin/gc", params={"graceperiod": "0"}).status_code

    with ThreadPoolExecutor(len(instances)) as pool:
        return list(pool.map(start, instances))


def runs_logged(instances: Sequence[RunningRegistry]) -> int:
    return sum(len(GC_DONE.findall(instance.logs())) for instance in instances)


def test_pushes_while_garbage_collection_runs(cluster: Cluster) -> None:
    instances = cluster.instances
    runs_before = runs_logged(instances)
    bases = [os.urandom(256 * 1024) for _ in range(3)]
    log = PushLog()
    stop_at = time.monotonic() + 25
    threads = [threading.Thread(target=pusher, args=(cluster.proxy, n, bases, stop_at, log))
               for n in range(8)]
    for thread in threads:
        thread.start()
    answers: list[list[int]] = []
    with instances[0].client() as client:
        while any(thread.is_alive() for thread in threads):
            codes = start_gc_at_once(instances[:2])
            answers.append(codes)
            # Each 202 is a run that holds the store's one lease, so no two overlap.
            assert 202 in codes and set(codes) <= {202, 409}, codes
            status = wait_gc_finished(client)
            assert status["state"] == "finished", status
    for thread in threads:
        thread.join()
    assert not log.errors, log.errors
    accepted = sum(codes.count(202) for codes in answers)
    # Every collection an instance accepted really ran (and each one reported it).
    assert runs_logged(instances) - runs_before == accepted, answers
    assert any(409 in codes for codes in answers), answers
    assert len(log.kept) >= 8 and log.deleted

    collect_garbage(instances[2])
    with ExitStack() as stack:
        for client in clients_of(instances, stack):
            checked: set[tuple[str, str]] = set()
            for repo, tag, image in log.kept:
                response = client.get(f"/v2/{repo}/manifests/{tag}",
                                      headers={"Accept": image.media_type})
                assert response.status_code == 200, (client.base_url, repo, tag)
                assert response.content == image.manifest
                for blob in (image.config, *image.layers):
                    if (repo, digest_of(blob)) not in checked:
                        assert_blob(client, repo, blob)
                        checked.add((repo, digest_of(blob)))
            for repo, image in log.deleted:
                assert client.head(f"/v2/{repo}/manifests/{image.digest}").status_code == 404
                # Its own blobs were garbage, and the last collection took them.
                for blob in (image.config, image.layers[-1]):
                    assert client.head(f"/v2/{repo}/blobs/{digest_of(blob)}"
                                       ).status_code == 404


# 6. An instance killed in the middle of a push ---------------------------------------------


def established_connections(port: int) -> int:
    """Open TCP connections to a local listening port."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                count += 1
    return count


def serving_instance(instances: Sequence[RunningRegistry]) -> RunningRegistry:
    """The one instance nginx has a connection open to (it keeps none between requests)."""
    deadline = time.monotonic() + 30
    while True:
        busy = [each for each in instances
                if established_connections(int(each.host.rsplit(":", 1)[1]))]
        if len(busy) == 1:
            return busy[0]
        assert time.monotonic() < deadline, busy
        time.sleep(0.05)


def test_instance_killed_during_a_push(tmp_path: Path, shared_storage: Storage) -> None:
    chunk = 16 * MIB
    data = os.urandom(3 * chunk)
    digest = digest_of(data)
    image = image_of([data])
    repo = "crash/big"
    with run_cluster(tmp_path, shared_storage, 2) as cluster, cluster.proxy_client() as proxied:
        started = proxied.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = request_path(started.headers["Location"])
        first = proxied.patch(location, content=data[:chunk], headers={
            "Content-Type": "application/octet-stream", "Content-Range": f"0-{chunk - 1}"})
        assert first.status_code == 202, first.text
        location = request_path(first.headers["Location"])

        killed: list[RunningRegistry] = []

        def second_chunk() -> Iterator[bytes]:
            piece = MIB
            for offset in range(chunk, 2 * chunk, piece):
                if offset == chunk + 10 * MIB:
                    victim = serving_instance(cluster.instances)
                    time.sleep(0.5)  # let it send parts of what it has to S3
                    os.kill(victim.process.pid, signal.SIGKILL)
                    victim.process.wait()
                    killed.append(victim)
                yield data[offset:offset + piece]

        try:
            broken = proxied.patch(location, content=second_chunk(), headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{chunk}-{2 * chunk - 1}"})
            assert broken.status_code >= 500, broken.text
        except httpx.TransportError:
            pass  # nginx may drop the connection while the body is still being sent
        assert len(killed) == 1
        victim = killed[0]
        survivor, = (each for each in cluster.instances if each is not victim)

        with survivor.client() as direct:
            def absent() -> None:
                for client in (direct, proxied):
                    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
                    tags = client.get(f"/v2/{repo}/tags/list")
                    assert tags.status_code == 404 or "v1" not in (tags.json()["tags"] or [])

            absent()
            # The broken chunk is not part of the upload: it stands where the first ended.
            status = direct.get(location)
            assert status.status_code == 204, status.text
            assert status.headers["Range"] == f"0-{chunk - 1}"

            # The client starts the blob again, through the load balancer.
            retry = proxied.post(f"/v2/{repo}/blobs/uploads/")
            assert retry.status_code == 202, retry.text
            location = request_path(retry.headers["Location"])
            for offset in range(0, len(data) - chunk, chunk):
                response = proxied.patch(location, content=data[offset:offset + chunk], headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + chunk - 1}"})
                assert response.status_code == 202, response.text
                location = request_path(response.headers["Location"])
                absent()
            done = proxied.put(with_digest(location, digest), content=data[-chunk:],
                               headers={"Content-Type": "application/octet-stream"})
            assert done.status_code == 201, done.text
            push_blob(proxied, repo, image.config)
            absent_tag = direct.get(f"/v2/{repo}/tags/list")
            assert absent_tag.status_code == 404 or "v1" not in (absent_tag.json()["tags"] or [])
            pushed = proxied.put(f"/v2/{repo}/manifests/v1", content=image.manifest,
                                 headers={"Content-Type": image.media_type})
            assert pushed.status_code == 201, pushed.text
            assert listing(direct, f"/v2/{repo}/tags/list") == (200, {"name": repo,
                                                                      "tags": ["v1"]})
            assert_image(direct, repo, "v1", image)

        # Started again on the same root and port, the killed instance serves the image,
        # directly and as nginx's upstream again.
        index = cluster.instances.index(victim)
        port = int(victim.host.rsplit(":", 1)[1])
        (tmp_path / "restarted").mkdir()
        with run_registry(tmp_path / "restarted", root=cluster.root, storage=shared_storage,
                          config=cluster.configs[index], port=port) as restarted, \
                restarted.client() as client:
            assert_image(client, repo, "v1", image)
            assert listing(client, f"/v2/{repo}/tags/list") == (200, {"name": repo,
                                                                      "tags": ["v1"]})
