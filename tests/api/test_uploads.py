"""Upload sessions: monolithic, chunked, streamed, status, cancel, mount, and bad input."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.oci import digest_of, error_codes, push_blob, random_blob
from tests.support.rawhttp import build_request, exchange


def start(client: httpx.Client, name: str) -> str:
    response = client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == "0-0"
    assert response.headers["Docker-Upload-UUID"]
    assert response.headers["Content-Length"] == "0"
    return response.headers["Location"]


@pytest.mark.blob_redirect
def test_chunked_upload(client: httpx.Client) -> None:
    data = random_blob(300_000)
    location = start(client, "uploads/chunked")
    chunks = [data[:100_000], data[100_000:250_000], data[250_000:]]
    offset = 0
    for chunk in chunks:
        response = client.patch(location, content=chunk, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
        })
        assert response.status_code == 202, response.text
        offset += len(chunk)
        assert response.headers["Range"] == f"0-{offset - 1}"
        location = response.headers["Location"]
        status = client.get(location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{offset - 1}"
        assert status.headers["Docker-Upload-UUID"]
    digest = digest_of(data)
    response = client.put(location, params={"digest": digest})
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Location"].endswith(f"/v2/uploads/chunked/blobs/{digest}")
    assert client.get(f"/v2/uploads/chunked/blobs/{digest}").content == data
    # The finished session is gone.
    assert client.get(location).status_code == 404


def test_streamed_upload_without_content_length(client: httpx.Client) -> None:
    data = random_blob(1_000_000)

    def body() -> Iterator[bytes]:
        for start_at in range(0, len(data), 65536):
            yield data[start_at:start_at + 65536]

    location = start(client, "uploads/streamed")
    response = client.patch(location, content=body())
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == f"0-{len(data) - 1}"
    response = client.put(response.headers["Location"], params={"digest": digest_of(data)})
    assert response.status_code == 201


@pytest.mark.blob_redirect
def test_last_chunk_in_put(client: httpx.Client) -> None:
    data = random_blob(5000)
    location = start(client, "uploads/lastchunk")
    response = client.patch(location, content=data[:2000])
    assert response.status_code == 202
    response = client.put(response.headers["Location"], params={"digest": digest_of(data)},
                          content=data[2000:])
    assert response.status_code == 201, response.text
    assert client.get(f"/v2/uploads/lastchunk/blobs/{digest_of(data)}").content == data


def test_out_of_order_chunk_is_416(client: httpx.Client) -> None:
    location = start(client, "uploads/order")
    response = client.patch(location, content=b"a" * 10, headers={"Content-Range": "0-9"})
    assert response.status_code == 202
    response = client.patch(location, content=b"b" * 10, headers={"Content-Range": "20-29"})
    assert response.status_code == 416
    assert client.get(location).headers["Range"] == "0-9"
    response = client.patch(location, content=b"b" * 10, headers={"Content-Range": "5-14"})
    assert response.status_code == 416


def test_content_range_must_match_length(client: httpx.Client) -> None:
    location = start(client, "uploads/badrange")
    for header in ("0-99", "abc", "9-0"):
        response = client.patch(location, content=b"x" * 10, headers={"Content-Range": header})
        assert response.status_code == 416, header
    assert client.get(location).headers["Range"] == "0-0"


def test_digest_mismatch(client: httpx.Client) -> None:
    location = start(client, "uploads/mismatch")
    response = client.put(location, params={"digest": digest_of(b"other")}, content=b"data")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    monolithic = client.post("/v2/uploads/mismatch/blobs/uploads/",
                             params={"digest": digest_of(b"other")}, content=b"data")
    assert monolithic.status_code == 400
    assert error_codes(monolithic) == ["DIGEST_INVALID"]
    assert client.head(f"/v2/uploads/mismatch/blobs/{digest_of(b'data')}").status_code == 404


def test_finish_without_digest(client: httpx.Client) -> None:
    location = start(client, "uploads/nodigest")
    response = client.put(location, content=b"data")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_cancel_upload(client: httpx.Client) -> None:
    location = start(client, "uploads/cancel")
    client.patch(location, content=b"abc")
    response = client.delete(location)
    assert response.status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        gone = client.request(method, location)
        assert gone.status_code == 404, method
        assert error_codes(gone) == ["BLOB_UPLOAD_UNKNOWN"]
    gone = client.put(location, params={"digest": digest_of(b"abc")})
    assert gone.status_code == 404


def test_unknown_and_malformed_upload_ids(client: httpx.Client) -> None:
    for upload_id in ("00000000-0000-0000-0000-000000000000", "..", "%2e%2e", "a.b"):
        response = client.get(f"/v2/uploads/unknown/blobs/uploads/{upload_id}")
        assert response.status_code in (400, 404), upload_id
        assert response.status_code != 500


@pytest.mark.blob_redirect
def test_mount_from_another_repository(client: httpx.Client) -> None:
    data = random_blob()
    digest = push_blob(client, "mount/source", data)
    response = client.post("/v2/mount/target/blobs/uploads/",
                           params={"mount": digest, "from": "mount/source"})
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Location"].endswith(f"/v2/mount/target/blobs/{digest}")
    assert client.get(f"/v2/mount/target/blobs/{digest}").content == data


def test_mount_falls_back_to_upload(client: httpx.Client) -> None:
    missing = digest_of(b"not in the source")
    for source in ("mount/source", "Invalid Name", ""):
        response = client.post("/v2/mount/fallback/blobs/uploads/",
                               params={"mount": missing, "from": source})
        assert response.status_code == 202, source
        assert response.headers["Docker-Upload-UUID"]
    response = client.post("/v2/mount/fallback/blobs/uploads/",
                           params={"mount": "garbage", "from": "mount/source"})
    assert response.status_code == 202


def test_body_shorter_than_content_length_is_refused(registry_host: str) -> None:
    import socket

    with httpx.Client(base_url=f"http://{registry_host}") as client:
        location = start(client, "uploads/short")
    path = location.split(registry_host, 1)[-1]
    host, port = registry_host.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"PATCH {path} HTTP/1.1\r\nHost: {registry_host}\r\n"
                     "Content-Length: 1000\r\n\r\n".encode() + b"x" * 10)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(4096)
    with httpx.Client(base_url=f"http://{registry_host}") as client:
        status = client.get(location)
        # Nothing of the broken chunk was kept.
        assert status.status_code == 204
        assert status.headers["Range"] == "0-0"


def test_unusable_content_length_is_refused(registry_host: str) -> None:
    data = b"0123456789"
    response = exchange(registry_host, build_request(
        "POST", f"/v2/uploads/len/blobs/uploads/?digest={digest_of(data)}", registry_host,
        [("Content-Length", "abc")]))
    assert response.status == 400, response
