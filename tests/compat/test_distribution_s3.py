"""dockyard and distribution 2.8.2 on the same S3 bucket and root directory.

distribution's S3 driver (2.8.2) has no `forcepathstyle` key: setting `regionendpoint` is
what makes it address the bucket path-style, which radosgw and MinIO on a bare address need.
dockyard is given the same keys (plus `forcepathstyle` where the endpoint needs it) and its
index in a local directory of its own, so several dockyards and a distribution can serve one
bucket at once.  distribution's S3 driver panics when `AWS_CA_BUNDLE` is set, so it is
started without that variable.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.compat.test_distribution_store import Stored, check_serves, fill, snapshot
from tests.gc.test_gc_in_server import wait_finished
from tests.support.clients import CommandFailed, RegistryReader, Skopeo, run
from tests.support.daemons import run_dockerd
from tests.support.images import (
    MANIFEST_ACCEPT,
    large_image,
    read_oci_layout,
    sample_image,
    sha256_digest,
    write_docker_archive,
    write_image_layout,
)
from tests.support.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Image,
    descriptor,
    digest_of,
    make_image,
    make_index,
    push_blob,
    push_image,
)
from tests.support.s3 import S3Bucket, botocore_client, on_primary_s3
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


def check_pulls(registry: RunningRegistry, stored: Stored) -> None:
    """`registry` serves every manifest (by tag and by digest), blob and tag list recorded."""
    with RegistryReader(registry.url) as reader:
        for (repo, reference), data in stored.manifests.items():
            assert reader.manifest(repo, reference).data == data, f"{repo}:{reference}"
        for (repo, digest), data in stored.blobs.items():
            assert reader.blob(repo, digest) == data, f"{repo}@{digest}"
        for repo, tags in stored.tags.items():
            assert sorted(reader.tags(repo)) == tags, f"tags of {repo}"


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


@on_primary_s3
def test_each_serves_what_the_other_wrote(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    require_tool("docker-registry")
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    stored = Stored()
    # A dockyard already serving the bucket sees other registries' pushes at its next
    # re-sync of the index with the bucket (storage.index.resyncinterval).
    resync_often = {"storage": {"index": {"resyncinterval": "1s"}}}
    # One that never re-syncs while serving still serves them by tag and by digest at once:
    # manifests, blobs and the tag lists of repositories new to it are read from the bucket.
    never = {"storage": {"index": {"resyncinterval": "0"}}}
    with serve_s3("dockyard", s3_bucket, tmp_path / "early", resync_often) as early, \
            serve_s3("dockyard", s3_bucket, tmp_path / "unsynced", never) as unsynced, \
            serve_s3("distribution", s3_bucket, tmp_path / "distribution") as distribution:
        # A dockyard builds its index in the background once it serves: what another
        # registry writes meanwhile is picked up at the next re-sync, which `unsynced`
        # never makes, so distribution writes once the builds are done.
        wait_for(lambda: all("index: built" in dockyard.logs()
                             for dockyard in (early, unsynced)), "the indexes built")
        # 1. distribution writes; both dockyards serve it all, byte for byte.
        repos = fill(distribution, skopeo, tmp_path / "first", "compat")
        snapshot(distribution, stored, repos)
        doomed = sample_image("compat-doomed", layers=1)
        stored.gone += [(repos[0], doomed.manifest.digest), (repos[0], "doomed")]
        assert stored.tags[repos[0]] == ["latest", "stable", "v1"]
        check_serves(distribution, stored)
        check_pulls(unsynced, stored)
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


def image_over(layers: list[bytes]) -> Image:
    """An OCI image (config of its own) over the given layers, to share layers at will."""
    config = make_image(layer_count=0).config
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, config),
                "layers": [descriptor(OCI_LAYER, layer) for layer in layers]}
    return Image(config, layers, json.dumps(document).encode(), OCI_MANIFEST)


def signature_of(subject: Image) -> Image:
    """An OCI 1.1 referrer of `subject` (a signature-like artifact)."""
    payload = os.urandom(512)
    empty = b"{}"
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.signature",
                "config": descriptor("application/vnd.oci.empty.v1+json", empty),
                "layers": [descriptor("application/vnd.example.signature.v1", payload)],
                "subject": descriptor(subject.media_type, subject.manifest)}
    return Image(empty, [payload], json.dumps(document).encode(), OCI_MANIFEST)


def object_exists(bucket: S3Bucket, digest: str) -> bool:
    hex_digest = digest.removeprefix("sha256:")
    key = f"{bucket.prefix}docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"
    listed = botocore_client(bucket.service).list_objects_v2(Bucket=bucket.bucket, Prefix=key)
    return any(item["Key"] == key for item in listed.get("Contents", []))


def distribution_gc(binary: str, bucket: S3Bucket, work: Path, *flags: str) -> str:
    """Run distribution's `garbage-collect` on the bucket; its output."""
    config = work / "distribution-gc.yml"
    config.write_text(yaml.safe_dump({"version": 0.1, "storage": {"s3": s3_keys(bucket)}}))
    # distribution's S3 driver panics when AWS_CA_BUNDLE is set.
    env = {name: value for name, value in os.environ.items() if name != "AWS_CA_BUNDLE"}
    command = [binary, "garbage-collect", *flags, str(config)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,
                            stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise CommandFailed(command, result)
    return result.stdout


def check_referrers(registry: RunningRegistry, repo: str, subject: str,
                    expected: list[str]) -> None:
    """dockyard lists exactly `expected` as referrers of `subject`, each one fetchable."""
    with registry.client() as client:
        listed = client.get(f"/v2/{repo}/referrers/{subject}")
        assert listed.status_code == 200, listed.text
        digests = [entry["digest"] for entry in listed.json()["manifests"]]
        assert sorted(digests) == sorted(expected), f"referrers of {subject}"
        for digest in digests:
            fetched = client.get(f"/v2/{repo}/manifests/{digest}",
                                 headers={"Accept": MANIFEST_ACCEPT})
            assert fetched.status_code == 200, f"listed referrer {digest}: {fetched.text}"


@on_primary_s3
def test_distribution_garbage_collect_keeps_what_dockyard_wrote(
        s3_bucket: S3Bucket, tmp_path: Path) -> None:
    binary = require_tool("docker-registry")
    base = make_image(layer_count=3)
    other = image_over([base.layers[0], os.urandom(3000)])  # shares a layer with base
    untagged = image_over([base.layers[1], os.urandom(2500)])
    retagged = make_image(layer_count=1)  # its only tag deleted through dockyard
    deleted = make_image(layer_count=1)  # deleted by digest through dockyard
    children = [make_image(layer_count=1), image_over([base.layers[2]])]
    index = make_index(children)
    signature = signature_of(base)
    cosign_tag = "sha256-" + base.digest.removeprefix("sha256:") + ".sig"
    tagged_signature = signature_of(base)
    stray = os.urandom(4000)  # uploaded, used by no manifest
    stored = Stored()
    with serve_s3("dockyard", s3_bucket, tmp_path / "dockyard") as dockyard, \
            dockyard.client() as client:
        push_image(client, "shared/a", "v1", base)
        push_image(client, "shared/b", "v1", base)  # the same blobs, another repository
        push_image(client, "shared/b", "v2", other)
        push_image(client, "shared/a", untagged.digest, untagged)
        push_image(client, "shared/a", "old", retagged)
        assert client.delete("/v2/shared/a/manifests/old").status_code == 202
        push_image(client, "shared/a", "doomed", deleted)
        assert client.delete(f"/v2/shared/a/manifests/{deleted.digest}").status_code == 202
        push_blob(client, "shared/a", stray)
        for child in children:
            push_image(client, "shared/multi", child.digest, child)
        pushed = client.put("/v2/shared/multi/manifests/v1", content=index,
                            headers={"Content-Type": OCI_INDEX})
        assert pushed.status_code == 201, pushed.text
        referrer = push_image(client, "shared/a", signature.digest, signature)
        assert referrer.headers["OCI-Subject"] == base.digest
        # A signature as cosign stores it before OCI 1.1: a tag named after the subject.
        push_image(client, "shared/a", cosign_tag, tagged_signature)
        snapshot(dockyard, stored, ["shared/a", "shared/b", "shared/multi"])
    assert stored.tags["shared/a"] == sorted([cosign_tag, "v1"])
    untagged_digests = (untagged.digest, retagged.digest, signature.digest)
    stored.gone += [("shared/a", "old"), ("shared/a", "doomed"), ("shared/a", deleted.digest)]

    # 1. Without -m: what no manifest uses goes; every manifest stays. (distribution's
    # collector runs on a store nothing writes to, as its documentation asks.)
    output = distribution_gc(binary, s3_bucket, tmp_path)
    for gone in (stray, deleted.manifest, deleted.layers[0], deleted.config):
        assert not object_exists(s3_bucket, digest_of(gone)), f"kept\n{output}"
    with serve_s3("distribution", s3_bucket, tmp_path / "distribution") as distribution:
        check_serves(distribution, stored)
        for digest in untagged_digests:
            assert manifest_status(distribution, "shared/a", digest) == 200
    with serve_s3("dockyard", s3_bucket, tmp_path / "dockyard") as dockyard:
        check_serves(dockyard, stored)
        for digest in untagged_digests:
            assert manifest_status(dockyard, "shared/a", digest) == 200
        check_referrers(dockyard, "shared/a", base.digest,
                        [signature.digest, tagged_signature.digest])
        # distribution 2.8's -m deletes the children of a tagged index (it marks their
        # manifests but neither keeps their revisions nor their layers), whatever wrote the
        # store: the index goes before that pass. And on S3 it fails on a repository left
        # with no tag ("failed to retrieve tags unknown repository", on its own stores
        # too): one child keeps a tag of its own.
        with dockyard.client() as client:
            push_image(client, "shared/multi", "amd64", children[0])
        index_digest = digest_of(index)
        delete_manifest(dockyard, "shared/multi", index_digest)
        snapshot(dockyard, stored, ["shared/multi"])
    for key in [("shared/multi", "v1"), ("shared/multi", index_digest),
                ("shared/multi", children[1].digest)]:
        stored.manifests.pop(key)
    assert stored.tags["shared/multi"] == ["amd64"]
    del stored.blobs[("shared/multi", digest_of(children[1].config))]  # used by nothing else
    stored.gone += [("shared/multi", "v1"), ("shared/multi", index_digest),
                    ("shared/multi", children[1].digest)]

    # 2. With -m: untagged manifests go, with what only they used; every tag still pulls.
    output = distribution_gc(binary, s3_bucket, tmp_path, "--delete-untagged")
    for gone in (untagged.manifest, untagged.layers[1], retagged.manifest,
                 retagged.layers[0], signature.manifest, index, children[1].config):
        assert not object_exists(s3_bucket, digest_of(gone)), f"kept\n{output}"
    for kept in (base.layers[1], base.layers[2], other.layers[1], children[0].layers[0]):
        assert object_exists(s3_bucket, digest_of(kept)), f"deleted\n{output}"
    stored.gone += [("shared/a", digest) for digest in untagged_digests]
    with serve_s3("distribution", s3_bucket, tmp_path / "distribution") as distribution:
        check_serves(distribution, stored)
    # The dockyard that wrote the bucket, with its index from before the collection, and one
    # with an index of its own made from the bucket.
    for work in (tmp_path / "dockyard", tmp_path / "fresh"):
        with serve_s3("dockyard", s3_bucket, work) as dockyard:
            check_serves(dockyard, stored)
            # The untagged referrer was collected by distribution; the tagged one stays.
            check_referrers(dockyard, "shared/a", base.digest, [tagged_signature.digest])


@on_primary_s3
def test_dockyard_garbage_collect_keeps_what_distribution_wrote(
        s3_bucket: S3Bucket, tmp_path: Path) -> None:
    require_tool("docker-registry")
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    config = tmp_path / "dockyard-gc.yml"
    s3 = registry_config("dockyard", s3_bucket, tmp_path / "gc")["storage"]["s3"]
    config.write_text(yaml.safe_dump({"version": 0.1, "storage": {"s3": s3}}))
    collect = [sys.executable, "-m", "dockyard", "garbage-collect", "--delete-untagged",
               "--grace-period", "0", str(config)]
    dry_run = subprocess.run([*collect[:4], "--dry-run", *collect[4:]], capture_output=True,
                             text=True, timeout=300, check=False)
    assert dry_run.returncode == 0, dry_run.stderr

    stored = Stored()
    with serve_s3("distribution", s3_bucket, tmp_path / "distribution") as distribution:
        repos = fill(distribution, skopeo, tmp_path / "src", "gc")
        snapshot(distribution, stored, repos)
    doomed = sample_image("gc-doomed", layers=1)
    stored.gone += [(repos[0], doomed.manifest.digest), (repos[0], "doomed")]

    result = subprocess.run(collect, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    # The manifest deleted through distribution, and what only it used, are gone.
    for blob in [doomed.manifest, *doomed.blobs]:
        assert not object_exists(s3_bucket, blob.digest), f"{blob.digest}\n{result.stdout}"
    with serve_s3("distribution", s3_bucket, tmp_path / "distribution") as distribution:
        check_serves(distribution, stored)
    with serve_s3("dockyard", s3_bucket, tmp_path / "dockyard") as dockyard:
        check_serves(dockyard, stored)


@pytest.fixture(scope="module")
def docker_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The docker CLI and the environment that points it at a private dockerd."""
    binary = require_tool("docker")
    dockerd = require_tool("dockerd")
    with run_dockerd(tmp_path_factory.mktemp("dockerd"), dockerd, binary) as daemon:
        yield binary, daemon.env


@pytest.mark.parametrize("redirect_disabled", [False, True],
                         ids=["redirect", "redirect-disabled"])
@on_primary_s3
def test_docker_and_skopeo_push_and_pull(s3_bucket: S3Bucket, tmp_path: Path,
                                         docker_env: tuple[str, dict[str, str]],
                                         redirect_disabled: bool) -> None:
    binary, env = docker_env
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    # Content of this test's own, so that dockerd (shared by the module) has none of it.
    image = large_image(f"s3-docker-{s3_bucket.prefix}{redirect_disabled}", 6 * MIB)
    local = f"dockyard-test/s3-docker-{str(redirect_disabled).lower()}:v1"
    archive = write_docker_archive(tmp_path / "image.tar", image, [local])
    run([binary, "load", "--input", str(archive)], env=env)
    extra = {"storage": {"redirect": {"disable": redirect_disabled}}}
    with serve_s3("dockyard", s3_bucket, tmp_path / "dockyard", extra) as dockyard:
        reference = f"{dockyard.host}/team/docker:v1"
        run([binary, "tag", local, reference], env=env)
        pushed = run([binary, "push", reference], env=env).stdout
        found = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
        assert found, pushed
        run([binary, "rmi", reference, local], env=env)
        run([binary, "pull", f"{dockyard.host}/team/docker@{found.group(1)}"], env=env)
        image_id = run([binary, "image", "inspect", "--format", "{{.Id}}",
                        f"{dockyard.host}/team/docker@{found.group(1)}"], env=env).stdout
        assert image_id.strip() == image.config.digest
        run([binary, "rmi", f"{dockyard.host}/team/docker@{found.group(1)}"], env=env)

        # skopeo the same way: an OCI image in, and back out byte for byte.
        oci = sample_image(f"s3-skopeo-{redirect_disabled}", layers=3)
        source = write_image_layout(tmp_path / "src", "v1", oci)
        skopeo.copy(source.ref("v1"), f"docker://{dockyard.host}/team/skopeo:v1")
        skopeo.copy(f"docker://{dockyard.host}/team/skopeo:v1", f"oci:{tmp_path / 'out'}:v1")
        logs = dockyard.logs()
    pulled = read_oci_layout(tmp_path / "out")
    assert pulled.tags["v1"]["digest"] == oci.manifest.digest
    for blob in oci.blobs:
        assert pulled.read_blob(blob.digest) == blob.data
    # Layers came from S3 (a 307 to the presigned URL) or through dockyard (a 200).
    status = 200 if redirect_disabled else 307
    for layer in oci.layers:
        assert f"GET /v2/team/skopeo/blobs/{layer.compressed.digest} {status}" in logs, logs
    docker_gets = re.findall(r"GET /v2/team/docker/blobs/sha256:[0-9a-f]{64} (\d{3})", logs)
    assert docker_gets and set(docker_gets) == {str(status)}, logs


def push_in_chunks(registry: RunningRegistry, repo: str, data: bytes,
                   cuts: list[int]) -> str:
    """Push `data` in PATCHes ending at each of `cuts`, then PUT; the blob's digest."""
    digest = digest_of(data)
    with registry.client(timeout=300) as client:
        started = client.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        for start, end in itertools.pairwise([0, *cuts, len(data)]):
            response = client.patch(location, content=data[start:end], headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end - 1}"})
            assert response.status_code == 202, f"{registry.kind}: {response.text}"
            location = response.headers["Location"]
        separator = "&" if "?" in location else "?"
        committed = client.put(f"{location}{separator}digest={digest}")
        assert committed.status_code == 201, f"{registry.kind}: {committed.text}"
    return digest


@pytest.mark.parametrize(("writer", "reader"), [("distribution", "dockyard"),
                                                ("dockyard", "distribution")])
@on_primary_s3
def test_large_blobs_in_parts(s3_bucket: S3Bucket, tmp_path: Path, writer: str,
                              reader: str) -> None:
    """Blobs larger than a part (10 MiB) and than a single server-side copy (32 MiB), pushed
    in chunks through one registry, read whole and in ranges through the other."""
    big = os.urandom(40 * MIB + 123)
    image = image_over([big])
    with serve_s3(writer, s3_bucket, tmp_path / writer) as first, \
            serve_s3(reader, s3_bucket, tmp_path / reader) as second:
        push_in_chunks(first, "team/big", big, [7 * MIB, 27 * MIB])
        with first.client() as client:
            push_blob(client, "team/big", image.config)
            pushed = client.put("/v2/team/big/manifests/v1", content=image.manifest,
                                headers={"Content-Type": OCI_MANIFEST})
            assert pushed.status_code == 201, pushed.text
        with second.client(timeout=300, follow_redirects=True) as client:
            manifest = client.get("/v2/team/big/manifests/v1",
                                  headers={"Accept": OCI_MANIFEST})
            assert manifest.status_code == 200 and manifest.content == image.manifest
            whole = client.get(f"/v2/team/big/blobs/{digest_of(big)}")
            assert whole.status_code == 200
            assert digest_of(whole.content) == digest_of(big)
            start = 10 * MIB - 50
            ranged = client.get(f"/v2/team/big/blobs/{digest_of(big)}",
                                headers={"Range": f"bytes={start}-{start + 99}"})
            assert ranged.status_code == 206 and ranged.content == big[start:start + 100]


@on_primary_s3
def test_collection_in_a_running_dockyard_keeps_what_distribution_pushed(
        s3_bucket: S3Bucket, tmp_path: Path) -> None:
    """A dockyard serving the bucket while distribution pushes to it has not indexed those
    pushes; its collection (the admin endpoint, untagged manifests too, no grace period)
    must read them from the bucket first and keep them."""
    require_tool("docker-registry")
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    stored = Stored()
    admin = {"http": {"admin": {"enabled": True}}}
    with serve_s3("dockyard", s3_bucket, tmp_path / "dockyard", admin) as dockyard, \
            serve_s3("distribution", s3_bucket, tmp_path / "distribution") as distribution:
        repos = fill(distribution, skopeo, tmp_path / "src", "online")
        snapshot(distribution, stored, repos)
        doomed = sample_image("online-doomed", layers=1)
        stored.gone += [(repos[0], doomed.manifest.digest), (repos[0], "doomed")]
        with dockyard.client() as client:
            started = client.post("/admin/gc", params={"deleteuntagged": "true",
                                                       "graceperiod": "0s"})
            assert started.status_code == 202, started.text
            status = wait_finished(client, timeout=120)
        assert status["state"] == "finished", status
        # What distribution deleted, and only that, is collected.
        deleted = set(status["report"]["blobs_deleted"])
        assert {blob.digest for blob in [doomed.manifest, *doomed.blobs]} <= deleted
        assert not deleted & {digest for (_, digest) in stored.blobs}, status["report"]
        check_serves(distribution, stored)
        check_serves(dockyard, stored)
