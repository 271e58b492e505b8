"""The access log and request ids: every request leaves one line naming the client, the
user, what was asked and how it went, under distribution's field names; every response
carries the request's id, the client's own when it is a sane one."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.oci import make_image, push_image
from tests.support.rawhttp import build_request
from tests.support.server import (
    RunningRegistry,
    Storage,
    free_port,
    run_registry,
    wait_until_serving,
)
from tests.support.users import htpasswd_with_alice

GENERATED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def json_entries(running: RunningRegistry) -> list[dict[str, Any]]:
    return [json.loads(line) for line in running.logs().splitlines() if line.startswith("{")]


def access_entries(running: RunningRegistry, request_id: str,
                   timeout: float = 30) -> list[dict[str, Any]]:
    """The access log entries of a request, waiting for the line to be written."""
    deadline = time.monotonic() + timeout
    while True:
        found = [entry for entry in json_entries(running)
                 if entry.get("http.request.id") == request_id]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture
def users(tmp_path: Path) -> Path:
    return htpasswd_with_alice(tmp_path)


@pytest.fixture
def json_registry(tmp_path: Path, users: Path, storage: Storage) -> Iterator[RunningRegistry]:
    config = {"log": {"formatter": "json", "fields": {"service": "registry"}},
              "http": {"workers": 1},
              "auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)}}}
    with run_registry(tmp_path, config=config, storage=storage) as running:
        yield running


def test_a_delete_is_traceable_to_who_did_it(json_registry: RunningRegistry) -> None:
    image = make_image()
    with json_registry.client(auth=("alice", "wonderland")) as client:
        push_image(client, "logs/repo", "v1", image)
        deleted = client.delete(f"/v2/logs/repo/manifests/{image.digest}", headers={
            "User-Agent": "cleanup-job/1.0 (nightly)", "X-Request-Id": "cleanup-42"})
    assert deleted.status_code == 202
    assert deleted.headers["X-Request-Id"] == "cleanup-42"
    [entry] = access_entries(json_registry, "cleanup-42")
    assert entry["http.request.method"] == "DELETE"
    assert entry["http.request.uri"] == f"/v2/logs/repo/manifests/{image.digest}"
    assert entry["http.request.remoteaddr"] == "127.0.0.1"
    assert entry["http.request.useragent"] == "cleanup-job/1.0 (nightly)"
    assert entry["auth.user.name"] == "alice"
    assert entry["vars.name"] == "logs/repo"
    assert entry["vars.reference"] == image.digest
    assert entry["http.response.status"] == 202
    assert entry["http.response.written"] == 0
    assert re.fullmatch(r"[0-9.]+(ns|µs|ms|s)", entry["http.response.duration"])
    assert entry["service"] == "registry" and entry["level"] == "info"


def test_access_log_counts_bytes_written_and_names_no_user_without_credentials(
        json_registry: RunningRegistry) -> None:
    image = make_image()
    with json_registry.client(auth=("alice", "wonderland")) as client:
        push_image(client, "logs/pull", "v1", image)
        pulled = client.get("/v2/logs/pull/manifests/v1",
                            headers={"Accept": image.media_type})
    anonymous = httpx.get(json_registry.url + "/v2/logs/pull/manifests/v1")
    assert anonymous.status_code == 401
    [pull] = access_entries(json_registry, pulled.headers["X-Request-Id"])
    assert pull["http.response.written"] == len(image.manifest)
    assert pull["auth.user.name"] == "alice"
    assert pull["vars.reference"] == "v1"
    [refused] = access_entries(json_registry, anonymous.headers["X-Request-Id"])
    assert refused["http.response.status"] == 401
    assert "auth.user.name" not in refused
    assert refused["http.response.written"] == len(anonymous.content)


def test_request_ids_are_generated_or_the_clients_sane_one(registry: RunningRegistry) -> None:
    with registry.client() as client:
        ids = [client.get("/v2/").headers["X-Request-Id"] for _ in range(3)]
        assert all(GENERATED_ID.fullmatch(value) for value in ids), ids
        assert len(set(ids)) == 3
        # On errors and on HEAD too.
        missing = client.get("/v2/no/such/manifests/latest")
        assert missing.status_code == 404 and GENERATED_ID.fullmatch(
            missing.headers["X-Request-Id"])
        head = client.head("/v2/no/such/manifests/latest", headers={"X-Request-Id": "probe.1"})
        assert head.headers["X-Request-Id"] == "probe.1"
        sane = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        assert client.get("/v2/", headers={"X-Request-Id": sane}).headers[
            "X-Request-Id"] == sane
        for insane in ("x" * 201, "has spaces", "quote\"d", "", "ids,joined"):
            answered = client.get("/v2/", headers={"X-Request-Id": insane})
            assert GENERATED_ID.fullmatch(answered.headers["X-Request-Id"]), insane


def test_a_request_id_with_raw_bytes_is_replaced(registry: RunningRegistry) -> None:
    import socket

    request = build_request("GET", "/v2/", registry.host,
                            [("X-Request-Id", b"caf\xe9")])
    with socket.create_connection(("127.0.0.1", int(registry.host.rsplit(":", 1)[1])),
                                  timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    found = re.search(r"\r\nX-Request-Id: ([^\r]*)", head)
    assert found and GENERATED_ID.fullmatch(found.group(1)), head


def test_text_access_log_is_one_line_per_request(tmp_path: Path, storage: Storage) -> None:
    with run_registry(tmp_path, storage=storage) as running, running.client() as client:
        # A line break in the path (percent-encoded) or the user agent's quotes must not
        # forge lines or fields.
        answered = client.get("/v2/a%0Aforged=1/tags/list",
                              headers={"User-Agent": 'tool "quoted" 1.0'})
        assert answered.status_code == 400
        request_id = answered.headers["X-Request-Id"]
        deadline = time.monotonic() + 30
        while request_id not in running.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
    lines = running.logs().splitlines()
    [line] = [line for line in lines if request_id in line]
    assert line.startswith("time=")
    assert " http.request.remoteaddr=127.0.0.1 " in line
    assert " http.response.status=400 " in line
    assert ' http.request.useragent="tool \\"quoted\\" 1.0"' in line
    assert f"http.request.id={request_id}" in line
    assert re.search(r" http\.response\.duration=[0-9.]+(ns|µs|ms|s)( |$)", line), line
    assert not any(line.startswith("forged") for line in lines)


def test_every_line_is_json_with_the_json_formatter(tmp_path: Path, storage: Storage) -> None:
    config = {"log": {"formatter": "json", "level": "debug"}, "http": {"workers": 2},
              "extras": {"colour": "blue"}}  # an unknown key: warned about, as JSON too
    with run_registry(tmp_path, config=config, storage=storage) as running, \
            running.client() as client:
        assert client.get("/v2/").status_code == 200
        client.get("/v2/_catalog")
    output = running.logs()
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, output
    for line in lines:
        entry = json.loads(line)  # fails on any line that is not JSON
        assert {"time", "level", "msg"} <= entry.keys(), line
    messages = [json.loads(line)["msg"] for line in lines]
    assert any(message.startswith("dockyard ") and "serving http://" in message
               for message in messages), messages
    # uvicorn's own lines (its start and stop messages at debug level) are there, as JSON.
    assert any("Started server process" in message for message in messages), messages
    banner = next(json.loads(line) for line in lines if "serving http://" in line)
    if storage.bucket is None:
        assert banner["storage"] == str(running.root)
    else:  # the bucket and key prefix, and where the index is
        assert banner["storage"].startswith(f"s3://{storage.bucket.bucket}/"), banner
        index = (f"postgresql://{storage.postgres.user}@{storage.postgres.host}:"
                 f"{storage.postgres.port}/" if storage.postgres else str(running.root))
        assert f" (index in {index}" in banner["storage"], banner
    assert any("extras" in entry["msg"] and entry["level"] == "warning"
               for entry in map(json.loads, lines)), lines


@pytest.mark.filesystem_only(reason="about client addresses on a dual-stack socket, with a "
                             "config of its own; the store plays no part")
def test_ipv4_clients_of_a_dual_stack_socket_are_logged_as_ipv4(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"formatter": "json"}, "http": {"addr": f":{port}"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "store")}}}))
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "dockyard", "serve", str(config)],
                                   stdout=log_file, stderr=subprocess.STDOUT)
        try:
            running = RunningRegistry("dockyard", f"http://127.0.0.1:{port}",
                                      f"127.0.0.1:{port}", tmp_path / "store", config,
                                      process, log_path)
            wait_until_serving(running)
            answered = httpx.get(running.url + "/v2/", timeout=60)
            [entry] = access_entries(running, answered.headers["X-Request-Id"])
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert entry["http.request.remoteaddr"] == "127.0.0.1"
