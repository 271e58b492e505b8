"""Chunked uploads on S3 through HTTP: chunks alternating between two dockyard processes on
one bucket and index directory, the upload's status right from either at every point, a
chunk that breaks off part-way undone and sent again, and each PATCH costing S3 requests
for its own bytes and at most one part, however large the upload already is (counted from
the servers' per-request log, `storage.s3.loglevel: debug`)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.storage.test_s3_serve import s3_section
from tests.support.oci import digest_of
from tests.support.rawhttp import build_request, exchange
from tests.support.s3 import S3Bucket, botocore_client, on_primary_s3
from tests.support.server import RunningRegistry, run_registry

MIB = 1024 * 1024
PART = 5 * MIB  # the servers' chunksize
REQUEST_LINE = re.compile(r"s3 request (\w+) key=(\S*) bytes=([0-9]+|-)")


@dataclass
class S3Requests:
    """The S3 requests one PATCH made, from the servers' logs."""

    lines: list[tuple[str, str, int | None]]

    def count(self, operation: str) -> int:
        return sum(1 for name, _, _ in self.lines if name == operation)

    def data_bytes(self) -> int:
        """Bytes sent, read or copied for the upload's data (its parts and pending tail)."""
        return sum(size or 0 for _, key, size in self.lines
                   if key.endswith(("/data", "/data~pending")))


class LogCursor:
    """Reads what the servers logged since the last read."""

    def __init__(self, servers: list[RunningRegistry]) -> None:
        self.servers = servers
        self.offsets = [0] * len(servers)

    def new_requests(self) -> S3Requests:
        lines: list[tuple[str, str, int | None]] = []
        for index, server in enumerate(self.servers):
            data = server.log_path.read_bytes()
            text = data[self.offsets[index]:].decode(errors="replace")
            self.offsets[index] = len(data)
            for match in REQUEST_LINE.finditer(text):
                size = match.group(3)
                lines.append((match.group(1), match.group(2),
                              int(size) if size.isdigit() else None))
        return S3Requests(lines)


@contextmanager
def two_servers(bucket: S3Bucket, tmp_path: Path) -> Iterator[list[RunningRegistry]]:
    """Two dockyard processes (one worker each) on the same bucket and index directory."""
    section = {**s3_section(bucket, tmp_path), "chunksize": PART, "loglevel": "debug"}
    with ExitStack() as stack:
        servers = []
        for name in ("one", "two"):
            (tmp_path / name).mkdir()
            servers.append(stack.enter_context(run_registry(
                tmp_path / name, config={"storage": {"s3": section}, "http": {"workers": 1}},
                env={"REGISTRY_STORAGE": "s3"})))
        yield servers


def path_of(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def assert_status(servers: list[RunningRegistry], upload: str, size: int) -> None:
    for server in servers:
        status = httpx.get(server.url + upload, timeout=60)
        assert status.status_code == 204, status.text
        assert status.headers["Range"] == f"0-{max(size - 1, 0)}"


def patch(server: RunningRegistry, upload: str, chunk: bytes, start: int) -> None:
    response = httpx.patch(server.url + upload, content=chunk, timeout=120, headers={
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{start}-{start + len(chunk) - 1}"})
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == f"0-{start + len(chunk) - 1}"


def broken_patch(server: RunningRegistry, upload: str, chunk: bytes, start: int,
                 promised: int) -> None:
    """A PATCH whose body stops short of its Content-Length (the client went away)."""
    request = build_request("PATCH", upload, server.host, [
        ("Content-Type", "application/octet-stream"),
        ("Content-Range", f"{start}-{start + promised - 1}"),
        ("Content-Length", str(promised))], chunk)
    answer = exchange(server.host, request, half_close=True, timeout=120)
    assert answer.status in (None, 400), answer


def push_in_chunks(servers: list[RunningRegistry], blob: bytes, cuts: list[int],
                   break_at: int | None = None) -> list[S3Requests]:
    """Push `blob` in chunks ending at `cuts`, alternating servers and checking the status
    on both before each; before the chunk starting at `break_at`, a longer chunk breaks off
    after filling parts. Returns each PATCH's S3 requests; commits on the second server."""
    repository = "/v2/chunks/blob/blobs/uploads/"
    started = httpx.post(servers[0].url + repository, timeout=60)
    assert started.status_code == 202, started.text
    upload = path_of(started.headers["Location"])
    logs = LogCursor(servers)
    costs = []
    start = 0
    for number, end in enumerate(cuts):
        server = servers[number % 2]
        assert_status(servers, upload, start)
        if start == break_at:
            broken_patch(server, upload, blob[start:start + 2 * PART + 7], start,
                         3 * PART)
            logs.new_requests()
            assert_status(servers, upload, start)
        logs.new_requests()
        patch(server, upload, blob[start:end], start)
        costs.append(logs.new_requests())
        start = end
    assert_status(servers, upload, len(blob))
    committed = httpx.put(servers[1].url + upload, params={"digest": digest_of(blob)},
                          timeout=300)
    assert committed.status_code == 201, committed.text
    for server in servers:
        pulled = httpx.get(f"{server.url}/v2/chunks/blob/blobs/{digest_of(blob)}",
                           timeout=300, follow_redirects=True)
        assert pulled.status_code == 200
        assert "sha256:" + hashlib.sha256(pulled.content).hexdigest() == digest_of(blob)
    return costs


def assert_nothing_left(bucket: S3Bucket) -> None:
    client = botocore_client(bucket.service)
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket.bucket, Prefix=bucket.prefix) for item in page.get("Contents", [])]
    assert not [key for key in keys if "/_uploads/" in key]
    uploads = client.list_multipart_uploads(Bucket=bucket.bucket, Prefix=bucket.prefix)
    assert uploads.get("Uploads", []) == []


@on_primary_s3
def test_chunks_of_1_mib_cost_their_own_bytes_and_one_part(s3_bucket: S3Bucket,
                                                          tmp_path: Path) -> None:
    blob = os.urandom(40 * MIB + 123)
    cuts = [*range(MIB, 40 * MIB + 1, MIB), len(blob)]
    with two_servers(s3_bucket, tmp_path) as servers:
        costs = push_in_chunks(servers, blob, cuts, break_at=20 * MIB)
    assert len(costs) == len(cuts)
    # Nothing already stored is copied or read again, but the pending tail (< a part):
    # what each PATCH moves beyond its own bytes stays under two parts.
    chunk_sizes = [end - start for start, end in zip([0, *cuts], cuts, strict=False)]
    overheads = [cost.data_bytes() - size for cost, size in zip(costs, chunk_sizes,
                                                                strict=True)]
    assert max(overheads) <= 2 * PART, overheads
    for cost in costs:
        assert cost.count("UploadPartCopy") == 0 and cost.count("CopyObject") == 0
        assert cost.count("CompleteMultipartUpload") == 0
    # A part is sent whenever a chunk fills one: 8 parts for the first 40 MiB.
    assert sum(cost.count("UploadPart") for cost in costs) == 8
    assert_nothing_left(s3_bucket)


@on_primary_s3
def test_chunks_of_4_kib_across_a_part_boundary(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    first = PART - 40 * 1024
    blob = os.urandom(first + 64 * 4096 + 5)
    cuts = [first, *range(first + 4096, len(blob), 4096), len(blob)]
    with two_servers(s3_bucket, tmp_path) as servers:
        costs = push_in_chunks(servers, blob, cuts)
    for cost in costs[1:]:
        assert cost.count("UploadPartCopy") == 0 and cost.count("CopyObject") == 0
        assert cost.count("CompleteMultipartUpload") == 0
        assert cost.data_bytes() <= 4096 + 2 * PART
    assert sum(cost.count("UploadPart") for cost in costs) == 1
    assert_nothing_left(s3_bucket)


def test_cancel_aborts_the_open_upload(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    blob = os.urandom(PART + MIB)
    with two_servers(s3_bucket, tmp_path) as servers:
        started = httpx.post(servers[0].url + "/v2/chunks/blob/blobs/uploads/", timeout=60)
        upload = path_of(started.headers["Location"])
        patch(servers[0], upload, blob, 0)
        client = botocore_client(s3_bucket.service)
        uploads = client.list_multipart_uploads(Bucket=s3_bucket.bucket,
                                                Prefix=s3_bucket.prefix)
        assert len(uploads.get("Uploads", [])) == 1  # kept open between requests
        cancelled = httpx.delete(servers[1].url + upload, timeout=60)
        assert cancelled.status_code == 204, cancelled.text
        assert httpx.get(servers[0].url + upload, timeout=60).status_code == 404
    assert_nothing_left(s3_bucket)


def test_a_wrong_digest_leaves_the_upload_to_go_on(s3_bucket: S3Bucket,
                                                   tmp_path: Path) -> None:
    blob = os.urandom(PART + 3 * MIB)
    with two_servers(s3_bucket, tmp_path) as servers:
        started = httpx.post(servers[0].url + "/v2/chunks/blob/blobs/uploads/", timeout=60)
        upload = path_of(started.headers["Location"])
        patch(servers[0], upload, blob[:PART + MIB], 0)
        wrong = httpx.put(servers[1].url + upload, content=blob[PART + MIB:PART + 2 * MIB],
                          params={"digest": digest_of(b"something else")}, timeout=120)
        assert wrong.status_code == 400, wrong.text
        assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert_status(servers, upload, PART + 2 * MIB)
        patch(servers[0], upload, blob[PART + 2 * MIB:], PART + 2 * MIB)
        committed = httpx.put(servers[1].url + upload, params={"digest": digest_of(blob)},
                              timeout=120)
        assert committed.status_code == 201, committed.text
        pulled = httpx.get(f"{servers[0].url}/v2/chunks/blob/blobs/{digest_of(blob)}",
                           timeout=120, follow_redirects=True)
        assert pulled.content == blob
    assert_nothing_left(s3_bucket)
