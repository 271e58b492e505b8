"""The API root, unknown routes, method checks and health."""

from __future__ import annotations

import httpx

from tests.support.oci import error_codes


def test_api_root_answers_with_version_header(client: httpx.Client) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.json() == {}
    assert client.head("/v2/").status_code == 200
    assert client.get("/v2").status_code == 200


def test_unknown_endpoint_is_a_spec_error(client: httpx.Client) -> None:
    response = client.get("/v3/whatever")
    assert response.status_code == 404
    assert error_codes(response) == ["NOT_FOUND"]


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    response = client.post("/v2/_catalog")
    assert response.status_code == 405
    assert error_codes(response) == ["UNSUPPORTED"]
    assert response.headers["Allow"] == "GET"
    response = client.patch("/v2/some/repo/manifests/latest")
    assert response.status_code == 405


def test_health_endpoint(client: httpx.Client) -> None:
    response = client.get("/debug/health")
    assert response.status_code == 200
    assert response.json() == {}
    assert client.get("/").status_code == 200
