"""Repository names: the spec's grammar, multi-level names and limits (traversal and odd
encodings: test_hostile_input.py)."""

from __future__ import annotations

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
