"""A small asyncio HTTP/1.1 keep-alive client, for many small requests from one process.

Cheaper per request than threads with http.client (no GIL hand-offs), so on a 2-core machine
the client takes less CPU away from the servers. It understands Content-Length and chunked
bodies, which is all the registries send.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from .common import HOST, BenchError

T = TypeVar("T")
NO_BODY_STATUSES = (204, 304)


class AsyncConnection:
    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port = port
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        return self.reader, self.writer

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            return await asyncio.wait_for(
                self._request(method, target, body, headers or {}), self.timeout
            )
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            raise BenchError(f"{method} {target}: {exc!r}") from exc

    async def _request(
        self, method: str, target: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await self._open()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        received: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                key, value = line.split(":", 1)
                received[key.strip().lower()] = value.strip()
        data = b""
        if method != "HEAD" and status not in NO_BODY_STATUSES and not 100 <= status < 200:
            if received.get("transfer-encoding", "").lower() == "chunked":
                data = await self._read_chunked(reader)
            elif "content-length" in received:
                data = await reader.readexactly(int(received["content-length"]))
            else:
                data = await reader.read()
                await self.close()
                return status, received, data
        if received.get("connection", "").lower() == "close":
            await self.close()
        return status, received, data

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        for _ in range(10_000_000):
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        raise BenchError("chunked body too long")


async def run_pool(
    port: int,
    concurrency: int,
    items: Sequence[T],
    work: Callable[[AsyncConnection, T], Awaitable[None]],
) -> None:
    """Run `work(connection, item)` for every item, `concurrency` connections at once."""
    queue = iter(items)

    async def worker() -> None:
        conn = AsyncConnection(port)
        try:
            for item in queue:
                await work(conn, item)
        finally:
            await conn.close()

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, concurrency))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
