"""Blob scenarios: a large blob pushed (monolithic, chunked) and pulled; many small blobs."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

from .aclient import AsyncConnection, run_pool
from .clients import (
    Client,
    check_blob,
    curl_download,
    expect,
    location_target,
    run_curl,
    start_upload,
    with_digest,
)
from .common import BenchError, MiB, blob_dir, log
from .servers import Server

CHUNKED_REPO = "bench/chunked"


@dataclass
class Blob:
    path: Path
    size: int
    digest: str


def make_blob(directory: Path, size: int, name: str = "blob.bin") -> Blob:
    path = directory / name
    hasher = hashlib.sha256()
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            piece = os.urandom(min(16 * MiB, remaining))
            hasher.update(piece)
            handle.write(piece)
            remaining -= len(piece)
    return Blob(path, size, "sha256:" + hasher.hexdigest())


def scenario_monolithic(server: Server, blob: Blob, repo: str = "bench/monolithic") -> float:
    server.remove_blob(blob.digest, repo)  # also the copy a previous chunked push left
    client = Client(server.port)
    try:
        started = time.perf_counter()
        target = start_upload(client, repo)
        stdout, _ = run_curl(
            [
                "-X",
                "PUT",
                "-T",
                str(blob.path),
                "-H",
                "Content-Type: application/octet-stream",
                "-H",
                "Expect:",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                server.base + with_digest(target, blob.digest),
            ],
            timeout=900,
        )
        elapsed = time.perf_counter() - started
        if stdout.strip() != "201":
            raise BenchError(f"monolithic PUT: HTTP {stdout.strip()}")
        check_blob(client, repo, blob.digest, blob.size)
    finally:
        client.close()
    # The blob stays until the chunked push, which removes it first; round 1 verifies it.
    return blob.size / elapsed / 1e6


def chunked_push(server: Server, blob: Blob, repo: str, chunk: int) -> float:
    """POST, PATCH chunks with Content-Range over one keep-alive connection, PUT. Seconds."""
    return chunked_push_to(server.port, blob, repo, chunk)


def chunked_push_to(port: int, blob: Blob, repo: str, chunk: int) -> float:
    """`chunked_push` to whatever listens on `port` (a registry, or a proxy before some)."""
    client = Client(port)
    try:
        with blob.path.open("rb") as handle:
            started = time.perf_counter()
            target = start_upload(client, repo)
            offset = 0
            patches = 0
            while offset < blob.size:
                patches += 1
                if patches > 100_000:
                    raise BenchError("too many PATCH requests")
                count = min(chunk, blob.size - offset)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + count - 1}",
                }
                response = expect(
                    client.send_file("PATCH", target, handle, offset, count, headers),
                    (202,),
                    f"PATCH {offset}-{offset + count - 1}",
                )
                location = response.header("location")
                if location:
                    target = location_target(location)
                offset += count
            expect(
                client.request("PUT", with_digest(target, blob.digest), body=b""),
                (201,),
                "closing PUT",
            )
            elapsed = time.perf_counter() - started
        check_blob(client, repo, blob.digest, blob.size)
    finally:
        client.close()
    return elapsed


def scenario_chunked(server: Server, blob: Blob, chunk_size: int) -> float:
    # The blob stays afterwards: the pull scenario reads it, the next push removes it first.
    server.remove_blob(blob.digest, CHUNKED_REPO)
    elapsed = chunked_push(server, blob, CHUNKED_REPO, chunk_size)
    return blob.size / elapsed / 1e6


def verify_blob(server: Server, blob: Blob, scenario: str) -> None:
    """Untimed check that the server really holds the bytes: after a push, hash the stored
    file (both servers use distribution's layout); after the pull, hash a full GET."""
    hasher = hashlib.sha256()
    received = 0
    if scenario == "pull":
        client = Client(server.port)
        try:
            client.conn.request("GET", f"/v2/{CHUNKED_REPO}/blobs/{blob.digest}")
            response = client.conn.getresponse()
            if response.status != 200:
                raise BenchError(f"verification GET: HTTP {response.status}")
            buffer = bytearray(4 * MiB)
            while True:
                count = response.readinto(buffer)
                if not count:
                    break
                hasher.update(memoryview(buffer)[:count])
                received += count
        except (OSError, http.client.HTTPException) as exc:
            raise BenchError(f"verification GET: {exc!r}") from exc
        finally:
            client.close()
    else:
        path = blob_dir(server.root, blob.digest) / "data"
        if not path.exists():
            log(f"  {server.name:12} {scenario}: no {path}, stored bytes not verified")
            return
        with path.open("rb") as handle:
            while piece := handle.read(16 * MiB):
                hasher.update(piece)
                received += len(piece)
    digest = "sha256:" + hasher.hexdigest()
    if received != blob.size or digest != blob.digest:
        raise BenchError(
            f"verification after {scenario}: {received} bytes with digest {digest}, "
            f"expected {blob.size} bytes with {blob.digest}"
        )
    log(f"  {server.name:12} {scenario}: verified {received} bytes, digest matches")


def prepare_pull(server: Server, blob: Blob) -> None:
    """Untimed: make sure the blob the pull reads is there (the chunked push leaves it)."""
    client = Client(server.port)
    try:
        check_blob(client, CHUNKED_REPO, blob.digest, blob.size)
    except BenchError:
        chunked_push(server, blob, CHUNKED_REPO, 64 * MiB)
    finally:
        client.close()


def scenario_pull(server: Server, blob: Blob) -> float:
    return curl_download(f"{server.base}/v2/{CHUNKED_REPO}/blobs/{blob.digest}", blob.size)


# ---- many small blobs, pushed and pulled by concurrent clients


@dataclass
class SmallBlobs:
    base_repo: str
    blobs: list[tuple[str, bytes]]  # (digest, data)
    attempt: int = 0  # a repeated push goes to a new repository, so every blob is new there

    @property
    def repo(self) -> str:
        return f"{self.base_repo}-{self.attempt}"


def make_small_blobs(count: int, repo: str, seed: int) -> SmallBlobs:
    """`count` random blobs of 1-16 KiB (sizes from `seed`, so both servers get the same)."""
    sizes = random.Random(seed)
    blobs = []
    for _ in range(count):
        data = os.urandom(sizes.randint(1024, 16 * 1024))
        blobs.append(("sha256:" + hashlib.sha256(data).hexdigest(), data))
    return SmallBlobs(repo, blobs)


async def _push_one(conn: AsyncConnection, repo: str, digest: str, data: bytes) -> None:
    status, headers, body = await conn.request("POST", f"/v2/{repo}/blobs/uploads/")
    if status != 202 or "location" not in headers:
        raise BenchError(f"POST upload: HTTP {status} {body[:200]!r}")
    target = with_digest(location_target(headers["location"]), digest)
    status, _, body = await conn.request(
        "PUT", target, data, {"Content-Type": "application/octet-stream"}
    )
    if status != 201:
        raise BenchError(f"PUT blob: HTTP {status} {body[:200]!r}")


async def _pull_one(conn: AsyncConnection, repo: str, digest: str, size: int) -> None:
    status, _, body = await conn.request("GET", f"/v2/{repo}/blobs/{digest}")
    if status != 200 or len(body) != size:
        raise BenchError(f"GET blob: HTTP {status}, {len(body)} bytes of {size}")


def small_push(server: Server, small: SmallBlobs, clients: int) -> dict[str, float]:
    async def work(conn: AsyncConnection, item: tuple[str, bytes]) -> None:
        await _push_one(conn, small.repo, item[0], item[1])

    small.attempt += 1
    started = time.perf_counter()
    asyncio.run(run_pool(server.port, clients, small.blobs, work))
    return {"small_push": len(small.blobs) / (time.perf_counter() - started)}


def small_pull(server: Server, small: SmallBlobs, clients: int) -> dict[str, float]:
    async def work(conn: AsyncConnection, item: tuple[str, bytes]) -> None:
        await _pull_one(conn, small.repo, item[0], len(item[1]))

    started = time.perf_counter()
    asyncio.run(run_pool(server.port, clients, small.blobs, work))
    return {"small_pull": len(small.blobs) / (time.perf_counter() - started)}


def verify_small(server: Server, small: SmallBlobs, sample: int = 25) -> str:
    """Untimed: GET a sample of the pushed blobs and hash them."""
    client = Client(server.port, timeout=60)
    try:
        picked = random.Random(7).sample(small.blobs, min(sample, len(small.blobs)))
        for digest, data in picked:
            got = expect(
                client.request("GET", f"/v2/{small.repo}/blobs/{digest}"), (200,), "GET blob"
            )
            if got.body != data:
                raise BenchError(f"small blob {digest}: different bytes came back")
    finally:
        client.close()
    return f"small blobs: {len(picked)} of {len(small.blobs)} fetched back byte for byte"
