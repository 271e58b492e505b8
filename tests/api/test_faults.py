"""Broken clients, killed servers and concurrent writers never leave a half-written store."""

from __future__ import annotations

import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.oci import digest_of, make_image, push_image, random_blob
from tests.support.server import RunningRegistry, Storage, run_registry


def send_partial(host: str, request_head: str, body: bytes) -> None:
    """Send a request whose body stops short, then hang up."""
    address, port = host.split(":")
    with socket.create_connection((address, int(port)), timeout=10) as sock:
        sock.sendall(request_head.encode() + body)
        time.sleep(0.2)


def test_disconnect_mid_monolithic_upload_leaves_nothing(fresh_registry: RunningRegistry
                                                         ) -> None:
    data = random_blob(2_000_000)
    digest = digest_of(data)
    head = (f"POST /v2/faults/cut/blobs/uploads/?digest={digest} HTTP/1.1\r\n"
            f"Host: {fresh_registry.host}\r\nContent-Length: {len(data)}\r\n\r\n")
    send_partial(fresh_registry.host, head, data[:500_000])
    with fresh_registry.client() as client:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            leftovers = [path for path in fresh_registry.store_files() if "_uploads" in path
                         or "/blobs/" in path]
            if not leftovers:
                break
            time.sleep(0.1)
        assert leftovers == []
        assert client.head(f"/v2/faults/cut/blobs/{digest}").status_code == 404
        # The same push then works.
        response = client.post("/v2/faults/cut/blobs/uploads/", params={"digest": digest},
                               content=data)
        assert response.status_code == 201
        assert client.get(f"/v2/faults/cut/blobs/{digest}").content == data


def test_disconnect_mid_chunk_keeps_the_earlier_chunks(fresh_registry: RunningRegistry) -> None:
    data = random_blob(300_000)
    with fresh_registry.client() as client:
        started = client.post("/v2/faults/chunk/blobs/uploads/")
        location = started.headers["Location"]
        first = client.patch(location, content=data[:100_000],
                             headers={"Content-Range": "0-99999"})
        assert first.status_code == 202
        path = location.split(fresh_registry.host, 1)[1]
        head = (f"PATCH {path} HTTP/1.1\r\nHost: {fresh_registry.host}\r\n"
                f"Content-Range: 100000-299999\r\nContent-Length: 200000\r\n\r\n")
        send_partial(fresh_registry.host, head, data[100_000:150_000])
        deadline = time.monotonic() + 10
        while client.get(location).headers["Range"] != "0-99999":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        resumed = client.patch(location, content=data[100_000:],
                               headers={"Content-Range": "100000-299999"})
        assert resumed.status_code == 202
        done = client.put(location, params={"digest": digest_of(data)})
        assert done.status_code == 201
        assert client.get(f"/v2/faults/chunk/blobs/{digest_of(data)}").content == data


def test_killed_server_leaves_a_consistent_store(tmp_path: Path, storage: Storage) -> None:
    root = tmp_path / "store"
    image = make_image()
    big = random_blob(64 * 1024 * 1024)
    with run_registry(tmp_path, root=root, storage=storage) as running:
        with running.client() as client:
            push_image(client, "faults/kept", "v1", image)
        head = (f"POST /v2/faults/killed/blobs/uploads/?digest={digest_of(big)} HTTP/1.1\r\n"
                f"Host: {running.host}\r\nContent-Length: {len(big)}\r\n\r\n")
        address, port = running.host.split(":")
        with socket.create_connection((address, int(port)), timeout=30) as sock:
            sock.sendall(head.encode() + big[:40 * 1024 * 1024])
            time.sleep(0.3)
            os.kill(running.process.pid, signal.SIGKILL)
            running.process.wait()
    # No half-written file is visible as content or as a link.
    for path in running.store_files():
        assert not path.endswith(".tmp"), path
    with run_registry(tmp_path, root=root, storage=storage) as running, \
            running.client() as client:
        assert client.head(f"/v2/faults/killed/blobs/{digest_of(big)}").status_code == 404
        assert client.get("/v2/faults/kept/manifests/v1").content == image.manifest
        for blob in (image.config, *image.layers):
            assert client.get(f"/v2/faults/kept/blobs/{digest_of(blob)}").content == blob
        assert client.get("/v2/_catalog").json()["repositories"] == ["faults/kept"]


@pytest.mark.blob_redirect
def test_concurrent_uploads_of_one_blob(registry: RunningRegistry) -> None:
    data = random_blob(3_000_000)
    digest = digest_of(data)

    def push(index: int) -> int:
        with registry.client() as client:
            started = client.post(f"/v2/faults/race{index % 2}/blobs/uploads/")
            location = started.headers["Location"]
            for offset in range(0, len(data), 1_000_000):
                chunk = data[offset:offset + 1_000_000]
                client.patch(location, content=chunk, headers={
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
            return client.put(location, params={"digest": digest}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(push, range(8))) == [201] * 8
    with registry.client() as client:
        for index in range(2):
            assert client.get(f"/v2/faults/race{index}/blobs/{digest}").content == data


def test_concurrent_manifest_pushes_to_one_tag(registry: RunningRegistry) -> None:
    images = [make_image(layer_count=1) for _ in range(6)]
    with registry.client() as client:
        for image in images:
            push_image(client, "faults/tagrace", image.digest.replace(":", "-"), image)

    def put(index: int) -> int:
        image = images[index]
        with registry.client() as client:
            return client.put("/v2/faults/tagrace/manifests/latest", content=image.manifest,
                              headers={"Content-Type": image.media_type}).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(put, range(6))) == [201] * 6
    with registry.client() as client:
        got = client.get("/v2/faults/tagrace/manifests/latest")
        assert got.status_code == 200
        assert got.headers["Docker-Content-Digest"] in {image.digest for image in images}


def hash_states(running: RunningRegistry, upload_id: str) -> list[str]:
    """The offsets at which an upload's running sha256 is saved beside it."""
    states = f"docker/registry/v2/repositories/faults/resume/_uploads/{upload_id}" \
        "/dockyard-hashstate/sha256/"
    return [path[len(states):] for path in running.store_files() if path.startswith(states)]


def test_upload_resumes_its_hash_across_a_restart(tmp_path: Path, storage: Storage) -> None:
    root = tmp_path / "store"
    data = random_blob(3_000_000)
    with run_registry(tmp_path, root=root, storage=storage) as running, \
            running.client() as client:
        location = client.post("/v2/faults/resume/blobs/uploads/").headers["Location"]
        path = location.split(running.host, 1)[1]
        response = client.patch(location, content=data[:1_000_000],
                                headers={"Content-Range": "0-999999"})
        assert response.status_code == 202
    upload_id = path.rsplit("/", 1)[1]
    # The running hash was saved beside the upload, at the offset it covers.
    assert hash_states(running, upload_id) == ["1000000"]
    with run_registry(tmp_path, root=root, storage=storage) as running, \
            running.client() as client:
        location = f"{running.url}{path}"
        response = client.patch(location, content=data[1_000_000:],
                                headers={"Content-Range": f"1000000-{len(data) - 1}"})
        assert response.status_code == 202
        assert hash_states(running, upload_id) == [str(len(data))]
        done = client.put(location, params={"digest": digest_of(data)})
        assert done.status_code == 201, done.text
        assert client.get(f"/v2/faults/resume/blobs/{digest_of(data)}").content == data
        wrong = client.post("/v2/faults/resume/blobs/uploads/")
        client.patch(wrong.headers["Location"], content=data[:10])
        mismatch = client.put(wrong.headers["Location"], params={"digest": digest_of(data)})
        assert mismatch.status_code == 400
    assert hash_states(running, upload_id) == []
