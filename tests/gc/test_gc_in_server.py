"""Garbage collection inside the server: the admin endpoint and the schedule."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.oci import digest_of, error_codes, make_image, push_image
from tests.support.server import run_registry


def wait_finished(client: httpx.Client, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = client.get("/admin/gc").json()
        if status["state"] in ("finished", "failed"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


def test_admin_endpoint_runs_gc_and_reports(tmp_path: Path) -> None:
    config = {"http": {"admin": {"enabled": True}}}
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        assert client.get("/admin/gc").json() == {"state": "idle"}
        kept, dropped = make_image(), make_image()
        push_image(client, "admin/repo", "keep", kept)
        push_image(client, "admin/repo", "drop", dropped)
        client.delete(f"/v2/admin/repo/manifests/{dropped.digest}")

        dry = client.post("/admin/gc", params={"dryrun": "true", "graceperiod": "0"})
        assert dry.status_code == 202
        assert dry.headers["Location"].endswith("/admin/gc")
        status = wait_finished(client)
        assert status["report"]["dry_run"] is True
        assert client.head(f"/v2/admin/repo/blobs/{digest_of(dropped.config)}").status_code == 200

        assert client.post("/admin/gc", params={"graceperiod": "0s"}).status_code == 202
        status = wait_finished(client)
        assert status["state"] == "finished" and status["trigger"] == "http"
        report = status["report"]
        assert set(report["blobs_deleted"]) == {digest_of(blob) for blob in
                                                (dropped.config, *dropped.layers)} | \
            {dropped.digest}
        assert status["progress"]["phase"] == "blobs"
        assert status["progress"]["done"] == status["progress"]["total"]
        assert client.get("/v2/admin/repo/manifests/keep").content == kept.manifest

        # Not a duration; digits of another script; so many digits they overflow a float.
        for grace in ("later", "\u0663s", "9" * 400 + "h"):
            bad = client.post("/admin/gc", params={"graceperiod": grace, "dryrun": "true"})
            assert bad.status_code == 400, (grace, bad.text)
            assert error_codes(bad) == ["INVALID_PARAMETER"]


def test_a_run_that_names_no_grace_period_keeps_the_configured_one(tmp_path: Path) -> None:
    """Without ?graceperiod=, storage.gc.graceperiod decides what is young enough to keep:
    with 0s a blob deleted a moment ago is garbage; with the default hour it is not."""
    for configured, freed in (("0s", True), (None, False)):
        gc: dict[str, Any] = {"graceperiod": configured} if configured else {}
        config = {"http": {"admin": {"enabled": True}}, "storage": {"gc": gc}}
        with run_registry(tmp_path / str(configured), config=config) as running, \
                running.client() as client:
            dropped = make_image()
            push_image(client, "admin/repo", "drop", dropped)
            client.delete(f"/v2/admin/repo/manifests/{dropped.digest}")
            assert client.post("/admin/gc", params={"dryrun": "true"}).status_code == 202
            report = wait_finished(client)["report"]
            assert (dropped.digest in report["blobs_deleted"]) is freed, (configured, report)
            assert (report["bytes_freed"] > 0) is freed


def test_admin_endpoint_is_off_by_default(registry_url: str) -> None:
    assert httpx.post(f"{registry_url}/admin/gc").status_code == 404
    assert httpx.get(f"{registry_url}/admin/gc").status_code == 404


def test_scheduled_gc(tmp_path: Path) -> None:
    config = {"http": {"admin": {"enabled": True}},
              "storage": {"gc": {"enabled": True, "interval": "1s", "graceperiod": "0"}}}
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        image = make_image()
        push_image(client, "scheduled/repo", "v1", image)
        client.delete(f"/v2/scheduled/repo/manifests/{image.digest}")
        deadline = time.monotonic() + 30
        config_blob = f"/v2/scheduled/repo/blobs/{digest_of(image.config)}"
        while client.head(config_blob).status_code == 200:
            assert time.monotonic() < deadline, "scheduled collection never ran"
            time.sleep(0.3)
        status = wait_finished(client)
        assert status["trigger"] == "schedule"


def test_read_only_mode_allows_only_dry_runs(tmp_path: Path) -> None:
    """With storage.maintenance.readonly.enabled the server deletes nothing: not through the
    admin API, not on its schedule. `dockyard garbage-collect` with that config still
    collects: that is distribution's own procedure (registry read-only, then the command)."""
    with run_registry(tmp_path) as running, running.client() as client:
        image = make_image()
        push_image(client, "frozen/repo", "v1", image)
        assert client.delete(f"/v2/frozen/repo/manifests/{image.digest}").status_code == 202
    config_blob = f"/v2/frozen/repo/blobs/{digest_of(image.config)}"
    read_only = {"http": {"admin": {"enabled": True}},
                 "storage": {"maintenance": {"readonly": {"enabled": True}},
                             "gc": {"enabled": True, "interval": "1s", "graceperiod": "0"}}}
    with run_registry(tmp_path, config=read_only) as running, running.client() as client:
        refused = client.post("/admin/gc", params={"graceperiod": "0"})
        assert refused.status_code == 405, refused.text
        assert error_codes(refused) == ["UNSUPPORTED"]
        assert "read-only" in refused.json()["errors"][0]["message"]
        dry = client.post("/admin/gc", params={"dryrun": "true", "graceperiod": "0"})
        assert dry.status_code == 202, dry.text
        status = wait_finished(client)
        assert status["trigger"] == "http" and status["report"]["dry_run"] is True
        assert digest_of(image.config) in status["report"]["blobs_deleted"]
        # The schedule (every second) would have run a few times by now.
        time.sleep(4)
        status = client.get("/admin/gc").json()
        assert status["trigger"] == "http", status
        assert client.head(config_blob).status_code == 200
        assert "read-only" in running.logs()

        command = [sys.executable, "-m", "dockyard", "garbage-collect", "--grace-period", "0",
                   str(running.config_path)]
        dry_cli = subprocess.run([*command, "--dry-run"], capture_output=True, text=True,
                                 timeout=300)
        assert dry_cli.returncode == 0, dry_cli.stderr
        assert "would delete" in dry_cli.stdout
        assert client.head(config_blob).status_code == 200
        collected = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert collected.returncode == 0, collected.stderr
        assert client.head(config_blob).status_code == 404


def plant_garbage(root: Path, count: int) -> None:
    """`count` blobs no manifest needs, written straight into the store (as a registry that
    lost its manifests would leave them)."""
    blobs = root / "docker/registry/v2/blobs/sha256"
    for n in range(count):
        data = f"garbage {n}".encode()
        digest = digest_of(data).removeprefix("sha256:")
        directory = blobs / digest[:2] / digest
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").write_bytes(data)


def stored_blob_count(root: Path) -> int:
    return sum(1 for _ in (root / "docker/registry/v2/blobs/sha256").glob("*/*/data"))


def test_switching_read_only_on_stops_a_running_collection(tmp_path: Path) -> None:
    """Switched on while a collection sweeps, the collection stops between two batches of
    deletes and says why; what it had not reached stays. Switched off, the next one runs."""
    root = tmp_path / "store"
    with run_registry(tmp_path, root=root, config={"http": {"admin": {"enabled": True}}}
                      ) as running, running.client() as client:
        push_image(client, "kept/repo", "v1", image := make_image())
        plant_garbage(root, 20000)
        assert client.post("/admin/gc", params={"graceperiod": "0"}).status_code == 202
        assert client.post("/admin/readonly", params={"enabled": "true"}).status_code == 200
        status = wait_finished(client)
        assert status["state"] == "failed", status
        assert "read-only maintenance mode was switched on" in status["error"]
        assert stored_blob_count(root) > 1000
        assert client.get("/v2/kept/repo/manifests/v1").content == image.manifest

        assert client.post("/admin/readonly", params={"enabled": "false"}).status_code == 200
        assert client.post("/admin/gc", params={"graceperiod": "0"}).status_code == 202
        assert wait_finished(client, timeout=300)["state"] == "finished"
        assert stored_blob_count(root) == len([image.manifest, image.config, *image.layers])
