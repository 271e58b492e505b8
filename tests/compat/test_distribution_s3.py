"""dockyard and distribution 2.8.2 on the same S3 bucket and root directory.

distribution's S3 driver (2.8.2) has no `forcepathstyle` key: setting `regionendpoint` is
what makes it address the bucket path-style, which radosgw and MinIO on a bare address need.
dockyard is given the same keys (plus `forcepathstyle` where the endpoint needs it) and its
index in a local directory of its own, so several dockyards and a distribution can serve one
bucket at once.  distribution's S3 driver panics when `AWS_CA_BUNDLE` is set, so it is
started without that variable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.test_distribution_store import Stored, check_serves, fill, snapshot
from tests.support.clients import RegistryReader, Skopeo
from tests.support.images import read_oci_layout, sample_image, sha256_digest
from tests.support.s3 import S3Bucket
from tests.support.server import RunningRegistry, require_tool, run_registry

pytestmark = pytest.mark.clients

MIB = 1024 * 1024
# How long a test waits for a registry to notice what another one did to the bucket.
NOTICE_TIMEOUT = 60.0


def s3_keys(bucket: S3Bucket) -> dict[str, Any]:
    """distribution's `storage.s3` keys for the bucket, rooted at the test's prefix."""
    return {"bucket": bucket.bucket, "region": bucket.region,
            "regionendpoint": bucket.endpoint, "accesskey": bucket.access_key,
            "secretkey": bucket.secret_key, "rootdirectory": f"/{bucket.prefix}",
            "secure": bucket.endpoint.startswith("https:")}


def registry_config(kind: str, bucket: S3Bucket, work: Path,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    s3 = s3_keys(bucket)
    if kind == "dockyard":
        s3 |= {"forcepathstyle": bucket.service.path_style,
               "indexdirectory": str(work / "index")}
    config: dict[str, Any] = {"storage": {"filesystem": None, "s3": s3}}
    if kind == "dockyard":
        config["http"] = {"workers": 2}
    for section, values in (extra or {}).items():
        config[section] = {**config.get(section, {}), **values}
    return config


@contextmanager
def serve_s3(kind: str, bucket: S3Bucket, work: Path,
             extra: dict[str, Any] | None = None) -> Iterator[RunningRegistry]:
    work.mkdir(parents=True, exist_ok=True)
    # distribution's S3 driver panics when AWS_CA_BUNDLE is set.
    env = {"AWS_CA_BUNDLE": None} if kind == "distribution" else None
    with run_registry(work, kind=kind, config=registry_config(kind, bucket, work, extra),
                      env=env) as running:
        yield running


def wait_for(condition: Callable[[], bool], what: str,
             timeout: float = NOTICE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout:.0f}s: {what}")
        time.sleep(0.5)


def catalog_of(registry: RunningRegistry) -> list[str]:
    with RegistryReader(registry.url) as reader:
        return sorted(reader.catalog())


def manifest_status(registry: RunningRegistry, repo: str, reference: str) -> int:
    with RegistryReader(registry.url) as reader:
        return reader.manifest_status(repo, reference)


def tags_of(registry: RunningRegistry, repo: str) -> list[str]:
    with RegistryReader(registry.url) as reader:
        return sorted(reader.tags(repo))


def untagged(registry: RunningRegistry, repo: str) -> Callable[[], bool]:
    return lambda: tags_of(registry, repo) == []


def delete_manifest(registry: RunningRegistry, repo: str, digest: str) -> None:
    response = httpx.delete(f"{registry.url}/v2/{repo}/manifests/{digest}", timeout=60)
    assert response.status_code == 202, f"{registry.kind}: {response.text}"


def tagged_digest(stored: Stored, repo: str, tag: str) -> str:
    return sha256_digest(stored.manifests[(repo, tag)])


def test_each_serves_what_the_other_wrote(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    require_tool("docker-registry")
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    stored = Stored()
    # A dockyard already serving the bucket sees other registries' pushes at its next
    # re-sync of the index with the bucket (storage.index.resyncinterval).
    resync_often = {"storage": {"index": {"resyncinterval": "1s"}}}
    with serve_s3("dockyard", s3_bucket, tmp_path / "early", resync_often) as early, \
            serve_s3("distribution", s3_bucket, tmp_path / "distribution") as distribution:
        # 1. distribution writes; both dockyards serve it all, byte for byte.
        repos = fill(distribution, skopeo, tmp_path / "first", "compat")
        snapshot(distribution, stored, repos)
        doomed = sample_image("compat-doomed", layers=1)
        stored.gone += [(repos[0], doomed.manifest.digest), (repos[0], "doomed")]
        assert stored.tags[repos[0]] == ["latest", "stable", "v1"]
        check_serves(distribution, stored)
        wait_for(lambda: catalog_of(early) == stored.catalog, "the catalog, in a dockyard "
                 "serving before the push")
        check_serves(early, stored)
        with serve_s3("dockyard", s3_bucket, tmp_path / "late", resync_often) as late:
            check_serves(late, stored)
            pulled = tmp_path / "pulled"
            skopeo.copy(f"docker://{late.host}/{repos[1]}:multi", f"oci:{pulled}:multi",
                        "--all")
            layout = read_oci_layout(pulled)
            assert layout.tags["multi"]["digest"] == tagged_digest(stored, repos[1], "multi")
            for (repo, digest), data in stored.blobs.items():
                if repo == repos[1]:
                    assert layout.read_blob(digest) == data

            # 2. dockyard writes; distribution (and the other dockyard) serve it.
            more = fill(late, skopeo, tmp_path / "second", "again")
            snapshot(late, stored, more)
            again_doomed = sample_image("again-doomed", layers=1)
            stored.gone += [(more[0], again_doomed.manifest.digest), (more[0], "doomed"),
                            (more[0], "temporary")]
            check_serves(late, stored)
            check_serves(distribution, stored)
            wait_for(lambda: catalog_of(early) == stored.catalog, "dockyard's pushes, in "
                     "another dockyard")
            check_serves(early, stored)

            # 3. A delete through either is seen by the others.
            index_digest = tagged_digest(stored, more[1], "multi")
            delete_manifest(late, more[1], index_digest)
            v2s2_digest = tagged_digest(stored, repos[2], "v2s2")
            delete_manifest(distribution, repos[2], v2s2_digest)
            gone = [(more[1], index_digest), (more[1], "multi"), (repos[2], v2s2_digest),
                    (repos[2], "v2s2")]
            # Manifests are read from the bucket, so every registry refuses them at once;
            # a dockyard's tag lists come from its index, which sees the delete at its next
            # re-sync with the bucket.
            for registry in (late, distribution, early):
                for repo, reference in gone:
                    status = manifest_status(registry, repo, reference)
                    assert status == 404, f"{registry.kind} {registry.url}: {repo}:{reference}"
                for repo in (more[1], repos[2]):
                    wait_for(untagged(registry, repo),
                             f"the tags of {repo}, in {registry.kind} {registry.url}")
            for key in gone:
                stored.manifests.pop(key)
            stored.tags[more[1]] = stored.tags[repos[2]] = []
            stored.gone += gone
            for registry in (late, distribution, early):
                check_serves(registry, stored)
