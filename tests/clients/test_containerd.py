"""containerd's ``ctr`` against the registry, through a private containerd.

containerd runs with its own root, state and socket, the CRI plugin and every snapshotter that
needs a kernel feature disabled; images are unpacked with the ``native`` snapshotter (plain
file copies), so no mount or overlay support is needed.  ``ctr`` speaks plain HTTP to the
registry with ``--plain-http``.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.conftest import TlsRegistry
from tests.support.clients import RegistryReader, run, run_binary
from tests.support.daemons import Daemon, run_containerd
from tests.support.images import (
    Blob,
    Image,
    ImageIndex,
    build_index,
    sample_image,
    write_image_layout,
)
from tests.support.server import RunningRegistry, require_tool

pytestmark = pytest.mark.clients


class Ctr:
    def __init__(self, binary: str, daemon: Daemon) -> None:
        self.binary = binary
        self.daemon = daemon

    def __call__(self, *args: str) -> str:
        return run([self.binary, *args], env=self.daemon.env).stdout

    def image_digests(self) -> dict[str, str]:
        """Image name -> target digest, from ``ctr images ls``."""
        images: dict[str, str] = {}
        for line in self("images", "ls").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3:
                images[fields[0]] = fields[2]
        return images

    def content(self, digest: str) -> bytes:
        return run_binary([self.binary, "content", "get", digest], env=self.daemon.env)

    def content_digests(self) -> set[str]:
        return {line.split()[0] for line in self("content", "ls", "-q").splitlines() if line}


@pytest.fixture(scope="module")
def ctr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctr]:
    binary = require_tool("ctr")
    containerd = require_tool("containerd")
    with run_containerd(tmp_path_factory.mktemp("containerd"), containerd, binary) as daemon:
        yield Ctr(binary, daemon)


def oci_archive(tmp_path: Path, tag: str, image: Image | ImageIndex) -> Path:
    """An OCI layout, tarred: what ``ctr images import`` reads."""
    layout = write_image_layout(tmp_path / f"layout-{tag}", tag, image)
    archive = tmp_path / f"{tag}.tar"
    with tarfile.open(archive, "w") as tar:
        for entry in sorted(layout.path.rglob("*")):
            tar.add(entry, arcname=str(entry.relative_to(layout.path)), recursive=False)
    return archive


def test_push_and_pull_image(
    tmp_path: Path, ctr: Ctr, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    image = sample_image("ctr", layers=3)
    name = f"{target.host}/{repo}"
    ctr("images", "import", "--base-name", name, str(oci_archive(tmp_path, "v1", image)))
    assert ctr.image_digests()[f"{name}:v1"] == image.manifest.digest

    ctr("images", "push", "--plain-http", f"{name}:v1")

    served = reader.manifest(repo, "v1")
    assert served.data == image.manifest.data
    assert served.digest_header == image.manifest.digest
    for blob in image.blobs:
        assert reader.blob(repo, blob.digest) == blob.data

    # Forget everything locally, then pull it back from the registry.
    ctr("images", "rm", "--sync", f"{name}:v1")
    assert not ctr.content_digests() & {blob.digest for blob in image.blobs}
    ctr("images", "pull", "--plain-http", f"{name}:v1")
    assert ctr.image_digests()[f"{name}:v1"] == image.manifest.digest
    for blob in [image.manifest, *image.blobs]:
        assert ctr.content(blob.digest) == blob.data


def test_push_and_pull_index(
    tmp_path: Path, ctr: Ctr, target: RunningRegistry, reader: RegistryReader, repo: str
) -> None:
    index = build_index(
        [sample_image("ctr-multi", "amd64"), sample_image("ctr-multi", "arm64", layers=2)]
    )
    name = f"{target.host}/{repo}"
    archive = oci_archive(tmp_path, "multi", index)
    ctr("images", "import", "--all-platforms", "--base-name", name, str(archive))
    assert ctr.image_digests()[f"{name}:multi"] == index.index.digest

    ctr("images", "push", "--plain-http", f"{name}:multi")

    assert reader.manifest(repo, "multi").data == index.index.data
    for image in index.images:
        assert reader.manifest(repo, image.manifest.digest).data == image.manifest.data
        for blob in image.blobs:
            assert reader.blob(repo, blob.digest) == blob.data

    ctr("images", "rm", "--sync", f"{name}:multi")
    everything: list[Blob] = [index.index, *index.blobs]
    assert not ctr.content_digests() & {blob.digest for blob in everything}
    ctr("images", "pull", "--plain-http", "--all-platforms", f"{name}:multi")
    assert ctr.image_digests()[f"{name}:multi"] == index.index.digest
    for blob in everything:
        assert ctr.content(blob.digest) == blob.data


def test_push_and_pull_over_tls(tmp_path: Path, ctr: Ctr, tls_target: TlsRegistry) -> None:
    """ctr over HTTPS, trusting the registry's CA.

    containerd speaks plain HTTP to loopback hosts unless a hosts.toml says otherwise, so the
    registry's HTTPS address and CA go in a hosts directory (``--hosts-dir``).
    """
    image = sample_image("ctr-tls", layers=2)
    host = tls_target.running.host
    hosts_dir = tmp_path / "hosts"
    (hosts_dir / host).mkdir(parents=True)
    (hosts_dir / host / "hosts.toml").write_text(
        f'server = "https://{host}"\n\n'
        f'[host."https://{host}"]\n'
        '  capabilities = ["pull", "resolve", "push"]\n'
        f"  ca = {json.dumps(str(tls_target.ca_file))}\n"
    )
    name = f"{host}/clients/ctr-tls"
    ctr("images", "import", "--base-name", name, str(oci_archive(tmp_path, "v1", image)))
    ctr("images", "push", "--hosts-dir", str(hosts_dir), f"{name}:v1")
    ctr("images", "rm", "--sync", f"{name}:v1")
    ctr("images", "pull", "--hosts-dir", str(hosts_dir), f"{name}:v1")
    assert ctr.image_digests()[f"{name}:v1"] == image.manifest.digest
    for blob in [image.manifest, *image.blobs]:
        assert ctr.content(blob.digest) == blob.data
