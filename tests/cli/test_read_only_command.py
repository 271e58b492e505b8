"""`dockyard readonly CONFIG --on|--off`: switches a running registry's workers through the
index, as POST /admin/readonly does, with no admin API; the start banner says a live switch
is in force."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.oci import error_codes, make_image, push_blob, push_image
from tests.support.server import RunningRegistry, run_registry


def read_only_command(running: RunningRegistry, *flags: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "dockyard", "readonly", *flags,
                           str(running.config_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def test_the_command_switches_every_worker(tmp_path: Path) -> None:
    config = {"http": {"workers": 2}}
    with run_registry(tmp_path, config=config) as running, httpx.Client(
            base_url=running.url, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        push_image(client, "cli/repo", "v1", make_image())
        assert "is off (as storage.maintenance.readonly.enabled says)" in read_only_command(
            running).stdout
        assert "is on (switched live by " in read_only_command(running, "--on").stdout
        for _ in range(10):
            refused = client.post("/v2/cli/repo/blobs/uploads/")
            assert refused.status_code == 405 and error_codes(refused) == ["UNSUPPORTED"]
            assert client.get("/v2/cli/repo/manifests/v1").status_code == 200
        state = json.loads(read_only_command(running, "--json").stdout)
        assert state["enabled"] is True and state["source"] == "live"
        assert "(command line)" in state["switched"]["by"]
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        assert "read-only maintenance mode, switched live by" in running.logs()
        assert client.post("/v2/cli/repo/blobs/uploads/").status_code == 405
        read_only_command(running, "--off")
        for n in range(5):
            push_blob(client, "cli/repo", f"blob {n}".encode())
