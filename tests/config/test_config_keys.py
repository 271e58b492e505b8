"""Every config key is checked: typos warn (or fail with --strict-config), distribution's
keys dockyard does not implement are named at start, and security settings it cannot honour
stop it instead of being dropped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.oci import error_codes, make_image, push_image
from tests.support.server import free_port, run_registry


def serve(tmp_path: Path, config: dict[str, Any], *args: str,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`dockyard serve` on a config expected to be refused (it exits by itself)."""
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "dockyard", "serve", *args, str(path)],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})})


def minimal(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"version": 0.1,
                              "storage": {"filesystem": {"rootdirectory": str(tmp_path / "s")}},
                              "http": {"addr": f"127.0.0.1:{free_port()}"}}
    for section, values in extra.items():
        config[section] = {**config.get(section, {}), **values}
    return config


def test_misspelled_delete_key_warns_and_names_the_right_one(tmp_path: Path) -> None:
    config = {"storage": {"delete": {"enabled": None, "enable": True}},
              "http": {"adr": ":5620"}}
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        logs = running.logs()
        assert "storage.delete.enable" in logs
        assert "did you mean storage.delete.enabled?" in logs
        assert "http.adr" in logs and "did you mean http.addr?" in logs
        # The misspelled key has no effect, as the warning says: deletes stay off.
        image = make_image()
        push_image(client, "typo/repo", "v1", image)
        response = client.delete(f"/v2/typo/repo/manifests/{image.digest}")
        assert response.status_code == 405
        assert error_codes(response) == ["UNSUPPORTED"]


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_strict_config_refuses_unknown_keys(tmp_path: Path, how: str) -> None:
    config = minimal(tmp_path, storage={"delete": {"enable": True}})
    args = ("--strict-config",) if how == "flag" else ()
    env = {"DOCKYARD_STRICT_CONFIG": "1"} if how == "environment" else None
    result = serve(tmp_path, config, *args, env=env)
    assert result.returncode == 2, result.stderr
    assert "storage.delete.enable" in result.stderr
    assert "storage.delete.enabled" in result.stderr
    assert "serving" not in result.stderr
    assert "Traceback" not in result.stderr


def test_environment_override_naming_an_unknown_key_warns(tmp_path: Path) -> None:
    env = {"REGISTRY_STORAGE_DELETE_ENABLE": "true"}
    with run_registry(tmp_path, env=env) as running:
        logs = running.logs()
    assert "REGISTRY_STORAGE_DELETE_ENABLE" in logs
    assert "REGISTRY_STORAGE_DELETE_ENABLED" in logs
    strict = serve(tmp_path, minimal(tmp_path), "--strict-config", env=env)
    assert strict.returncode == 2, strict.stderr
    assert "REGISTRY_STORAGE_DELETE_ENABLE" in strict.stderr


DISTRIBUTION_ONLY = {
    "loglevel": "info",
    "log": {"hooks": [{"type": "mail", "disabled": True}]},
    # (http.debug is served: tests/proxy/test_metrics.py)
    "http": {"secret": "s3cr3t",
             "http2": {"disabled": False},
             # Another branch serves these; they must not be reported as unknown.
             "timeouts": {"head": "30s", "idle": "2m", "body": "1m"}},
    "storage": {"cache": {"blobdescriptor": "inmemory"}, "redirect": {"disable": True},
                "filesystem": {"maxthreads": 100}},
    "notifications": {"events": {"includereferences": True},
                      "endpoints": [{"name": "alistener", "url": "https://example.com/e"}]},
    "redis": {"addr": "localhost:6379", "pool": {"maxidle": 16}},
    "health": {"storagedriver": {"enabled": False}},
    "reporting": {"bugsnag": {"apikey": "x"}},
    "compatibility": {"schema1": {"enabled": True}},
    "catalog": {"maxentries": 1000},
    "validation": {"disabled": True},
}


def test_every_distribution_key_is_known(tmp_path: Path) -> None:
    with run_registry(tmp_path, config=DISTRIBUTION_ONLY) as running:
        logs = running.logs()
    assert "unknown" not in logs.lower(), logs
    # What is accepted without effect is named once at start.
    ignored_line = next(line for line in logs.splitlines() if "not implemented" in line)
    for key in ("http.secret", "storage.cache", "redis",
                "reporting", "log.hooks", "compatibility", "catalog"):
        assert key in ignored_line, (key, ignored_line)
    assert "http.timeouts" not in ignored_line
    assert "notifications" not in ignored_line  # webhooks are sent
    # Nothing here is unknown, so the strict check lets it start too.
    with run_registry(tmp_path, config=DISTRIBUTION_ONLY,
                      env={"DOCKYARD_STRICT_CONFIG": "1"}) as running:
        assert "unknown" not in running.logs().lower()


@pytest.mark.parametrize("tls,key", [
    ({"letsencrypt": {"cachefile": "/tmp/le.cache", "email": "ops@example.com",
                      "hosts": ["registry.example.com"]}}, "http.tls.letsencrypt"),
    ({"clientcas": ["/etc/ca.pem"]}, "http.tls.clientcas"),
    ({"minimumtls": "tls1.3"}, "http.tls.minimumtls"),
])
def test_tls_settings_that_cannot_be_honoured_stop_the_server(
        tmp_path: Path, tls: dict[str, Any], key: str) -> None:
    result = serve(tmp_path, minimal(tmp_path, http={"tls": tls}))
    assert result.returncode == 2, result.stderr
    assert key in result.stderr
    assert "serving" not in result.stderr


@pytest.mark.parametrize("auth,key", [
    ({"silly": {"realm": "r", "service": "s"}}, "auth.silly"),
    ({"htpasswd": {"realm": "r", "path": "HTPASSWD", "paht": "x"}}, "auth.htpasswd.paht"),
])
def test_auth_that_cannot_be_honoured_stops_the_server(
        tmp_path: Path, auth: dict[str, Any], key: str) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("")
    auth = yaml.safe_load(yaml.safe_dump(auth).replace("HTPASSWD", str(htpasswd)))
    result = serve(tmp_path, minimal(tmp_path, auth=auth))
    assert result.returncode == 2, result.stderr
    assert key in result.stderr
