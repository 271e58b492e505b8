"""Symlinks planted in the store never make the registry read outside its root."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.support.oci import make_image, push_image
from tests.support.server import run_registry

SECRET = b"top secret outside the store\n"


@pytest.mark.filesystem_only(reason="symlinks planted in the store's directory tree")
def test_symlinks_out_of_the_store_read_as_missing(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(SECRET)
    secret_hex = hashlib.sha256(SECRET).hexdigest()
    root = tmp_path / "store"
    with run_registry(tmp_path, root=root) as running, running.client() as client:
        image = make_image()
        push_image(client, "hostile/repo", "v1", image)
        v2 = root / "docker/registry/v2"
        # A blob whose data file is a symlink to a file outside the root...
        blob_dir = v2 / f"blobs/sha256/{secret_hex[:2]}/{secret_hex}"
        blob_dir.mkdir(parents=True)
        os.symlink(outside / "secret", blob_dir / "data")
        link_dir = v2 / f"repositories/hostile/repo/_layers/sha256/{secret_hex}"
        link_dir.mkdir(parents=True)
        (link_dir / "link").write_text(f"sha256:{secret_hex}")
        # ...and a blob directory that is a symlink to a directory outside.
        other = hashlib.sha256(b"other").hexdigest()
        (outside / "dir").mkdir()
        (outside / "dir" / "data").write_bytes(SECRET)
        (v2 / f"blobs/sha256/{other[:2]}").mkdir(parents=True, exist_ok=True)
        os.symlink(outside / "dir", v2 / f"blobs/sha256/{other[:2]}/{other}",
                   target_is_directory=True)
        other_link = v2 / f"repositories/hostile/repo/_layers/sha256/{other}"
        other_link.mkdir(parents=True)
        (other_link / "link").write_text(f"sha256:{other}")
        # A tag whose link is a symlink.
        tag_dir = v2 / "repositories/hostile/repo/_manifests/tags/evil/current"
        tag_dir.mkdir(parents=True)
        os.symlink(v2 / "repositories/hostile/repo/_manifests/tags/v1/current/link",
                   tag_dir / "link")

        for digest in (secret_hex, other):
            for method in ("GET", "HEAD"):
                response = client.request(method, f"/v2/hostile/repo/blobs/sha256:{digest}")
                assert response.status_code == 404, (digest, method)
                assert SECRET not in response.content
        assert client.get("/v2/hostile/repo/manifests/evil").status_code == 404
        # The honest content still serves.
        assert client.get("/v2/hostile/repo/manifests/v1").content == image.manifest
