"""Repository names: the spec's grammar, multi-level names, limits and hostile paths."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.support.oci import error_codes, make_image, push_image


@pytest.mark.parametrize("name", ["library/hello-world", "a/b/c", "a.b_c__d---e/f", "x" * 200])
def test_valid_multi_level_names(client: httpx.Client, name: str) -> None:
    image = make_image(layer_count=1)
    push_image(client, name, "latest", image)
    assert client.get(f"/v2/{name}/manifests/latest").content == image.manifest
    assert client.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": ["latest"]}


@pytest.mark.parametrize("name", ["UPPER", "a__-b", "-lead", "trail-", "a//b",
                                  "x" * 256, "sp ace", "ünïcode"])
def test_invalid_names(client: httpx.Client, name: str) -> None:
    for path in (f"/v2/{name}/tags/list", f"/v2/{name}/manifests/latest"):
        response = client.get(path)
        assert response.status_code in (400, 404), path
        assert error_codes(response)[0] in ("NAME_INVALID", "NOT_FOUND"), path
    response = client.post(f"/v2/{name}/blobs/uploads/")
    assert response.status_code in (400, 404)


def raw_request(host: str, request_line: str) -> bytes:
    address, port = host.split(":")
    with socket.create_connection((address, int(port)), timeout=10) as sock:
        sock.sendall(f"{request_line}\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("path", [
    "/v2/../../etc/passwd/tags/list",
    "/v2/%2e%2e/%2e%2e/etc/tags/list",
    "/v2/a/%2e%2e/%2e%2e/%2e%2e/tags/list",
    "/v2/a/../b/manifests/latest",
    "/v2/a%2fb/tags/list",
    "/v2/a/blobs/uploads/..%2f..%2f..",
])
def test_traversal_never_escapes(registry_host: str, path: str) -> None:
    response = raw_request(registry_host, f"GET {path} HTTP/1.1")
    status = int(response.split(b" ", 2)[1])
    assert 400 <= status < 500, response[:300]
    assert b"root:" not in response
