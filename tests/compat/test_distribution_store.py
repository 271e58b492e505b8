"""dockyard and distribution 2.8.2 share one storage root, in both directions.

One registry is filled with skopeo (single images, a multi-platform index, a Docker schema 2
image, a nested repository name, several tags, a deleted manifest), then stopped; the other
registry is started on the same root directory and must serve everything byte for byte, list
the same tags and catalog, and keep the deleted manifest deleted.  It then writes some content
of its own, and the first registry, started again on the root, must serve that too.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.clients import RegistryReader, Skopeo, run
from tests.support.images import (
    MANIFEST_ACCEPT,
    build_index,
    read_oci_layout,
    sample_image,
    sha256_digest,
    write_image_layout,
)
from tests.support.server import RunningRegistry, require_tool, run_registry

pytestmark = pytest.mark.clients

V2 = Path("docker/registry/v2")


@dataclass
class Stored:
    """What a registry was seen to hold, to compare another registry against."""

    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)
    media_types: dict[tuple[str, str], str] = field(default_factory=dict)
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)
    catalog: list[str] = field(default_factory=list)
    gone: list[tuple[str, str]] = field(default_factory=list)


def snapshot(registry: RunningRegistry, stored: Stored, repos: list[str]) -> None:
    """Record every tag, manifest (by tag and by digest) and referenced blob of ``repos``."""
    with RegistryReader(registry.url) as reader:
        for repo in repos:
            stored.tags[repo] = sorted(reader.tags(repo))
            pending = list(stored.tags[repo])
            while pending:
                reference = pending.pop()
                manifest = reader.manifest(repo, reference)
                stored.manifests[(repo, reference)] = manifest.data
                stored.media_types[(repo, reference)] = manifest.media_type
                stored.manifests[(repo, manifest.digest)] = manifest.data
                stored.media_types[(repo, manifest.digest)] = manifest.media_type
                document = manifest.json()
                for child in document.get("manifests", []):
                    if (repo, child["digest"]) not in stored.manifests:
                        pending.append(child["digest"])
                for blob in [document.get("config"), *document.get("layers", [])]:
                    if blob:
                        stored.blobs[(repo, blob["digest"])] = reader.blob(repo, blob["digest"])
        stored.catalog = sorted(reader.catalog())


def check_serves(registry: RunningRegistry, stored: Stored) -> None:
    """``registry`` serves exactly what ``stored`` recorded."""
    with RegistryReader(registry.url) as reader:
        for (repo, reference), data in stored.manifests.items():
            manifest = reader.manifest(repo, reference)
            assert manifest.data == data, f"{registry.kind}: manifest {repo}:{reference}"
            assert manifest.media_type == stored.media_types[(repo, reference)]
            assert manifest.digest_header == manifest.digest
            head = reader.http.head(
                f"/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
            )
            assert head.status_code == 200
            assert int(head.headers["content-length"]) == len(data)
        for (repo, digest), data in stored.blobs.items():
            assert reader.blob(repo, digest) == data, f"{registry.kind}: blob {repo}@{digest}"
            head = reader.http.head(f"/v2/{repo}/blobs/{digest}")
            if registry.kind == "distribution" and head.status_code == 307:
                # distribution on S3 redirects HEAD to the object, as it does GET.
                head = reader.http.head(head.headers["location"])
                assert head.status_code == 200
                assert int(head.headers["content-length"]) == len(data)
                continue
            assert head.status_code == 200
            assert int(head.headers["content-length"]) == len(data)
            assert head.headers["docker-content-digest"] == digest
        for repo, tags in stored.tags.items():
            assert sorted(reader.tags(repo)) == tags, f"{registry.kind}: tags of {repo}"
        assert sorted(reader.catalog()) == stored.catalog
        for repo, reference in stored.gone:
            assert reader.manifest_status(repo, reference) == 404, f"{repo}:{reference}"


def check_layout(root: Path, stored: Stored) -> None:
    """The files distribution's filesystem driver reads are where it expects them."""
    v2 = root / V2
    for (repo, reference), data in stored.manifests.items():
        manifests = v2 / "repositories" / repo / "_manifests"
        if reference.startswith("sha256:"):
            hex_digest = reference.removeprefix("sha256:")
            link = manifests / "revisions" / "sha256" / hex_digest / "link"
            assert link.read_text() == reference, link
            blob = v2 / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data"
            assert blob.read_bytes() == data, blob
        else:
            current = (manifests / "tags" / reference / "current" / "link").read_text()
            hex_digest = current.removeprefix("sha256:")
            index = manifests / "tags" / reference / "index" / "sha256" / hex_digest / "link"
            assert index.read_text() == current
    for repo, digest in stored.blobs:
        hex_digest = digest.removeprefix("sha256:")
        link = v2 / "repositories" / repo / "_layers" / "sha256" / hex_digest / "link"
        assert link.read_text() == digest, link
        assert (v2 / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data").is_file()


def registry_digest(stored: Stored, repo: str, tag: str) -> str:
    return sha256_digest(stored.manifests[(repo, tag)])


def serve(tmp: Path, kind: str, root: Path) -> AbstractContextManager[RunningRegistry]:
    tmp.mkdir(parents=True, exist_ok=True)
    return run_registry(tmp, kind=kind, root=root)


def fill(registry: RunningRegistry, skopeo: Skopeo, work: Path, prefix: str) -> list[str]:
    """Push a varied set of content with skopeo; return the repositories written."""
    single = f"{prefix}/single"
    multi = f"{prefix}/multi"
    docker = f"{prefix}/docker"
    nested = f"{prefix}/deep/nested/name-with.dots_and-dashes"
    host = registry.host
    image = sample_image(f"{prefix}-single", layers=3)
    doomed = sample_image(f"{prefix}-doomed", layers=1)
    index = build_index(
        [sample_image(f"{prefix}-multi", "amd64"), sample_image(f"{prefix}-multi", "arm64")]
    )
    layout = write_image_layout(work / "src", "single", image)
    write_image_layout(work / "src", "doomed", doomed)
    write_image_layout(work / "src", "multi", index)

    for tag in ("v1", "latest", "stable"):
        skopeo.copy(layout.ref("single"), f"docker://{host}/{single}:{tag}")
    skopeo.copy(layout.ref("doomed"), f"docker://{host}/{single}:doomed")
    skopeo("delete", "--tls-verify=false", f"docker://{host}/{single}:doomed")
    skopeo.copy(layout.ref("multi"), f"docker://{host}/{multi}:multi", "--all")
    skopeo.copy(layout.ref("single"), f"docker://{host}/{docker}:v2s2", "--format", "v2s2")
    # Same registry, another repository: blobs are mounted from the source repository.
    skopeo.copy(f"docker://{host}/{single}:v1", f"docker://{host}/{nested}:copied")
    if registry.kind == "dockyard":
        # dockyard deletes single tags (OCI 1.1); distribution 2.8 cannot.
        skopeo.copy(layout.ref("single"), f"docker://{host}/{single}:temporary")
        deleted = httpx.delete(f"{registry.url}/v2/{single}/manifests/temporary", timeout=30)
        assert deleted.status_code == 202, deleted.text
    return [single, multi, docker, nested]


@pytest.mark.parametrize(
    ("first", "second"),
    [("distribution", "dockyard"), ("dockyard", "distribution")],
    ids=["distribution-then-dockyard", "dockyard-then-distribution"],
)
def test_shared_root(tmp_path: Path, first: str, second: str) -> None:
    require_tool("docker-registry")
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    root = tmp_path / "root"
    stored = Stored()

    # 1. The first registry writes.
    with serve(tmp_path / "one", first, root) as registry:
        repos = fill(registry, skopeo, tmp_path / "first", "compat")
        snapshot(registry, stored, repos)
        doomed = sample_image("compat-doomed", layers=1)
        stored.gone.append((repos[0], doomed.manifest.digest))
        stored.gone.append((repos[0], "doomed"))
        stored.gone.append((repos[0], "temporary"))
        check_serves(registry, stored)
    assert stored.tags[repos[0]] == ["latest", "stable", "v1"]
    check_layout(root, stored)

    # 2. The second registry reads it all back, then writes content of its own.
    with serve(tmp_path / "two", second, root) as registry:
        check_serves(registry, stored)
        skopeo.copy(
            f"docker://{registry.host}/{repos[1]}:multi",
            f"oci:{tmp_path / 'pulled'}:multi",
            "--all",
        )
        pulled = read_oci_layout(tmp_path / "pulled")
        assert pulled.tags["multi"]["digest"] == registry_digest(stored, repos[1], "multi")
        expected = {ref for (repo, ref) in stored.manifests if repo == repos[1]} - {"multi"}
        expected |= {digest for (repo, digest) in stored.blobs if repo == repos[1]}
        assert pulled.blob_digests() == expected

        more = fill(registry, skopeo, tmp_path / "second", "again")
        snapshot(registry, stored, more)
        # A new tag on content the first registry wrote.
        skopeo.copy(
            f"docker://{registry.host}/{repos[0]}:v1", f"docker://{registry.host}/{repos[0]}:v2"
        )
        snapshot(registry, stored, [repos[0]])
        stored.gone.append((more[0], "doomed"))
        stored.gone.append((more[0], "temporary"))
        check_serves(registry, stored)
    assert stored.tags[repos[0]] == ["latest", "stable", "v1", "v2"]
    check_layout(root, stored)

    # 3. The first registry serves what the second one wrote.
    with serve(tmp_path / "three", first, root) as registry:
        check_serves(registry, stored)


def test_distribution_garbage_collect_on_dockyard_store(tmp_path: Path) -> None:
    """distribution's garbage collector walks a store dockyard wrote and keeps what is used."""
    binary = require_tool("docker-registry")
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    root = tmp_path / "root"
    stored = Stored()
    with serve(tmp_path / "dockyard", "dockyard", root) as registry:
        repos = fill(registry, skopeo, tmp_path / "src", "gc")
        snapshot(registry, stored, repos)
        config_path = registry.config_path

    result = run([binary, "garbage-collect", "--delete-untagged=false", str(config_path)])
    # The manifest deleted through the API and its unshared blobs are swept.
    doomed = sample_image("gc-doomed", layers=1)
    for blob in [doomed.manifest, *doomed.blobs]:
        hex_digest = blob.digest.removeprefix("sha256:")
        data = root / V2 / "blobs" / "sha256" / hex_digest[:2] / hex_digest / "data"
        assert not data.exists(), f"{blob.digest} survived garbage collection\n{result.stdout}"

    with serve(tmp_path / "distribution", "distribution", root) as registry:
        check_serves(registry, stored)
    with serve(tmp_path / "dockyard-again", "dockyard", root) as registry:
        check_serves(registry, stored)
