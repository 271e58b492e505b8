"""Chunks of one upload raced across processes must never commit bytes under a digest
they do not have.

The attack: B's chunk head arrives first (on one process) and its body waits; A's chunk
(another process) writes X; C's chunk head arrives; B's body (Y) arrives; C sends a few
bytes and disconnects. Unserialised, the file ends up holding X while the hash state saved
for its size is that of Y, and `PUT ?digest=sha256(Y)` stores X under Y's digest.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.rawhttp import parse_response
from tests.support.server import RunningRegistry, Storage, run_registry

REPO = "race/target"
CHUNK = 64 * 1024


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _patch_head(target: str, host: str, length: int) -> bytes:
    return (f"PATCH {target} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n"
            "Connection: close\r\n\r\n").encode()


def _connect(registry: RunningRegistry) -> socket.socket:
    address, port = registry.host.rsplit(":", 1)
    return socket.create_connection((address, int(port)), timeout=60)


def _read_all(sock: socket.socket) -> bytes:
    received = bytearray()
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return bytes(received)


class _Background:
    """Read a connection's answer in a thread while the test goes on."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.data = _read_all(self.sock)

    def status(self, timeout: float = 60) -> int | None:
        self.thread.join(timeout)
        return parse_response(self.data).status


def attack(first: RunningRegistry, second: RunningRegistry, tag: bytes) -> tuple[str, str]:
    """Run the interleaving once, with B on `first` and A, C on `second`. Returns the
    digests of X and Y after trying to commit the upload as Y."""
    x = os.urandom(CHUNK - len(tag)) + tag
    y = os.urandom(CHUNK - len(tag)) + tag
    with first.client() as http:
        started = http.post(f"/v2/{REPO}/blobs/uploads/")
        assert started.status_code == 202, started.text
        target = urlsplit(started.headers["location"]).path
    with ExitStack() as stack:
        b = stack.enter_context(_connect(first))
        b.sendall(_patch_head(target, first.host, len(y)))
        time.sleep(0.3)  # B's handler is now waiting for its body
        a = stack.enter_context(_connect(second))
        a.sendall(_patch_head(target, second.host, len(x)) + x)
        a_answer = _Background(a)
        time.sleep(0.3)  # unserialised, A's chunk is written by now
        c = stack.enter_context(_connect(second))
        c.sendall(_patch_head(target, second.host, len(x) + 5))
        time.sleep(0.3)
        b.sendall(y)
        b_status = parse_response(_read_all(b)).status
        c.sendall(b"12345")
        c.close()  # C's chunk breaks off: the server cuts the file back
        a_status = a_answer.status()
        assert b_status == 202 and a_status == 202, (b_status, a_status)
    time.sleep(0.3)
    with second.client() as http:
        http.put(target, params={"digest": _sha256(y)})
    return _sha256(x), _sha256(y)


def assert_blobs_match_digests(registry: RunningRegistry, digests: list[str]) -> None:
    with registry.client() as http:
        for digest in digests:
            response = http.get(f"/v2/{REPO}/blobs/{digest}")
            if response.status_code == 200:
                assert _sha256(response.content) == digest, \
                    f"served bytes whose sha256 is {_sha256(response.content)} as {digest}"
            else:
                assert response.status_code == 404, response.text


@contextmanager
def two_servers_on_one_store(tmp_path: Path, storage: Storage
                             ) -> Iterator[tuple[RunningRegistry, RunningRegistry]]:
    store = tmp_path / "store"
    single = {"http": {"workers": 1}}
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    with run_registry(tmp_path / "one", root=store, config=single, storage=storage) as first, \
            run_registry(tmp_path / "two", root=store, config=single, storage=storage) as second:
        yield first, second


def test_chunks_raced_across_two_servers_never_poison_a_digest(tmp_path: Path,
                                                               storage: Storage) -> None:
    with two_servers_on_one_store(tmp_path, storage) as (first, second):
        for attempt in range(3):
            digests = attack(first, second, f"attempt {attempt}".encode())
            assert_blobs_match_digests(first, list(digests))
            assert_blobs_match_digests(second, list(digests))


def test_chunks_raced_across_workers_never_poison_a_digest(tmp_path: Path,
                                                           storage: Storage) -> None:
    # Which worker takes a connection is up to the kernel, so the interleaving is tried
    # several times; every outcome must keep digests and bytes in agreement.
    with run_registry(tmp_path, config={"http": {"workers": 2}}, storage=storage) as registry:
        for attempt in range(6):
            digests = attack(registry, registry, f"worker attempt {attempt}".encode())
            assert_blobs_match_digests(registry, list(digests))


def test_a_chunk_waits_for_the_one_writing_and_both_land(tmp_path: Path,
                                                         storage: Storage) -> None:
    """Two chunks of one upload at once on two servers: the second waits for the first,
    then appends after it, and the digest of the whole is committed."""
    with two_servers_on_one_store(tmp_path, storage) as (first, second):
        with first.client() as http:
            target = urlsplit(http.post(f"/v2/{REPO}/blobs/uploads/").headers["location"]).path
        one, two = os.urandom(CHUNK), os.urandom(CHUNK)
        slow = _connect(first)
        slow.sendall(_patch_head(target, first.host, len(one)))
        time.sleep(0.3)
        fast = _connect(second)
        fast.sendall(_patch_head(target, second.host, len(two)) + two)
        fast_answer = _Background(fast)
        time.sleep(0.5)
        assert fast_answer.thread.is_alive(), "the second chunk did not wait for the first"
        slow.sendall(one)
        assert parse_response(_read_all(slow)).status == 202
        assert fast_answer.status() == 202
        slow.close()
        fast.close()
        whole = one + two
        with second.client() as http:
            done = http.put(target, params={"digest": _sha256(whole)})
            assert done.status_code == 201, done.text
            assert http.get(f"/v2/{REPO}/blobs/{_sha256(whole)}").content == whole


@pytest.mark.filesystem_only(reason="about the upload locks, which live in the local index "
                             "directory whatever the storage; on S3 each of its 18,000 "
                             "requests also costs a bucket round trip (3 minutes)")
def test_locks_leave_nothing_behind_for_unknown_uploads(tmp_path: Path,
                                                        storage: Storage) -> None:
    """PATCHes to uploads that do not exist must not grow the server's memory."""
    with run_registry(tmp_path, config={"http": {"workers": 1}}, storage=storage) as registry:
        worker = registry.process.pid  # one worker: it serves in the main process

        def hammer(count: int, offset: int) -> None:
            with httpx.Client(base_url=registry.url, timeout=30) as http:
                for number in range(offset, offset + count):
                    response = http.patch(f"/v2/{REPO}/blobs/uploads/gone-{number:x}",
                                          content=b"x")
                    assert response.status_code == 404

        hammer(2000, 0)
        before = _rss_kib(worker)
        threads = [threading.Thread(target=hammer, args=(4000, 10_000 * (i + 1)))
                   for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        grown = _rss_kib(worker) - before
        # Unbounded, the 16,000 lock entries grew a worker by about 5.4 MiB.
        assert grown < 3 * 1024, f"worker grew by {grown} KiB"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
