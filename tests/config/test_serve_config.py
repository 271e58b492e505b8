"""`dockyard serve` with distribution's config.yml keys and REGISTRY_* overrides."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.oci import digest_of, error_codes, make_image, push_image
from tests.support.server import free_port, run_registry
from tests.support.users import htpasswd_with_alice


def serve_and_fail(tmp_path: Path, config: object, env: dict[str, str] | None = None
                   ) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "dockyard", "serve", str(path)],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


@pytest.mark.parametrize("config,key", [
    ({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/tmp/x"},
                                  "delete": {"enabled": "maybe"}}}, "storage.delete.enabled"),
    ({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/tmp/x"}},
      "http": {"addr": "nowhere"}}, "http.addr"),
    ({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/tmp/x"}},
      "log": {"level": "loud"}}, "log.level"),
    ({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/tmp/x"}},
      "http": {"addr": "::1:5000"}}, "http.addr"),
    ({"version": 0.1}, "storage"),
    ({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/tmp/x"}},
      "http": {"tls": {"certificate": "/nonexistent.pem", "key": "/nonexistent.key"}}},
     "http.tls.certificate"),
    ({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/tmp/x"},
                                  "maintenance": {"uploadpurging": {"age": "forever"}}}},
     "storage.maintenance.uploadpurging.age"),
    ({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/tmp/x"}},
      "http": {"draintimeout": "a while"}}, "http.draintimeout"),
    ({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/tmp/x"}},
      "http": {"timeouts": {"head": "soon"}}}, "http.timeouts.head"),
    ({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/tmp/x"}},
      "http": {"timeouts": {"body": "0s"}}}, "http.timeouts.body"),
    ({"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/tmp/x"}},
      "http": {"timeouts": {"read": "5s"}}}, "http.timeouts.read"),
    ("version: 0.1\nstorage: [unclosed", "not valid YAML"),
])
def test_invalid_config_names_the_key(tmp_path: Path, config: object, key: str) -> None:
    result = serve_and_fail(tmp_path, config)
    assert result.returncode == 2, result.stderr
    assert key in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_in_use_fails_once_with_a_message(tmp_path: Path, workers: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = serve_and_fail(tmp_path, {
            "version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path / "s")}},
            "http": {"addr": f"127.0.0.1:{port}", "workers": workers}})
    assert result.returncode == 1, result.stderr
    assert result.stderr.count(f"dockyard: cannot listen on 127.0.0.1:{port}: ") == 1
    assert "Traceback" not in result.stderr
    # The start banner says "serving": it must not appear when nothing is served.
    assert "serving" not in result.stderr


def test_environment_override_is_checked_too(tmp_path: Path) -> None:
    config = {"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path)}}}
    result = serve_and_fail(tmp_path, config, {"REGISTRY_HTTP_ADDR": "bad"})
    assert result.returncode == 2
    assert "http.addr" in result.stderr


def test_deletes_disabled_answer_405_unsupported(tmp_path: Path) -> None:
    with run_registry(tmp_path, config={"storage": {"delete": {"enabled": False}}}) as running, \
            running.client() as client:
        image = make_image()
        push_image(client, "nodelete/repo", "v1", image)
        for path in ("/v2/nodelete/repo/manifests/v1",
                     f"/v2/nodelete/repo/manifests/{image.digest}",
                     f"/v2/nodelete/repo/blobs/{image.digest}"):
            response = client.delete(path)
            assert response.status_code == 405
            assert error_codes(response) == ["UNSUPPORTED"]
        assert client.get("/v2/nodelete/repo/manifests/v1").status_code == 200


def test_env_enables_deletes_like_distribution(tmp_path: Path) -> None:
    env = {"REGISTRY_STORAGE_DELETE_ENABLED": "true"}
    with run_registry(tmp_path, config={"storage": {"delete": {"enabled": False}}},
                      env=env) as running, running.client() as client:
        image = make_image()
        push_image(client, "envdelete/repo", "v1", image)
        assert client.delete(f"/v2/envdelete/repo/manifests/{image.digest}").status_code == 202


def test_env_values_are_read_as_the_key_expects(tmp_path: Path) -> None:
    """As distribution decodes a variable into its key's type: a string key keeps the text
    as written ("0123" stays "0123", "on" stays "on"), and a switch takes YAML's yes/on."""
    htpasswd = htpasswd_with_alice(tmp_path)
    env = {"REGISTRY_STORAGE_DELETE_ENABLED": "yes", "REGISTRY_AUTH_HTPASSWD_REALM": "0123",
           "REGISTRY_AUTH_HTPASSWD_PATH": str(htpasswd)}
    with run_registry(tmp_path, config={"storage": {"delete": {"enabled": False}}},
                      env=env) as running, running.client(auth=("alice", "wonderland")
                                                          ) as client:
        refused = httpx.get(f"{running.url}/v2/", timeout=30)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="0123"'
        image = make_image()
        push_image(client, "envtypes/repo", "v1", image)
        assert client.delete(f"/v2/envtypes/repo/manifests/{image.digest}").status_code == 202
    on = {"REGISTRY_AUTH_HTPASSWD_REALM": "on", "REGISTRY_AUTH_HTPASSWD_PATH": str(htpasswd)}
    with run_registry(tmp_path, env=on) as running:
        refused = httpx.get(f"{running.url}/v2/", timeout=30)
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="on"'


def test_env_overrides_listen_address(tmp_path: Path) -> None:
    import os
    import time

    config = {"version": 0.1, "http": {"addr": f"127.0.0.1:{free_port()}"},
              "storage": {"filesystem": {"rootdirectory": str(tmp_path / "store")}}}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "dockyard", "serve", str(path)],
                               env={**os.environ, "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"},
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # The config file names another port; the environment wins.
                assert httpx.get(f"http://127.0.0.1:{port}/v2/").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_read_only_mode_refuses_writes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    image = make_image()
    with run_registry(tmp_path, root=root) as running, running.client() as client:
        push_image(client, "ro/repo", "v1", image)
    readonly = {"storage": {"maintenance": {"readonly": {"enabled": True}}}}
    with run_registry(tmp_path, root=root, config=readonly) as running, \
            running.client() as client:
        assert client.get("/v2/ro/repo/manifests/v1").content == image.manifest
        for method, path in (("POST", "/v2/ro/repo/blobs/uploads/"),
                             ("PUT", "/v2/ro/repo/manifests/v2"),
                             ("DELETE", "/v2/ro/repo/manifests/v1")):
            response = client.request(method, path, content=image.manifest)
            assert response.status_code == 405, (method, path)
            assert error_codes(response) == ["UNSUPPORTED"]
            assert "read-only" in response.json()["errors"][0]["message"] or method == "DELETE"


def test_prefix_headers_and_host(tmp_path: Path) -> None:
    config = {"http": {"prefix": "/registry/", "host": "https://registry.example.com",
                       "headers": {"X-Custom": ["one"], "X-Content-Type-Options": ["nosniff"]}}}
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        response = client.get("/registry/v2/")
        assert response.status_code == 200
        assert response.headers["X-Custom"] == "one"
        assert client.get("/v2/").status_code == 404
        started = client.post("/registry/v2/prefixed/repo/blobs/uploads/")
        assert started.headers["Location"].startswith(
            "https://registry.example.com/registry/v2/prefixed/repo/blobs/uploads/")


def test_location_behind_a_reverse_proxy(registry_url: str) -> None:
    with httpx.Client(base_url=registry_url) as client:
        response = client.post("/v2/proxied/repo/blobs/uploads/", headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.org"})
        assert response.headers["Location"].startswith(
            "https://registry.example.org/v2/proxied/repo/blobs/uploads/")
        response = client.post("/v2/proxied/repo/blobs/uploads/", headers={
            "Forwarded": 'for=1.2.3.4;proto=https;host="mirror.example.net"'})
        assert response.headers["Location"].startswith("https://mirror.example.net/v2/")


def test_relative_urls(tmp_path: Path) -> None:
    with run_registry(tmp_path, config={"http": {"relativeurls": True}}) as running, \
            running.client() as client:
        started = client.post("/v2/relative/repo/blobs/uploads/")
        assert started.headers["Location"].startswith("/v2/relative/repo/blobs/uploads/")


def test_json_logs(tmp_path: Path) -> None:
    import json

    config = {"log": {"formatter": "json", "fields": {"service": "registry"}}}
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        client.get("/v2/_catalog")
    lines = [line for line in running.logs().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in lines]
    access = [entry for entry in entries if "/v2/_catalog" in entry["msg"]]
    assert access and access[0]["service"] == "registry" and access[0]["level"] == "info"


def test_version_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "dockyard", "--version"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.startswith("dockyard, version ")


def test_serve_without_config_uses_working_defaults(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "REGISTRY_HTTP_ADDR": f"127.0.0.1:{free_port()}"}
    process = subprocess.Popen([sys.executable, "-m", "dockyard", "serve"], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        first = process.stderr.readline() + process.stderr.readline()
        assert "serving http://127.0.0.1" in first
        assert str(tmp_path / "xdg" / "dockyard") in first
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_inmemory_storage(tmp_path: Path) -> None:
    config = {"storage": {"filesystem": None, "inmemory": {}}}
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        image = make_image()
        push_image(client, "memory/repo", "v1", image)
        assert client.get("/v2/memory/repo/manifests/v1").content == image.manifest
        assert client.get("/v2/_catalog").json() == {"repositories": ["memory/repo"]}
        assert client.get(f"/v2/memory/repo/blobs/{image.digest}").status_code == 404
        for blob in image.layers:
            got = client.get(f"/v2/memory/repo/blobs/{digest_of(blob)}",
                             headers={"Range": "bytes=1-"})
            assert got.status_code == 206 and got.content == blob[1:]
    assert not any(running.root.iterdir())
