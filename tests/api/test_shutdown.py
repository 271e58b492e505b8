"""Stopping the server (SIGTERM): requests in flight finish within http.draintimeout, and
the process exits when they are done or the time is up."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.rawhttp import parse_response
from tests.support.server import RunningRegistry, Storage, run_registry

MiB = 1024 * 1024


def start_slow_patch(running: RunningRegistry, data: bytes) -> socket.socket:
    """A PATCH whose head and first half of the body are sent; the rest comes later."""
    with running.client() as client:
        location = client.post("/v2/drain/repo/blobs/uploads/").headers["Location"]
    target = urlsplit(location)
    path = target.path + (f"?{target.query}" if target.query else "")
    sock = socket.create_connection(("127.0.0.1", int(running.host.rsplit(":", 1)[1])),
                                    timeout=30)
    head = (f"PATCH {path} HTTP/1.1\r\nHost: {running.host}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    sock.sendall(head + data[:len(data) // 2])
    time.sleep(0.5)  # the server is reading the body now
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    return bytes(received)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_upload_in_flight_finishes_after_sigterm(tmp_path: Path, workers: int,
                                                    storage: Storage) -> None:
    config = {"http": {"workers": workers, "draintimeout": "30s"}}
    data = os.urandom(4 * MiB)
    with run_registry(tmp_path, config=config, storage=storage) as running:
        sock = start_slow_patch(running, data)
        running.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert running.process.poll() is None, "exited with a request in flight"
        with sock:
            sock.sendall(data[len(data) // 2:])
            response = parse_response(read_until_closed(sock))
        assert response.status == 202
        assert response.headers["range"] == f"0-{len(data) - 1}"
        # uvicorn ends a single process by re-raising the signal it caught; a supervisor
        # of several workers exits 0.
        assert running.process.wait(timeout=20) in (0, -signal.SIGTERM)


def test_a_stalled_request_does_not_hold_the_server_past_the_drain_timeout(
        tmp_path: Path, storage: Storage) -> None:
    config = {"http": {"workers": 1, "draintimeout": "2s"}}
    with run_registry(tmp_path, config=config, storage=storage) as running:
        sock = start_slow_patch(running, os.urandom(MiB))
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        with sock:
            running.process.wait(timeout=20)
            stopped = time.monotonic() - started
            response = parse_response(read_until_closed(sock))
        assert 1.5 < stopped < 10, stopped
        assert response.status == 503
        assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert response.headers["retry-after"] == "5"
