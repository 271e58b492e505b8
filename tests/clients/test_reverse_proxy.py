"""Clients reaching the registry through nginx, as registry:2 deployments usually do.

nginx is set up the way the registry's documentation recommends (``Host`` passed on,
``X-Forwarded-Proto`` set, no body size limit, no request buffering): once over plain HTTP,
and once terminating TLS in front of a plain-HTTP registry, where every ``Location`` the
registry hands out must point back at nginx's HTTPS address.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.clients.conftest import KIND
from tests.support.clients import RegistryReader, Skopeo, run_binary
from tests.support.images import build_index, read_oci_layout, sample_image, write_image_layout
from tests.support.nginx import run_nginx
from tests.support.s3 import S3Bucket
from tests.support.server import RunningRegistry, Storage, run_registry

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with run_registry(tmp_path_factory.mktemp("proxied-registry"), kind=KIND) as running:
        yield running


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_skopeo_through_nginx(
    tmp_path: Path, backend: RunningRegistry, tls: bool, skopeo: Skopeo
) -> None:
    with run_nginx(tmp_path, backend.host, tls) as proxy:
        repo = f"proxied/skopeo-{'https' if tls else 'http'}"
        index = build_index(
            [sample_image("nginx", "amd64", layers=2), sample_image("nginx", "arm64", layers=1)]
        )
        layout = write_image_layout(tmp_path / "src", "v1", index)
        remote = f"docker://{proxy.host}/{repo}"
        if proxy.cert_dir is None:
            tls_push = ["--dest-tls-verify=false"]
            tls_pull = ["--src-tls-verify=false"]
            tls_read = ["--tls-verify=false"]
        else:
            tls_push = ["--dest-cert-dir", str(proxy.cert_dir)]
            tls_pull = ["--src-cert-dir", str(proxy.cert_dir)]
            tls_read = ["--cert-dir", str(proxy.cert_dir)]

        skopeo("copy", "--quiet", "--all", *tls_push, layout.ref("v1"), f"{remote}:v1")
        raw = run_binary(
            [skopeo.binary, "--policy", str(skopeo.policy), "inspect", "--raw", *tls_read,
             f"{remote}:v1"]
        )  # fmt: skip
        assert raw == index.index.data
        skopeo("copy", "--quiet", "--all", *tls_pull, f"{remote}:v1", f"oci:{tmp_path / 'back'}:v1")
        back = read_oci_layout(tmp_path / "back")
        for blob in [index.index, *index.blobs]:
            assert back.read_blob(blob.digest) == blob.data

        # Uploads started through nginx point back at nginx, with nginx's scheme.
        started = httpx.post(f"{proxy.url}/v2/{repo}/blobs/uploads/", verify=False, timeout=30)
        assert started.status_code == 202
        location = started.headers["location"]
        assert location.startswith(f"{proxy.url}/v2/{repo}/blobs/uploads/") or (
            location.startswith(f"/v2/{repo}/blobs/uploads/")
        ), location

    # The registry itself holds it all.
    with RegistryReader(backend.url) as reader:
        assert reader.manifest(repo, "v1").data == index.index.data


def test_skopeo_through_nginx_to_a_registry_on_s3(tmp_path: Path, s3_bucket: S3Bucket,
                                                   skopeo: Skopeo) -> None:
    """nginx terminating TLS in front of a registry on S3 that redirects blob GETs: pushes
    go through nginx, pulls follow the redirect from nginx's answer straight to S3."""
    on_s3 = Storage("s3", s3_bucket, redirect=True)
    with run_registry(tmp_path / "registry", storage=on_s3) as running, \
            run_nginx(tmp_path, running.host, tls=True) as proxy:
        assert proxy.cert_dir is not None
        repo = "proxied/on-s3"
        image = sample_image("nginx", "amd64", layers=3)
        layout = write_image_layout(tmp_path / "src", "v1", image)
        remote = f"docker://{proxy.host}/{repo}"
        skopeo("copy", "--quiet", "--dest-cert-dir", str(proxy.cert_dir), layout.ref("v1"),
               f"{remote}:v1")
        layer = image.blobs[-1]
        answer = httpx.get(f"{proxy.url}/v2/{repo}/blobs/{layer.digest}", verify=False,
                           timeout=30)
        assert answer.status_code == 307  # nginx passes the registry's redirect on
        assert answer.headers["location"].startswith(s3_bucket.endpoint)
        skopeo("copy", "--quiet", "--src-cert-dir", str(proxy.cert_dir), f"{remote}:v1",
               f"oci:{tmp_path / 'back'}:v1")
        back = read_oci_layout(tmp_path / "back")
        for blob in [image.manifest, *image.blobs]:
            assert back.read_blob(blob.digest) == blob.data
