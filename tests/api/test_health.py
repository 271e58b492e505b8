"""/debug/health on the main port: a status for load balancers, with no storage details
for whoever asks (it is served without authentication, as in distribution)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.support.server as server_support
from dockyard.auth.htpasswd import hash_password
from tests.support.server import RunningRegistry, free_port, require_tool, run_registry


@contextmanager
def run_without_permission_override(tmp_path: Path, debug_port: int | None = None
                                    ) -> Iterator[RunningRegistry]:
    """A registry with htpasswd auth whose processes obey file permissions even when the
    tests run as root (which otherwise reads any directory)."""
    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{hash_password('wonderland', rounds=4)}\n")
    config: dict[str, Any] = {"auth": {"htpasswd": {"realm": "Health", "path": str(users)}}}
    if debug_port is not None:
        config["http"] = {"debug": {"addr": f"127.0.0.1:{debug_port}"}}
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
    """On the main port and on the debug port (where distribution serves it) alike."""
    debug_port = free_port()
    with run_without_permission_override(tmp_path, debug_port) as running:
        urls = [running.url + "/debug/health", f"http://127.0.0.1:{debug_port}/debug/health"]
        for url in urls:
            healthy = httpx.get(url, timeout=30)
            assert healthy.status_code == 200
            assert healthy.json() == {}
        mode = running.root.stat().st_mode
        running.root.chmod(0)
        try:
            answers = [httpx.get(url, timeout=30) for url in urls]
        finally:
            running.root.chmod(mode)
        for failing in answers:
            assert failing.status_code == 503, failing.text
            body = failing.json()
            assert body == {"storagedriver_filesystem": "storage is not available"}, body
            for secret in ("Errno", "ermission", str(running.root)):
                assert secret not in failing.text
        # The operator finds the cause in the log.
        assert "Permission denied" in running.logs()
        for url in urls:
            assert httpx.get(url, timeout=30).status_code == 200


@pytest.mark.filesystem_only(reason="compares the debug ports of two servers on one store")
@pytest.mark.parametrize("kind", ["distribution", "dockyard"])
def test_the_debug_port_answers_health_as_distributions_does(tmp_path: Path, kind: str
                                                             ) -> None:
    """Probes written for registry:2 watch /debug/health on the debug port (distribution
    serves it only there); the answer, and a 404 elsewhere, are distribution's."""
    debug = f"http://127.0.0.1:{free_port()}"
    config = {"http": {"debug": {"addr": debug.removeprefix("http://")}}}
    with run_registry(tmp_path, kind, config=config):
        healthy = httpx.get(debug + "/debug/health", timeout=30)
        assert (healthy.status_code, healthy.content) == (200, b"{}")
        assert healthy.headers["content-type"] == "application/json; charset=utf-8"
        unknown = httpx.get(debug + "/no/such/page", timeout=30)
        assert (unknown.status_code, unknown.text) == (404, "404 page not found\n")
