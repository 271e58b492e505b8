"""Concurrent downloads of one large blob: many clients reading as fast as they can, or
slowly, while the memory of the server's processes is watched."""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from .common import HOST, BenchError
from .procs import RssPeak, memory_sum_kib, reset_peak_rss, tree_pids
from .servers import Server

DOWNLOAD_REPO = "bench/downloads"
# Fast clients read into one shared buffer (the bytes are counted, not kept).
FAST_BUFFER = 256 * 1024
MAX_HEAD = 64 * 1024
# Slow clients: a small receive buffer, a little read from each now and then (64 KiB/s).
SLOW_RCVBUF = 64 * 1024
SLOW_READ = 16 * 1024
SLOW_INTERVAL = 0.25
CONNECT_SECONDS = 60.0  # for all slow clients together
# Open files the benchmark needs besides one socket per client (logs, pipes, /proc).
SPARE_FILES = 256


def raise_open_files_limit(clients: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit if the clients need more;
    the servers started afterwards inherit it. The soft limit in force is returned."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = clients + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = hard if hard == resource.RLIM_INFINITY else max(soft, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise BenchError(f"{clients} clients need {needed} open files; the limit is {soft}")
    return soft


def request_bytes(port: int, digest: str) -> bytes:
    return (f"GET /v2/{DOWNLOAD_REPO}/blobs/{digest} HTTP/1.1\r\n"
            f"Host: {HOST}:{port}\r\nConnection: close\r\n\r\n").encode("latin-1")


def parse_head(head: bytes) -> tuple[int, int]:
    """(status, Content-Length) of a response head; BenchError if there is no length."""
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise BenchError(f"bad status line {lines[0][:100]!r}") from exc
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-length":
            return status, int(value.strip())
    raise BenchError(f"HTTP {status} without Content-Length")


class _Download(asyncio.BufferedProtocol):
    """One GET of the blob, its body counted in a buffer shared by all downloads: the event
    loop fills it and calls buffer_updated before it asks for a buffer again."""

    def __init__(self, request: bytes, buffer: memoryview, size: int,
                 done: asyncio.Future[None]) -> None:
        self.request = request
        self.buffer = buffer
        self.size = size
        self.done = done
        self.head = bytearray()
        self.remaining = -1  # body bytes still expected; -1 until the head is in
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.done.done():
            return
        if self.remaining >= 0:
            self.remaining -= nbytes
        else:
            self.head += self.buffer[:nbytes]
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > MAX_HEAD:
                    self._finish(BenchError("response head larger than 64 KiB"))
                return
            try:
                status, length = parse_head(bytes(self.head[:end]))
            except BenchError as exc:
                self._finish(exc)
                return
            if status != 200 or length != self.size:
                self._finish(BenchError(f"GET blob: HTTP {status}, Content-Length {length}, "
                                        f"expected 200 and {self.size}"))
                return
            self.remaining = length - (len(self.head) - end - 4)
            self.head = bytearray()
        if self.remaining < 0:
            self._finish(BenchError("more bytes than Content-Length"))
        elif self.remaining == 0:
            self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            left = "the head" if self.remaining < 0 else f"{self.remaining} body bytes"
            self._finish(BenchError(f"connection closed with {left} missing ({exc!r})"))

    def _finish(self, error: BenchError | None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)
        if self.transport is not None:
            self.transport.close()


async def _fast(port: int, digest: str, size: int, clients: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    buffer = memoryview(bytearray(FAST_BUFFER))
    request = request_bytes(port, digest)
    futures: list[asyncio.Future[None]] = [loop.create_future() for _ in range(clients)]
    transports: list[asyncio.BaseTransport] = []

    async def one(done: asyncio.Future[None]) -> None:
        transport, _ = await loop.create_connection(
            lambda: _Download(request, buffer, size, done), HOST, port)
        transports.append(transport)
        await done

    tasks = [asyncio.ensure_future(one(done)) for done in futures]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    except TimeoutError as exc:
        finished = sum(1 for done in futures if done.done())
        raise BenchError(f"{clients - finished} of {clients} downloads still running "
                         f"after {timeout:.0f} s") from exc
    except OSError as exc:
        raise BenchError(f"download: {exc!r}") from exc
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for transport in transports:
            transport.close()


def fast_downloads(port: int, digest: str, size: int, clients: int) -> float:
    """`clients` GETs of the blob at once, each read as fast as the client can; every body
    must have exactly `size` bytes. Total MB/s from the first connect to the last byte."""
    total = size * clients
    timeout = 60.0 + total / 50e6  # generous: a loaded 2-core machine does GB/s
    started = time.perf_counter()
    asyncio.run(_fast(port, digest, size, clients, timeout))
    return total / (time.perf_counter() - started) / 1e6


@dataclass
class SlowOutcome:
    received: int  # bytes, all clients, headers included
    seconds: float


def slow_downloads(port: int, digest: str, clients: int, seconds: float) -> SlowOutcome:
    """`clients` GETs of the blob at once with a small receive buffer, each reading
    SLOW_READ bytes every SLOW_INTERVAL for `seconds`, then closing before the end."""
    request = request_bytes(port, digest)
    sockets: list[socket.socket] = []
    received: list[int] = []
    started = time.perf_counter()
    connect_by = time.monotonic() + CONNECT_SECONDS
    try:
        for _ in range(clients):
            left = connect_by - time.monotonic()
            if left <= 0:
                raise BenchError(f"only {len(sockets)} of {clients} slow downloads connected "
                                 f"within {CONNECT_SECONDS:.0f} s")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            # Before connecting, so the window the server sees is small from the start.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
            sock.settimeout(left)
            try:
                sock.connect((HOST, port))
                sock.sendall(request)
            except OSError as exc:
                raise BenchError(f"slow download {len(sockets)}: {exc!r}") from exc
            received.append(0)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for index, sock in enumerate(sockets):
                received[index] += _read_some(sock, received[index] == 0)
            time.sleep(SLOW_INTERVAL)
        stalled = sum(1 for count in received if count == 0)
        if stalled:
            raise BenchError(f"{stalled} of {clients} slow downloads received nothing")
    finally:
        for sock in sockets:
            sock.close()
    return SlowOutcome(sum(received), time.perf_counter() - started)


def _read_some(sock: socket.socket, first: bool) -> int:
    try:
        data = sock.recv(SLOW_READ, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return 0
    except OSError as exc:
        raise BenchError(f"slow download: {exc!r}") from exc
    if not data:
        raise BenchError("the server closed a slow download before the client did")
    if first and not data.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")):
        raise BenchError(f"slow download: {data[:60]!r}")
    return len(data)


def with_peak_memory(
    server: Server, clients: int, run: Callable[[], dict[str, float]], prefix: str
) -> dict[str, float]:
    """Run `run` while measuring the server's processes: the sum of their VmHWM after a
    reset (an upper bound of the peak), the largest sum of VmRSS sampled every 0.1 s (a
    lower bound), and the growth over the RSS before, per client."""
    root = server.pid()
    if root is None:
        raise BenchError(f"{server.name} is not running")
    pids = tree_pids(root)
    before = memory_sum_kib(pids, "VmRSS")
    hwm_reset = reset_peak_rss(pids)
    with RssPeak(pids) as sampled:
        values = run()
    peak = memory_sum_kib(pids, "VmHWM") if hwm_reset else sampled.peak_kib
    peak = max(peak, sampled.peak_kib)
    values.update({
        f"{prefix}_peak_mib": peak / 1024,
        f"{prefix}_sampled_mib": sampled.peak_kib / 1024,
        f"{prefix}_conn_mib": max(0, peak - before) / 1024 / clients,
        f"{prefix}_before_mib": before / 1024,  # not a table row: the idle fact's source
    })
    return values


def fresh_server(server: Server, digest: str, size: int) -> None:
    """Restart the server so every run starts from the same idle state, then warm it (and
    the page cache) with a few downloads, untimed, and let it settle."""
    server.stop()
    server.start()
    fast_downloads(server.port, digest, size, 8)
    time.sleep(1.0)


def describe_slow(seconds: float) -> str:
    rate = SLOW_READ / SLOW_INTERVAL / 1024
    return (f"SO_RCVBUF {SLOW_RCVBUF // 1024} KiB, {SLOW_READ // 1024} KiB read every "
            f"{SLOW_INTERVAL} s ({rate:.0f} KiB/s) for {seconds:g} s")

