"""/debug/health on the main port: a status for load balancers, with no storage details
for whoever asks (it is served without authentication, as in distribution)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import tests.support.server as server_support
from dockyard.auth.htpasswd import hash_password
from tests.support.server import RunningRegistry, require_tool, run_registry


@contextmanager
def run_without_permission_override(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A registry with htpasswd auth whose processes obey file permissions even when the
    tests run as root (which otherwise reads any directory)."""
    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{hash_password('wonderland', rounds=4)}\n")
    config = {"auth": {"htpasswd": {"realm": "Health", "path": str(users)}}}
    original = server_support.registry_command
    command = original
    if os.geteuid() == 0:
        setpriv = require_tool("setpriv")  # to drop CAP_DAC_OVERRIDE as root

        def command(kind: str, config_path: Path) -> list[str]:
            return [setpriv, "--bounding-set=-dac_override,-dac_read_search",
                    *original(kind, config_path)]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server_support, "registry_command", command)
        with run_registry(tmp_path, config=config) as running:
            patch.undo()
            yield running


@pytest.mark.filesystem_only(reason="makes the store's directory unreadable, which S3 has not")
def test_storage_failure_is_503_without_details(tmp_path: Path) -> None:
    with run_without_permission_override(tmp_path) as running:
        healthy = httpx.get(running.url + "/debug/health", timeout=30)
        assert healthy.status_code == 200
        assert healthy.json() == {}
        mode = running.root.stat().st_mode
        running.root.chmod(0)
        try:
            failing = httpx.get(running.url + "/debug/health", timeout=30)
        finally:
            running.root.chmod(mode)
        assert failing.status_code == 503, failing.text
        body = failing.json()
        assert body == {"storagedriver_filesystem": "storage is not available"}, body
        for secret in ("Errno", "ermission", str(running.root)):
            assert secret not in failing.text
        # The operator finds the cause in the log.
        assert "Permission denied" in running.logs()
        assert httpx.get(running.url + "/debug/health", timeout=30).status_code == 200
