"""The server's handling of connections: request-head limits, large bodies arriving with
their head, pipelined requests and clients that half-close (raw sockets)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterator

import pytest

from tests.support.rawhttp import build_request, exchange
from tests.support.server import RunningRegistry, Storage, run_registry

HEAD_LIMIT = 64 * 1024  # what dockyard's server promises to take (docs/asgi-servers.md)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, storage: Storage
            ) -> Iterator[RunningRegistry]:
    with run_registry(tmp_path_factory.mktemp("connections"), storage=storage) as registry:
        yield registry


def statuses(host: str, request: bytes) -> list[int]:
    """Every status line the server sends back before it closes the connection."""
    address, port = host.rsplit(":", 1)
    received = bytearray()
    with socket.create_connection((address, int(port)), timeout=30) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            received += chunk
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", bytes(received))]


def test_a_half_closed_request_is_still_answered(running: RunningRegistry) -> None:
    response = exchange(running.host, build_request("GET", "/v2/", running.host),
                        half_close=True)
    assert response.status == 200


def test_a_large_body_sent_with_its_head_is_not_taken_for_a_long_head(
        running: RunningRegistry) -> None:
    data = os.urandom(1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    request = build_request("POST", f"/v2/conn/big/blobs/uploads/?digest={digest}",
                            running.host, [("Content-Type", "application/octet-stream")], data)
    assert exchange(running.host, request).status == 201


def test_pipelined_requests_are_answered_in_order(running: RunningRegistry) -> None:
    data = os.urandom(300 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    upload = build_request("POST", f"/v2/conn/piped/blobs/uploads/?digest={digest}",
                           running.host, [("Content-Type", "application/octet-stream")], data)
    keep_alive = upload.replace(b"Connection: close", b"Connection: keep-alive", 1)
    check = build_request("HEAD", f"/v2/conn/piped/blobs/{digest}", running.host)
    assert statuses(running.host, keep_alive + check) == [201, 200]


@pytest.mark.parametrize(("headers", "status"), [
    ([("X-Padding", "a" * (HEAD_LIMIT - 1024))], 200),
    ([("X-Padding", "a" * (HEAD_LIMIT + 1024))], 431),
    ([(f"X-H{n}", "v") for n in range(200)], 200),
    ([(f"X-H{n}", "v") for n in range(300)], 431),
], ids=["head just under 64 KiB", "head over 64 KiB", "200 headers", "300 headers"])
def test_request_head_limits(running: RunningRegistry, headers: list[tuple[str, str]],
                             status: int) -> None:
    response = exchange(running.host, build_request("GET", "/v2/", running.host, headers))
    assert response.status == status
    assert exchange(running.host, build_request("GET", "/v2/", running.host)).status == 200
