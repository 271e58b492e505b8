"""`dockyard serve` on an S3 bucket: pushes (monolithic and chunked across workers) and
pulls through HTTP, the objects at distribution's keys, the catalog rebuilt from the bucket
at the next start, and a bucket that cannot be used stopping the start."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.config.test_config_keys import serve
from tests.support.oci import digest_of, make_image, push_image
from tests.support.s3 import S3Bucket, botocore_client
from tests.support.server import RunningRegistry, free_port, run_registry

MIB = 1024 * 1024


def s3_section(bucket: S3Bucket, tmp_path: Path) -> dict[str, Any]:
    return {"bucket": bucket.bucket, "region": bucket.region,
            "regionendpoint": bucket.endpoint, "accesskey": bucket.access_key,
            "secretkey": bucket.secret_key, "forcepathstyle": bucket.service.path_style,
            "secure": bucket.endpoint.startswith("https:"),
            "rootdirectory": f"/{bucket.prefix}registry", "chunksize": 5 * MIB,
            "indexdirectory": str(tmp_path / "index")}


@contextmanager
def s3_registry(bucket: S3Bucket, tmp_path: Path) -> Iterator[RunningRegistry]:
    config = {"storage": {"s3": s3_section(bucket, tmp_path)}, "http": {"workers": 2}}
    # REGISTRY_STORAGE picks the driver, dropping the test default's filesystem section.
    with run_registry(tmp_path, config=config, env={"REGISTRY_STORAGE": "s3"}) as running:
        yield running


def test_push_and_pull_through_http(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    image = make_image(layer_count=1, layer_size=100_000)
    big = os.urandom(11 * MIB + 123)
    # Blob GETs are redirected to S3 (tests/storage/test_s3_redirect.py): followed here.
    with s3_registry(s3_bucket, tmp_path) as running, \
            running.client(timeout=120, follow_redirects=True) as client:
        push_image(client, "team/app", "v1", image)
        # A chunked upload: chunks go to either worker, each continuing what the last wrote.
        started = client.post("/v2/team/app/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        cuts = [0, 3 * MIB, 9 * MIB, 10 * MIB, len(big)]
        for start, end in itertools.pairwise(cuts):
            response = client.patch(location, content=big[start:end], headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end - 1}"})
            assert response.status_code == 202, response.text
            assert response.headers["Range"] == f"0-{end - 1}"
            location = response.headers["Location"]
        separator = "&" if "?" in location else "?"
        committed = client.put(f"{location}{separator}digest={digest_of(big)}")
        assert committed.status_code == 201, committed.text

        pulled = client.get("/v2/team/app/manifests/v1",
                            headers={"Accept": image.media_type})
        assert pulled.status_code == 200 and pulled.content == image.manifest
        layer = client.get(f"/v2/team/app/blobs/{digest_of(image.layers[0])}")
        assert layer.content == image.layers[0]
        whole = client.get(f"/v2/team/app/blobs/{digest_of(big)}")
        assert hashlib.sha256(whole.content).hexdigest() == digest_of(big)[7:]
        ranged = client.get(f"/v2/team/app/blobs/{digest_of(big)}",
                            headers={"Range": "bytes=5000000-5000099"})
        assert ranged.status_code == 206 and ranged.content == big[5_000_000:5_000_100]
        assert client.get("/v2/_catalog").json() == {"repositories": ["team/app"]}

    client_s3 = botocore_client(s3_bucket.service)
    root = f"{s3_bucket.prefix}registry/docker/registry/v2"
    keys = {item["Key"] for page in client_s3.get_paginator("list_objects_v2").paginate(
        Bucket=s3_bucket.bucket, Prefix=s3_bucket.prefix) for item in page.get("Contents", [])}
    hexdigest = digest_of(big)[7:]
    assert f"{root}/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data" in keys
    assert f"{root}/repositories/team/app/_manifests/tags/v1/current/link" in keys
    assert f"{root}/repositories/team/app/_layers/sha256/{hexdigest}/link" in keys
    assert not [key for key in keys if "/_uploads/" in key]  # the upload is gone
    uploads = client_s3.list_multipart_uploads(Bucket=s3_bucket.bucket,
                                               Prefix=s3_bucket.prefix)
    assert uploads.get("Uploads", []) == []

    # A new index directory: the next start reads the catalog back from the bucket.
    fresh = tmp_path / "again"
    fresh.mkdir()
    with s3_registry(s3_bucket, fresh) as running, running.client() as client:
        assert client.get("/v2/_catalog").json() == {"repositories": ["team/app"]}
        assert client.get("/v2/team/app/tags/list").json()["tags"] == ["v1"]


def test_an_unusable_bucket_stops_the_start(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    section = {**s3_section(s3_bucket, tmp_path), "bucket": "no-such-bucket-here"}
    result = serve(tmp_path, {"version": 0.1, "storage": {"s3": section},
                              "http": {"addr": f"127.0.0.1:{free_port()}"}})
    assert result.returncode != 0
    assert "storage.s3: bucket no-such-bucket-here is not usable" in result.stderr
    assert "Traceback" not in result.stderr
