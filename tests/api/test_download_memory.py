"""Many clients downloading a large blob at once, reading slowly: the memory the server
holds per download stays bounded (it used to read 4 MiB ahead for each, whatever their
number, and hold about 8 MiB a connection)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.support.memory import reset_peak_rss, server_peak_rss_kib, server_rss_kib
from tests.support.oci import push_blob, random_blob
from tests.support.server import Storage, run_registry

DOWNLOADS = 120
BLOB_MIB = 24


def test_slow_concurrent_downloads_hold_bounded_memory(tmp_path: Path, storage: Storage
                                                       ) -> None:
    with run_registry(tmp_path, config={"http": {"workers": 1}}, storage=storage) as registry, \
            registry.client() as http:
        digest = push_blob(http, "memory/big", random_blob(BLOB_MIB * 1024 * 1024))
        http.get(f"/v2/memory/big/blobs/{digest}")  # warm: the blob is in the page cache
        address, port = registry.host.rsplit(":", 1)
        time.sleep(0.5)
        before = server_rss_kib(registry.process.pid)
        reset_peak_rss(registry.process.pid)
        connections = []
        try:
            for _ in range(DOWNLOADS):
                sock = socket.create_connection((address, int(port)), timeout=30)
                # A small receive buffer: the client is slow, the server must wait for it.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                sock.sendall(f"GET /v2/memory/big/blobs/{digest} HTTP/1.1\r\n"
                             f"Host: {registry.host}\r\n\r\n".encode())
                connections.append(sock)
            time.sleep(3)  # every download has started and is stalled on its reader
            # Stalled downloads hold nothing other requests need (a connection to S3).
            head = http.head(f"/v2/memory/big/blobs/{digest}", timeout=30)
            assert head.status_code == 200
            for sock in connections:
                sock.recv(65536)  # each reads a little, so the server reads on
            time.sleep(2)
            grown = server_peak_rss_kib(registry.process.pid) - before
        finally:
            for sock in connections:
                sock.close()
        # With 4 MiB pieces for every download the server grew by about 960 MiB here;
        # now by about 250 MiB.
        assert grown < 480 * 1024, f"the server grew by {grown} KiB for {DOWNLOADS} downloads"
