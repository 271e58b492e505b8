"""A manifest with tens of thousands of descriptors is parsed and checked without holding
up the other requests its worker serves."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.support.oci import OCI_LAYER, OCI_MANIFEST, descriptor, make_image, push_image
from tests.support.rawhttp import build_request, parse_response
from tests.support.server import Storage, run_registry

DESCRIPTORS = 25_000
PUTS = 40
# GETs wanted inside one PUT's window. Served in turn, a GET takes a few milliseconds and
# the PUT hundreds: 25 to 75 fit (13 on a machine busy with other tests). Blocked, only
# those that slip in while the server is still reading the body do: up to 8 were seen.
# The loop stops at the first PUT that reaches the mark, so more PUTs cost only when slow.
GETS_WANTED = 12


def big_manifest(config: dict[str, object], layer: bytes) -> bytes:
    """An image whose one layer is listed DESCRIPTORS times (about 4 MB)."""
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                       "layers": [descriptor(OCI_LAYER, layer)] * DESCRIPTORS}).encode()


def put_and_time(host: str, request: bytes, windows: list[tuple[float, float]]) -> None:
    """Send the request whole, then wait for the answer; record the time between the two,
    when the server has the body and works on it."""
    address, port = host.rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=120) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        sent = time.monotonic()
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    answered = time.monotonic()
    assert parse_response(bytes(received)).status == 201, bytes(received[:500])
    windows.append((sent, answered))


@pytest.mark.filesystem_only(
    reason="counts the GETs a worker's event loop answers inside a PUT; on S3 each GET "
    "waits on the bucket, so the count would judge the bucket's latency, not the loop")
def test_small_requests_are_answered_while_a_big_manifest_is_processed(
        tmp_path: Path, storage: Storage) -> None:
    """One worker takes a big manifest PUT and, meanwhile, small manifest GETs: GETs sent
    after the PUT's body and answered before the PUT's response show that the worker
    serves others while it parses and checks the big one. (Without that, a GET waits for
    the whole PUT, and none falls inside its window.) Only the order of events is judged,
    never a duration."""
    config = {"http": {"workers": 1}, "log": {"accesslog": {"disabled": True}}}
    with run_registry(tmp_path, config=config, storage=storage) as running, \
            running.client() as client:
        image = make_image()
        push_image(client, "big/repo", "small", image)
        document = json.loads(image.manifest)
        body = big_manifest(document["config"], image.layers[0])
        assert len(body) < 4 * 1024 * 1024
        windows: list[tuple[float, float]] = []
        gets: list[tuple[float, float]] = []

        def most_inside_one_put() -> int:
            return max(sum(1 for start, end in gets if sent < start and end < answered)
                       for sent, answered in windows)

        for number in range(PUTS):
            request = build_request("PUT", f"/v2/big/repo/manifests/big{number}",
                                    running.host, [("Content-Type", OCI_MANIFEST)], body)
            putter = threading.Thread(target=put_and_time, args=(running.host, request,
                                                                 windows))
            putter.start()
            while putter.is_alive():
                start = time.monotonic()
                response = client.get("/v2/big/repo/manifests/small",
                                      headers={"Accept": OCI_MANIFEST})
                assert response.status_code == 200
                gets.append((start, time.monotonic()))
            putter.join()
            if most_inside_one_put() >= GETS_WANTED:
                break
        assert len(windows) == number + 1, "a PUT failed"
        assert most_inside_one_put() >= GETS_WANTED, (most_inside_one_put(), len(gets),
                                                       windows)
        big = client.get("/v2/big/repo/manifests/big0", headers={"Accept": OCI_MANIFEST})
        assert big.content == body
