"""A store that fills up or is remounted read-only under a running registry: clients get an
error naming the cause, /debug/health says so, and the registry recovers when it is fixed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_health import run_without_permission_override
from tests.support.oci import digest_of, error_codes, push_blob, random_blob
from tests.support.server import IN_CI, RunningRegistry, run_registry

SIZE_MIB = 48

pytestmark = pytest.mark.filesystem_only(
    reason="a full or read-only filesystem and file permissions under the store")


@pytest.fixture
def small_store(tmp_path: Path) -> Iterator[Path]:
    """A store on a tmpfs of its own, so it can be filled and remounted read-only."""
    if os.geteuid() != 0 and not IN_CI:
        pytest.skip("mounting a tmpfs needs root")
    root = tmp_path / "store"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m", "tmpfs", str(root)],
                   check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def health(registry: RunningRegistry) -> tuple[int, dict[str, str]]:
    with registry.client() as http:
        answer = http.get("/debug/health")
        return answer.status_code, answer.json()


def test_full_disk(tmp_path: Path, small_store: Path) -> None:
    with run_registry(tmp_path, root=small_store) as registry, registry.client() as http:
        assert health(registry) == (200, {})
        pushed = [push_blob(http, "full/repo", random_blob(4 * 1024 * 1024)) for _ in range(3)]
        refused = None
        for _ in range(SIZE_MIB // 4 + 2):
            started = http.post("/v2/full/repo/blobs/uploads/")
            if started.status_code != 202:
                refused = started
                break
            data = random_blob(4 * 1024 * 1024)
            answer = http.put(started.headers["location"], params={"digest": digest_of(data)},
                              content=data)
            if answer.status_code != 201:
                refused = answer
                break
        assert refused is not None, "the store never filled up"
        assert refused.status_code == 507, refused.text
        assert error_codes(refused) == ["UNAVAILABLE"]
        assert "storage is full" in refused.json()["errors"][0]["message"]
        assert str(small_store) not in refused.text
        assert health(registry) == (503, {"storagedriver_filesystem": "storage is full"})
        # What was stored before stays readable.
        for digest in pushed:
            assert http.head(f"/v2/full/repo/blobs/{digest}").status_code == 200
        assert "No space left on device" in registry.logs()
        assert "Traceback" not in registry.logs()


def test_store_made_unwritable(tmp_path: Path) -> None:
    """Permissions changed under the registry (it runs without root's override here)."""
    with run_without_permission_override(tmp_path) as registry, \
            registry.client(auth=("alice", "wonderland")) as http:
        digest = push_blob(http, "locked/repo", random_blob(1024))
        tree = registry.root / "docker"
        modes = {path: path.stat().st_mode for path in [tree, *tree.rglob("*")]}
        for path in modes:
            path.chmod(modes[path] & ~0o222)
        try:
            refused = http.post("/v2/locked/repo/blobs/uploads/")
            assert refused.status_code == 503, refused.text
            assert "storage is not writable" in refused.json()["errors"][0]["message"]
            assert health(registry) == (503, {"storagedriver_filesystem":
                                              "storage is not writable (permission denied)"})
            assert http.get(f"/v2/locked/repo/blobs/{digest}").status_code == 200
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        assert health(registry) == (200, {})
        push_blob(http, "locked/repo", random_blob(1024))
