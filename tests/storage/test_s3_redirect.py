"""Blob GETs on S3 as distribution answers them: `307 Temporary Redirect` to a presigned URL
of the object (the bytes never pass through the registry), or, with
`storage.redirect.disable: true`, the bytes streamed by the registry. HEAD is answered by the
registry in both modes, and a store on a filesystem never redirects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.storage.test_s3_serve import s3_section
from tests.support.clients import Skopeo
from tests.support.images import read_oci_layout, sample_image, write_image_layout
from tests.support.oci import digest_of, make_image, push_image
from tests.support.s3 import S3Bucket
from tests.support.server import RunningRegistry, require_tool, run_registry

MIB = 1024 * 1024
# How long distribution's presigned URLs stay valid (20 minutes), in seconds.
PRESIGNED_LIFETIME = 20 * 60


@contextmanager
def s3_registry(bucket: S3Bucket, tmp_path: Path, redirect_disabled: bool | None = None,
                **s3: Any) -> Iterator[RunningRegistry]:
    storage: dict[str, Any] = {"filesystem": None,
                               "s3": {**s3_section(bucket, tmp_path), **s3}}
    if redirect_disabled is not None:
        storage["redirect"] = {"disable": redirect_disabled}
    with run_registry(tmp_path, config={"storage": storage, "http": {"workers": 2}}) as running:
        yield running


def assert_head_answered_by_registry(client: httpx.Client, name: str, blob: bytes) -> None:
    head = client.head(f"/v2/{name}/blobs/{digest_of(blob)}")
    assert head.status_code == 200, head.text
    assert head.headers["Content-Length"] == str(len(blob))
    assert head.headers["Docker-Content-Digest"] == digest_of(blob)
    assert head.headers["Content-Type"] == "application/octet-stream"
    assert "Location" not in head.headers


def test_get_redirects_to_a_presigned_url_of_the_object(s3_bucket: S3Bucket,
                                                         tmp_path: Path) -> None:
    image = make_image(layer_count=1, layer_size=3 * MIB + 17)
    layer = image.layers[0]
    path = f"/v2/team/app/blobs/{digest_of(layer)}"
    with s3_registry(s3_bucket, tmp_path) as running, running.client(timeout=120) as client:
        push_image(client, "team/app", "v1", image)

        redirected = client.get(path)
        assert redirected.status_code == 307, redirected.headers
        location = redirected.headers["Location"]
        # The URL is the object's at the S3 endpoint, signed to expire after 20 minutes.
        assert location.startswith(s3_bucket.endpoint + "/")
        query = {key.lower(): values for key, values in parse_qs(urlsplit(location).query).items()}
        assert query["x-amz-expires"] == [str(PRESIGNED_LIFETIME)]
        assert "x-amz-signature" in query

        # Fetched without the registry's help, the URL gives the blob, whole or a range.
        with httpx.Client(timeout=120) as outside:
            whole = outside.get(location)
            assert whole.status_code == 200 and whole.content == layer
            part = outside.get(location, headers={"Range": "bytes=1048576-1048675"})
            assert part.status_code == 206 and part.content == layer[MIB:MIB + 100]

        # A ranged GET is redirected too (as distribution does): the client sends its Range
        # to the presigned URL, and S3 honours it.
        ranged = client.get(path, headers={"Range": "bytes=10-19"})
        assert ranged.status_code == 307
        followed = client.get(path, headers={"Range": "bytes=10-19"}, follow_redirects=True)
        assert followed.status_code == 206 and followed.content == layer[10:20]

        assert_head_answered_by_registry(client, "team/app", layer)

        # What the repository does not have is refused by the registry, not redirected.
        unknown = client.get(f"/v2/team/app/blobs/{digest_of(b'not pushed')}")
        assert unknown.status_code == 404
        assert unknown.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
        other = client.get(f"/v2/team/other/blobs/{digest_of(layer)}")
        assert other.status_code == 404


def another_name_of(endpoint: str) -> str:
    """The endpoint under another host name that reaches the same server, where there is one
    (a loopback address is also `localhost`)."""
    parts = urlsplit(endpoint)
    if parts.hostname in ("127.0.0.1", "::1"):
        return parts._replace(netloc=f"localhost:{parts.port}").geturl()
    return endpoint


def test_redirectendpoint_names_the_host_presigned_urls_point_at(s3_bucket: S3Bucket,
                                                                  tmp_path: Path) -> None:
    image = make_image(layer_count=1, layer_size=70_000)
    layer = image.layers[0]
    redirect_to = another_name_of(s3_bucket.endpoint)
    with s3_registry(s3_bucket, tmp_path, redirectendpoint=redirect_to) as running, \
            running.client(timeout=120) as client:
        push_image(client, "team/app", "v1", image)
        redirected = client.get(f"/v2/team/app/blobs/{digest_of(layer)}")
        assert redirected.status_code == 307
        location = redirected.headers["Location"]
        assert location.startswith(redirect_to + "/"), location
        # Signed for that host, so the object answers there.
        with httpx.Client(timeout=120) as outside:
            fetched = outside.get(location)
        assert fetched.status_code == 200 and fetched.content == layer


def test_sessiontoken_goes_with_every_request(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    if s3_bucket.service.name == "external":
        pytest.skip("a made-up session token is refused by a real S3; radosgw and moto "
                    "accept and ignore it")
    image = make_image(layer_count=1, layer_size=5_000)
    layer = image.layers[0]
    with s3_registry(s3_bucket, tmp_path, sessiontoken="temporary-token-1") as running, \
            running.client(timeout=120) as client:
        push_image(client, "team/app", "v1", image)
        location = client.get(f"/v2/team/app/blobs/{digest_of(layer)}").headers["Location"]
    query = {key.lower(): values for key, values in parse_qs(urlsplit(location).query).items()}
    assert query["x-amz-security-token"] == ["temporary-token-1"]


def test_redirect_disabled_streams_through_the_registry(s3_bucket: S3Bucket,
                                                        tmp_path: Path) -> None:
    image = make_image(layer_count=1, layer_size=2 * MIB + 5)
    layer = image.layers[0]
    path = f"/v2/team/app/blobs/{digest_of(layer)}"
    with s3_registry(s3_bucket, tmp_path, redirect_disabled=True) as running, \
            running.client(timeout=120) as client:
        push_image(client, "team/app", "v1", image)
        whole = client.get(path)
        assert whole.status_code == 200, whole.text
        assert whole.content == layer
        assert whole.headers["Docker-Content-Digest"] == digest_of(layer)
        ranged = client.get(path, headers={"Range": "bytes=100-199"})
        assert ranged.status_code == 206 and ranged.content == layer[100:200]
        assert_head_answered_by_registry(client, "team/app", layer)


@pytest.mark.parametrize("driver", [{}, {"filesystem": None, "inmemory": {}}],
                         ids=["filesystem", "inmemory"])
def test_a_local_store_never_redirects(tmp_path: Path, driver: dict[str, Any]) -> None:
    image = make_image(layer_count=1, layer_size=4096)
    layer = image.layers[0]
    # Redirects are on (not disabled), but a local store has no URL to redirect to.
    config = {"storage": {**driver, "redirect": {"disable": False}}}
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        push_image(client, "team/app", "v1", image)
        whole = client.get(f"/v2/team/app/blobs/{digest_of(layer)}")
        assert whole.status_code == 200 and whole.content == layer
        assert "Location" not in whole.headers
        assert_head_answered_by_registry(client, "team/app", layer)


def test_skopeo_pulls_through_the_redirects(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    image = sample_image("s3-redirect", layers=3)
    source = write_image_layout(tmp_path / "src", "v1", image)
    with s3_registry(s3_bucket, tmp_path / "registry") as running:
        remote = f"docker://{running.host}/team/pulled:v1"
        skopeo.copy(source.ref("v1"), remote)
        pulled_dir = tmp_path / "pulled"
        skopeo.copy(remote, f"oci:{pulled_dir}:v1")
        logs = running.logs()
    pulled = read_oci_layout(pulled_dir)
    for blob in image.blobs:
        assert pulled.read_blob(blob.digest) == blob.data
    # skopeo fetched the layers from S3: the registry answered their GETs with redirects.
    for blob in image.blobs[1:]:
        assert f"GET /v2/team/pulled/blobs/{blob.digest} 307" in logs, logs
