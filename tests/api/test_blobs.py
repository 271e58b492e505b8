"""Blob GET/HEAD/DELETE: headers, ranges, conditional requests and errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.support.oci import digest_of, error_codes, push_blob, random_blob
from tests.support.server import RunningRegistry, Storage

MiB = 1024 * 1024


@pytest.fixture
def blob(client: httpx.Client) -> tuple[str, bytes, str]:
    data = random_blob(10_000)
    return "blobs/test", data, push_blob(client, "blobs/test", data)


def test_get_and_head_blob(client: httpx.Client, blob: tuple[str, bytes, str]) -> None:
    name, data, digest = blob
    response = client.get(f"/v2/{name}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["ETag"] == f'"{digest}"'
    head = client.head(f"/v2/{name}/blobs/{digest}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest


def test_range_requests(client: httpx.Client, blob: tuple[str, bytes, str]) -> None:
    name, data, digest = blob
    url = f"/v2/{name}/blobs/{digest}"
    cases = {"bytes=0-99": data[:100], "bytes=9990-": data[9990:], "bytes=-10": data[-10:],
             "bytes=5000-99999": data[5000:]}
    for header, expected in cases.items():
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == expected, header
        assert response.headers["Content-Length"] == str(len(expected))
        first = len(data) - len(expected)
        assert response.headers["Content-Range"] == \
            f"bytes {first}-{len(data) - 1}/{len(data)}" or header == "bytes=0-99"
    for header in ("bytes=10000-", "bytes=500-100", "bytes=abc", "items=0-1"):
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 416, header
        assert response.headers["Content-Range"] == f"bytes */{len(data)}"


def evict_from_page_cache(path: Path, attempts: int = 20) -> bool:
    """Drop a file's pages from the page cache; whether they are really gone. A page the
    server is still reading (its read-ahead after the answer) stays: try again a moment
    later."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be dropped
        for _ in range(attempts):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            try:
                os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT)
            except BlockingIOError:
                return True
            time.sleep(0.05)
        return False
    finally:
        os.close(fd)


@pytest.mark.blob_redirect
def test_large_blobs_read_warm_and_cold(registry: RunningRegistry, storage: Storage,
                                         client: httpx.Client) -> None:
    """Blobs go out in pieces (on a filesystem, 4 MiB copied from the page cache or read
    from disk in a thread; on S3, 1 MiB as they arrive): whole and ranged reads across
    piece boundaries give the stored bytes, on a filesystem both ways."""
    data = os.urandom(9 * MiB + 123)
    digest = push_blob(client, "blobs/large", data)
    hex_digest = digest.split(":", 1)[1]
    stored = registry.root / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest \
        / "data"
    url = f"/v2/blobs/large/blobs/{digest}"
    ranges = [(4 * MiB - 10, 4 * MiB + 10), (8 * MiB - 1, 9 * MiB + 122), (5, 5),
              (MiB - 1, MiB)]
    for cold in (True, False) if storage.bucket is None else (False,):
        if cold:
            assert evict_from_page_cache(stored)
        assert client.get(url).content == data
        for first, last in ranges:
            if cold:
                assert evict_from_page_cache(stored)
            response = client.get(url, headers={"Range": f"bytes={first}-{last}"})
            assert response.status_code == 206
            # Redirected, the bytes came from the bucket itself.
            assert [hop.status_code for hop in response.history] == \
                ([307] if storage.redirect else [])
            assert response.content == data[first:last + 1], (cold, first, last)


def test_if_none_match_gives_304(client: httpx.Client, blob: tuple[str, bytes, str]) -> None:
    name, _, digest = blob
    response = client.get(f"/v2/{name}/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'})
    assert response.status_code == 304


def test_unknown_blob(client: httpx.Client) -> None:
    digest = digest_of(b"never pushed")
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/v2/blobs/test/blobs/{digest}")
        assert response.status_code == 404
    assert error_codes(client.get(f"/v2/blobs/test/blobs/{digest}")) == ["BLOB_UNKNOWN"]


def test_blob_is_scoped_to_its_repository(client: httpx.Client,
                                          blob: tuple[str, bytes, str]) -> None:
    _, _, digest = blob
    response = client.get(f"/v2/other/repo/blobs/{digest}")
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:0123", "sha256:" + "Z" * 64, "nodigest",
                                    "sha256:" + "a" * 63])
def test_invalid_digest(client: httpx.Client, digest: str) -> None:
    response = client.get(f"/v2/blobs/test/blobs/{digest}")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_delete_blob(client: httpx.Client) -> None:
    digest = push_blob(client, "blobs/deleting", random_blob())
    response = client.delete(f"/v2/blobs/deleting/blobs/{digest}")
    assert response.status_code == 202
    assert client.head(f"/v2/blobs/deleting/blobs/{digest}").status_code == 404
    again = client.delete(f"/v2/blobs/deleting/blobs/{digest}")
    assert again.status_code == 404
    assert error_codes(again) == ["BLOB_UNKNOWN"]
