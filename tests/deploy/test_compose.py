"""deploy/compose.yaml as compose reads it (bridge networks are unavailable here, so it is not
started; tests/deploy/test_container_image.py runs its registry service's environment and
its nginx config)."""

from __future__ import annotations

import subprocess

import yaml

from tests.support.container_image import REPO
from tests.support.server import require_tool


def test_compose_reads_the_recipe() -> None:
    compose = require_tool("docker-compose")
    result = subprocess.run([compose, "--file", str(REPO / "deploy/compose.yaml"), "config"],
                            capture_output=True, text=True, timeout=120, cwd=REPO / "deploy")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    registry, nginx = resolved["services"]["registry"], resolved["services"]["nginx"]
    assert registry["build"]["context"] == str(REPO)  # the Dockerfile at the repository's top
    assert "registry-data:/var/lib/registry:rw" in registry["volumes"]
    assert f"{REPO}/deploy/nginx/registry.conf:/etc/nginx/conf.d/default.conf:ro" in (
        nginx["volumes"])
    assert {port["target"] for port in nginx["ports"]} == {80, 443}
    # docker compose stop waits longer than dockyard's drain time (http.draintimeout, 30 s).
    assert registry["stop_grace_period"] == "35s"
