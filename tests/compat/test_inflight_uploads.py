"""Uploads and blob-only repositories left in the store by distribution 2.8.2.

Replacing distribution by dockyard on a live store means taking over what distribution left
behind: an upload half done (``_uploads/<uuid>/{data,startedat,hashstates}``), resumed with
the ``Location`` distribution handed out, and repositories that got blobs but no manifest yet,
which distribution's catalog lists (it lists every repository with a ``_layers`` directory).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.support.server import require_tool, run_registry

pytestmark = pytest.mark.clients


def test_resume_distribution_upload(tmp_path: Path) -> None:
    require_tool("docker-registry")
    root = tmp_path / "root"
    first, second = b"first half of the blob, " * 1000, b"second half" * 1000
    digest = "sha256:" + hashlib.sha256(first + second).hexdigest()
    (tmp_path / "distribution").mkdir()
    with run_registry(tmp_path / "distribution", "distribution", root) as distribution:
        started = httpx.post(f"{distribution.url}/v2/inflight/repo/blobs/uploads/")
        assert started.status_code == 202
        patched = httpx.patch(
            started.headers["location"],
            content=first,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert patched.status_code == 202
        location = patched.headers["location"]
    assert location.startswith(distribution.url)

    (tmp_path / "dockyard").mkdir()
    with run_registry(tmp_path / "dockyard", "dockyard", root) as dockyard:
        url = dockyard.url + location.removeprefix(distribution.url)
        status = httpx.get(url)
        assert status.status_code == 204, status.text
        assert status.headers["range"] == f"0-{len(first) - 1}"
        patched = httpx.patch(
            url, content=second, headers={"Content-Type": "application/octet-stream"}
        )
        assert patched.status_code == 202, patched.text
        assert patched.headers["range"] == f"0-{len(first) + len(second) - 1}"
        finished = httpx.put(
            patched.headers["location"], params={"digest": digest}, headers={"Content-Length": "0"}
        )
        assert finished.status_code == 201, finished.text
        blob = httpx.get(f"{dockyard.url}/v2/inflight/repo/blobs/{digest}")
        assert blob.content == first + second


def test_catalog_lists_repositories_with_only_blobs(tmp_path: Path) -> None:
    """distribution lists a repository as soon as it has a blob; dockyard must list the same."""
    require_tool("docker-registry")
    root = tmp_path / "root"
    data = b"a blob pushed before its manifest"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    catalogs: dict[str, list[str]] = {}
    for kind in ("distribution", "dockyard"):
        (tmp_path / kind).mkdir()
        with run_registry(tmp_path / kind, kind, root) as running:
            if kind == "distribution":
                started = httpx.post(f"{running.url}/v2/blobs-only/repo/blobs/uploads/")
                location = started.headers["location"]
                pushed = httpx.put(
                    f"{location}{'&' if '?' in location else '?'}digest={digest}",
                    content=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                assert pushed.status_code == 201, pushed.text
            catalogs[kind] = httpx.get(f"{running.url}/v2/_catalog").json()["repositories"]
    assert catalogs["distribution"] == ["blobs-only/repo"]
    assert catalogs["dockyard"] == catalogs["distribution"]
