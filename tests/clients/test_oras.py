"""ORAS (the ``oras`` Python library) against the registry: artifacts and the referrers API.

oras pushes and pulls the artifacts and their blobs; one referrer whose manifest carries an
``artifactType`` (which this oras version cannot write) is built by hand and PUT over HTTP,
its blobs still uploaded with oras.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import oras.client
import oras.oci
import pytest

from tests.clients.conftest import KIND
from tests.support.clients import RegistryReader
from tests.support.images import OCI_INDEX, OCI_MANIFEST, Blob
from tests.support.server import RunningRegistry

pytestmark = pytest.mark.clients

FILE_TYPE = "application/vnd.dockyard.test.file.v1"
CONFIG_TYPE = "application/vnd.dockyard.test.config.v1+json"
SIGNATURE_CONFIG_TYPE = "application/vnd.dockyard.test.signature.v1+json"
SBOM_TYPE = "application/vnd.dockyard.test.sbom.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

needs_referrers = pytest.mark.skipif(
    KIND == "distribution", reason="distribution 2.8.2 predates the OCI 1.1 referrers API"
)


@pytest.fixture
def orasclient(target: RunningRegistry) -> oras.client.OrasClient:
    return oras.client.OrasClient(hostname=target.host, insecure=True)


def push_files(
    client: oras.client.OrasClient,
    reference: str,
    files: dict[Path, str],
    config: Path,
    config_type: str,
    subject: oras.oci.Subject | None = None,
) -> tuple[str, int]:
    """Push files (path -> media type) with oras; return the manifest digest and size."""
    response = client.push(
        target=reference,
        files=[f"{path}:{media_type}" for path, media_type in files.items()],
        manifest_config=f"{config}:{config_type}",
        disable_path_validation=True,
        subject=subject,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    digest = response.headers["docker-content-digest"]
    return digest, len(response.request.body or b"")


def referrers(target: RunningRegistry, repo: str, digest: str, **params: str) -> httpx.Response:
    response = httpx.get(f"{target.url}/v2/{repo}/referrers/{digest}", params=params, timeout=30)
    assert response.status_code == 200, f"{response.status_code} {response.text}"
    assert response.headers["content-type"].split(";")[0] == OCI_INDEX
    return response


def test_push_and_pull_artifact(
    tmp_path: Path,
    orasclient: oras.client.OrasClient,
    target: RunningRegistry,
    reader: RegistryReader,
    repo: str,
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    readme = source / "README.md"
    readme.write_text("# an artifact pushed by dockyard's oras test\n")
    payload = source / "payload.bin"
    payload.write_bytes(hashlib.sha512(b"payload").digest() * 2048)
    empty = source / "empty.txt"
    empty.write_bytes(b"")
    config = source / "config.json"
    config.write_text(json.dumps({"kind": "test-artifact"}))
    reference = f"{target.host}/{repo}:v1"

    digest, size = push_files(
        orasclient,
        reference,
        {readme: "text/markdown", payload: FILE_TYPE, empty: FILE_TYPE},
        config,
        CONFIG_TYPE,
    )

    served = reader.manifest(repo, "v1")
    assert served.digest == digest
    assert len(served.data) == size
    document = served.json()
    assert document["mediaType"] == OCI_MANIFEST
    assert document["config"]["mediaType"] == CONFIG_TYPE
    assert reader.blob(repo, document["config"]["digest"]) == config.read_bytes()
    titles = {
        layer["annotations"]["org.opencontainers.image.title"]: layer
        for layer in document["layers"]
    }
    assert titles["payload.bin"]["mediaType"] == FILE_TYPE
    assert titles["payload.bin"]["digest"] == Blob(FILE_TYPE, payload.read_bytes()).digest
    # A zero-length blob is stored and served like any other (oras ignores a failed upload
    # of it, so check the registry directly).
    assert titles["empty.txt"]["digest"] == EMPTY_DIGEST
    assert reader.blob(repo, EMPTY_DIGEST) == b""
    assert reader.has_blob(repo, EMPTY_DIGEST)
    assert orasclient.get_tags(reference) == ["v1"]
    assert orasclient.get_manifest(reference) == document

    pulled = orasclient.pull(target=reference, outdir=str(tmp_path / "pulled"))
    assert sorted(Path(path).name for path in pulled) == ["README.md", "empty.txt", "payload.bin"]
    assert (tmp_path / "pulled" / "empty.txt").read_bytes() == b""
    assert (tmp_path / "pulled" / "README.md").read_bytes() == readme.read_bytes()
    assert (tmp_path / "pulled" / "payload.bin").read_bytes() == payload.read_bytes()


def test_chunked_upload(
    tmp_path: Path, orasclient: oras.client.OrasClient, target: RunningRegistry, repo: str
) -> None:
    """oras's chunked upload: POST, several PATCHes with Content-Range, then PUT."""
    big = tmp_path / "big.bin"
    big.write_bytes(b"".join(hashlib.sha256(bytes([n])).digest() * 97 for n in range(256)))
    config = tmp_path / "config.json"
    config.write_text("{}")
    reference = f"{target.host}/{repo}:chunked"
    response = orasclient.push(
        target=reference,
        files=[f"{big}:{FILE_TYPE}"],
        manifest_config=f"{config}:{CONFIG_TYPE}",
        disable_path_validation=True,
        do_chunked=True,
        chunk_size=100_000,
        quiet=True,
    )
    assert response.status_code == 201, response.text

    pulled = orasclient.pull(target=reference, outdir=str(tmp_path / "pulled"))
    assert [Path(path).read_bytes() for path in pulled] == [big.read_bytes()]


@needs_referrers
def test_referrers(
    tmp_path: Path,
    orasclient: oras.client.OrasClient,
    target: RunningRegistry,
    reader: RegistryReader,
    repo: str,
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    artifact = source / "artifact.txt"
    artifact.write_text("the subject artifact\n")
    config = source / "config.json"
    config.write_text("{}")
    subject_digest, subject_size = push_files(
        orasclient, f"{target.host}/{repo}:subject", {artifact: FILE_TYPE}, config, CONFIG_TYPE
    )
    assert referrers(target, repo, subject_digest).json()["manifests"] == []

    # 1. A signature-like referrer, pushed with oras and its subject support.
    signature = source / "signature.sig"
    signature.write_bytes(b"not really a signature")
    subject = oras.oci.Subject(OCI_MANIFEST, subject_digest, subject_size)
    signature_digest, signature_size = push_files(
        orasclient,
        f"{target.host}/{repo}:signature",
        {signature: "application/vnd.dockyard.test.signature"},
        config,
        SIGNATURE_CONFIG_TYPE,
        subject=subject,
    )
    signature_manifest = reader.manifest(repo, signature_digest)
    assert signature_manifest.json()["subject"]["digest"] == subject_digest

    # 2. An SBOM-like referrer with an artifactType and the empty config, built by hand.
    sbom = Blob("application/spdx+json", json.dumps({"spdxVersion": "SPDX-2.3"}).encode())
    empty = Blob(EMPTY_TYPE, b"{}")
    for blob in (sbom, empty):
        path = source / blob.digest.replace(":", "-")
        path.write_bytes(blob.data)
        uploaded = orasclient.upload_blob(
            str(path), orasclient.get_container(f"{target.host}/{repo}"), blob.descriptor()
        )
        assert uploaded.status_code in (200, 201), uploaded.text
    sbom_document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SBOM_TYPE,
        "config": empty.descriptor(),
        "layers": [sbom.descriptor()],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_size},
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    sbom_manifest = Blob(OCI_MANIFEST, json.dumps(sbom_document).encode())
    put = httpx.put(
        f"{target.url}/v2/{repo}/manifests/{sbom_manifest.digest}",
        content=sbom_manifest.data,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    assert put.status_code == 201, put.text
    assert put.headers.get("oci-subject") == subject_digest
    assert put.headers["docker-content-digest"] == sbom_manifest.digest

    listed = referrers(target, repo, subject_digest).json()
    assert listed["schemaVersion"] == 2
    assert listed["mediaType"] == OCI_INDEX
    by_digest = {entry["digest"]: entry for entry in listed["manifests"]}
    assert set(by_digest) == {signature_digest, sbom_manifest.digest}
    assert by_digest[signature_digest] == {
        "mediaType": OCI_MANIFEST,
        "digest": signature_digest,
        "size": signature_size,
        # No artifactType in the manifest: the config's media type stands in for it.
        "artifactType": SIGNATURE_CONFIG_TYPE,
    }
    assert by_digest[sbom_manifest.digest] == {
        "mediaType": OCI_MANIFEST,
        "digest": sbom_manifest.digest,
        "size": sbom_manifest.size,
        "artifactType": SBOM_TYPE,
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }

    # Filtering by artifactType is optional; a registry that filters must say so.
    filtered = referrers(target, repo, subject_digest, artifactType=SBOM_TYPE)
    if filtered.headers.get("oci-filters-applied") == "artifactType":
        assert [entry["digest"] for entry in filtered.json()["manifests"]] == [sbom_manifest.digest]
    else:
        assert len(filtered.json()["manifests"]) == 2

    # The referrers follow their manifests: deleting one takes it off the list.
    deleted = httpx.delete(f"{target.url}/v2/{repo}/manifests/{signature_digest}", timeout=30)
    assert deleted.status_code == 202, deleted.text
    remaining = referrers(target, repo, subject_digest).json()["manifests"]
    assert [entry["digest"] for entry in remaining] == [sbom_manifest.digest]

    # The subject artifact itself is untouched and still pulls with oras.
    pulled = orasclient.pull(
        target=f"{target.host}/{repo}:subject", outdir=str(tmp_path / "pulled")
    )
    assert [Path(path).read_bytes() for path in pulled] == [artifact.read_bytes()]
