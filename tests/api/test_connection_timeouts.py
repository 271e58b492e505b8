"""Connections that wait on their client: heads that never end, idle connections, bodies
that stop arriving (raw sockets, with short configured timeouts)."""

from __future__ import annotations

import hashlib
import os
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.memory import server_rss_kib
from tests.support.rawhttp import build_request, parse_response
from tests.support.server import RunningRegistry, Storage, run_registry

HEAD_TIMEOUT = 2
IDLE_TIMEOUT = 2
BODY_TIMEOUT = 4
# Far above the timeouts, so a busy machine does not make the tests fail.
CLOSED_WITHIN = 25


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, storage: Storage
            ) -> Iterator[RunningRegistry]:
    config = {"http": {"workers": 1, "timeouts": {"head": f"{HEAD_TIMEOUT}s",
                                                  "idle": f"{IDLE_TIMEOUT}s",
                                                  "body": f"{BODY_TIMEOUT}s"}}}
    with run_registry(tmp_path_factory.mktemp("timeouts"), config=config,
                      storage=storage) as registry:
        yield registry


def connect(registry: RunningRegistry) -> socket.socket:
    address, port = registry.host.rsplit(":", 1)
    return socket.create_connection((address, int(port)), timeout=CLOSED_WITHIN)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a socket timeout fails the test)."""
    received = bytearray()
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return bytes(received)


def upload_request(host: str, data: bytes) -> bytes:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return build_request("POST", f"/v2/timeouts/slow/blobs/uploads/?digest={digest}", host,
                         [("Content-Type", "application/octet-stream")], data)


@pytest.mark.filesystem_only(reason="the storage plays no part: "
                             "connection timeouts, enforced outside of any request")
def test_a_head_that_never_ends_gets_408(running: RunningRegistry) -> None:
    """A client trickling header bytes (slowloris) is cut off although it keeps sending."""
    with connect(running) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sock.settimeout(0.25)
        started = time.monotonic()
        while True:
            assert time.monotonic() - started < CLOSED_WITHIN, "a never-ending head was kept"
            try:
                first = sock.recv(65536)  # the answer, or b"" if closed without one
                break
            except TimeoutError:
                pass
            try:
                sock.sendall(b"a")
            except OSError:  # closed between two bytes: its answer is waiting
                sock.settimeout(CLOSED_WITHIN)
                first = sock.recv(65536)
                break
        sock.settimeout(CLOSED_WITHIN)
        response = parse_response(first + (read_until_closed(sock) if first else b""))
    assert response.status == 408


@pytest.mark.filesystem_only(reason="the storage plays no part: "
                             "connection timeouts, enforced outside of any request")
def test_a_half_sent_head_gets_408(running: RunningRegistry) -> None:
    with connect(running) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        response = parse_response(read_until_closed(sock))
    assert response.status == 408
    assert response.headers["connection"] == "close"


@pytest.mark.filesystem_only(reason="the storage plays no part: "
                             "connection timeouts, enforced outside of any request")
def test_an_idle_connection_is_closed(running: RunningRegistry) -> None:
    with connect(running) as sock:
        assert read_until_closed(sock) == b""


@pytest.mark.filesystem_only(reason="the storage plays no part: "
                             "connection timeouts, enforced outside of any request")
def test_a_kept_alive_connection_is_closed_when_idle(running: RunningRegistry) -> None:
    request = build_request("GET", "/v2/", running.host).replace(b"Connection: close",
                                                                 b"Connection: keep-alive")
    with connect(running) as sock:
        sock.sendall(request)
        response = parse_response(read_until_closed(sock))
    assert response.status == 200


def test_a_slow_body_is_not_cut_off(running: RunningRegistry) -> None:
    """A body arriving a piece a second, for longer than every timeout, is not idle."""
    data = os.urandom(10 * 1024)
    request = upload_request(running.host, data)
    head_end = request.index(b"\r\n\r\n") + 4
    with connect(running) as sock:
        sock.sendall(request[:head_end])
        pieces = [data[offset:offset + 1024] for offset in range(0, len(data), 1024)]
        for piece in pieces:  # 10 s in all
            time.sleep(1)
            sock.sendall(piece)
        response = parse_response(read_until_closed(sock))
    assert response.status == 201, response.body


def test_a_body_that_stops_is_cut_off(running: RunningRegistry) -> None:
    data = os.urandom(64 * 1024)
    request = upload_request(running.host, data)
    with connect(running) as sock:
        sock.sendall(request[:len(request) - len(data) // 2])
        response = parse_response(read_until_closed(sock))
    assert response.status == 408
    assert response.json()["errors"][0]["code"] == "SIZE_INVALID"
    # Nothing of the broken upload was committed; the registry still takes requests.
    with running.client() as client:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert client.head(f"/v2/timeouts/slow/blobs/{digest}").status_code == 404


WAVE = 1000
PARTIAL_HEAD = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 30_000


def stall(registry: RunningRegistry, count: int) -> int:
    """Open `count` connections, half of them with a head that never ends and half silent,
    and wait for the server to close them; returns how many it left open."""
    address, port = registry.host.rsplit(":", 1)
    selector = selectors.DefaultSelector()
    sockets = []
    try:
        for number in range(count):
            sock = socket.create_connection((address, int(port)), timeout=30)
            if number % 2:
                sock.sendall(PARTIAL_HEAD)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            sockets.append(sock)
        open_count = len(sockets)
        deadline = time.monotonic() + 45
        while open_count and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                sock = key.fileobj  # type: ignore[assignment]
                try:
                    if sock.recv(65536):
                        continue  # the 408 first; the close follows
                except (ConnectionResetError, BlockingIOError):
                    pass
                selector.unregister(sock)
                open_count -= 1
        return open_count
    finally:
        for sock in sockets:
            sock.close()
        selector.close()


@pytest.mark.filesystem_only(reason="the storage plays no part: "
                             "connection timeouts, enforced outside of any request")
def test_stalled_connections_are_closed_and_their_memory_reused(tmp_path: Path,
                                                                storage: Storage) -> None:
    """Two waves of 1,000 stalled connections (30 KB half-heads and silent ones) are all
    closed by the server after their timeouts; the second wave reuses the memory the first
    held instead of adding to it (without timeouts every wave stays and adds ~20 MB)."""
    config = {"http": {"workers": 1, "timeouts": {"head": "3s", "idle": "3s"}}}
    with run_registry(tmp_path, config=config, storage=storage) as registry:
        pid = registry.process.pid
        baseline = server_rss_kib(pid)
        assert stall(registry, WAVE) == 0
        first = server_rss_kib(pid) - baseline
        assert stall(registry, WAVE) == 0
        second = server_rss_kib(pid) - baseline - first
        with registry.client() as client:  # and it still serves
            assert client.get("/v2/").status_code == 200
    assert second < max(first // 2, 4096), f"first wave {first} KiB, second {second} KiB"
