"""`dockyard fsck` as a subprocess: every stored blob is read and checked against its digest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.oci import digest_of, push_blob, random_blob
from tests.support.server import RunningRegistry, run_registry


def fsck(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "fsck", *flags, str(config)],
                          capture_output=True, text=True, timeout=120)


def blob_file(registry: RunningRegistry, digest: str) -> Path:
    hex_digest = digest.split(":", 1)[1]
    return registry.root / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


def test_fsck_finds_quarantines_and_a_push_heals(tmp_path: Path) -> None:
    with run_registry(tmp_path) as registry, registry.client() as http:
        good = push_blob(http, "fsck/repo", random_blob(300_000))
        same_size = random_blob(4096)
        damaged = push_blob(http, "fsck/repo", same_size)
        other_size = random_blob(5000)
        truncated = push_blob(http, "fsck/repo", other_size)

        clean = fsck(registry.config_path)
        assert clean.returncode == 0, clean.stderr
        assert "checked 3 blobs" in clean.stdout and "0 do not match" in clean.stdout

        # The same number of bytes, other content: only hashing can tell.
        blob_file(registry, damaged).write_bytes(os.urandom(4096))
        blob_file(registry, truncated).write_bytes(other_size[:100])
        found = fsck(registry.config_path, "--json")
        assert found.returncode == 1
        report = json.loads(found.stdout)
        assert report["blobs_checked"] == 3
        assert sorted(item["digest"] for item in report["corrupt"]) == sorted([damaged, truncated])
        assert all(item["quarantined_to"] is None for item in report["corrupt"])
        assert blob_file(registry, damaged).exists()  # reporting moves nothing

        text = fsck(registry.config_path, "--quarantine")
        assert text.returncode == 1
        assert f"corrupt blob: {damaged} hashes to sha256:" in text.stdout
        assert not blob_file(registry, damaged).exists()
        assert not blob_file(registry, truncated).exists()
        assert len(list((registry.root / "dockyard/quarantine").iterdir())) == 2
        assert http.get(f"/v2/fsck/repo/blobs/{damaged}").status_code == 404
        assert http.get(f"/v2/fsck/repo/blobs/{good}").status_code == 200

        # Pushing the real content again stores it again.
        assert push_blob(http, "fsck/repo", same_size) == damaged
        assert http.get(f"/v2/fsck/repo/blobs/{damaged}").content == same_size
        assert fsck(registry.config_path).returncode == 0


def test_an_upload_replaces_a_stored_blob_whose_size_cannot_match(tmp_path: Path) -> None:
    """An existing digest wins over a new upload of it, but not when the stored bytes are
    of another length than the verified upload: they cannot hash to that digest."""
    with run_registry(tmp_path) as registry, registry.client() as http:
        content = random_blob(20_000)
        digest = push_blob(http, "fsck/heal", content)
        blob_file(registry, digest).write_bytes(b"not the content")
        assert push_blob(http, "fsck/heal", content) == digest_of(content)
        served = http.get(f"/v2/fsck/heal/blobs/{digest}")
        assert served.status_code == 200 and served.content == content
        assert "replaced by the verified data" in registry.logs()
