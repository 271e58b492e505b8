"""The real client behind a reverse proxy: failed logins are throttled per client address
and account, where the client address is the one a trusted proxy (http.trustedproxies)
reports in X-Forwarded-For or Forwarded, and the socket's peer otherwise.

The clients here reach nginx from loopback addresses of their own (127.0.0.2, 127.0.0.3),
standing for machines behind it; nginx itself reaches the registry from 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.nginx import Proxy, run_nginx
from tests.support.oci import error_codes
from tests.support.server import RunningRegistry, require_tool, run_registry

LIMIT = 10  # failed logins a minute per client and account, by default
CI_JOB = "127.0.0.2"  # a CI job with an expired password
DEVELOPER = "127.0.0.3"  # someone else behind the same proxy


def login(url: str, user: str, password: str, source: str,
          headers: dict[str, str] | None = None) -> httpx.Response:
    """GET /v2/ with Basic credentials, from the loopback address `source`."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=60) as client:
        return client.get(url + "/v2/", auth=(user, password), headers=headers)


def json_log(running: RunningRegistry) -> list[dict[str, Any]]:
    return [json.loads(line) for line in running.logs().splitlines() if line.startswith("{")]


def logged_request(running: RunningRegistry, response: httpx.Response) -> dict[str, Any]:
    request_id = response.headers["X-Request-Id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [entry for entry in json_log(running)
                 if entry.get("http.request.id") == request_id]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}:\n{running.logs()}")


@pytest.fixture
def users(tmp_path: Path) -> Path:
    htpasswd = require_tool("htpasswd")
    path = tmp_path / "htpasswd"
    for number, (user, password) in enumerate([("ci", "current-secret"),
                                               ("alice", "wonderland"), ("bob", "builder")]):
        subprocess.run([htpasswd, "-Bb" + ("c" if number == 0 else ""), str(path), user,
                        password], check=True, capture_output=True)
    return path


def registry_behind_nginx(tmp_path: Path, users: Path, extra: dict[str, Any]
                          ) -> Iterator[tuple[RunningRegistry, Proxy]]:
    config = {"log": {"formatter": "json"}, "http": {"workers": 2},
              "auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)}}, **extra}
    with run_registry(tmp_path, config=config) as running, \
            run_nginx(tmp_path, running.host, tls=False) as proxy:
        yield running, proxy


@pytest.fixture
def untrusted(tmp_path: Path, users: Path) -> Iterator[tuple[RunningRegistry, Proxy]]:
    yield from registry_behind_nginx(tmp_path, users, {})


@pytest.fixture
def trusted(tmp_path: Path, users: Path) -> Iterator[tuple[RunningRegistry, Proxy]]:
    yield from registry_behind_nginx(tmp_path, users,
                                     {"http": {"workers": 2, "trustedproxies": ["127.0.0.1/32"]}})


def fail_until_throttled(url: str, source: str) -> None:
    statuses = [login(url, "ci", f"expired-{n}", source).status_code for n in range(LIMIT)]
    assert statuses == [401] * LIMIT
    throttled = login(url, "ci", "current-secret", source)
    assert throttled.status_code == 429
    assert error_codes(throttled) == ["TOOMANYREQUESTS"]


def test_one_failing_account_does_not_lock_others_out_of_a_proxy(
        untrusted: tuple[RunningRegistry, Proxy]) -> None:
    running, proxy = untrusted
    fail_until_throttled(proxy.url, CI_JOB)
    # Another account through the same proxy logs in: from the job's machine or another.
    assert login(proxy.url, "alice", "wonderland", CI_JOB).status_code == 200
    assert login(proxy.url, "bob", "builder", DEVELOPER).status_code == 200
    # Without trust every client shares the proxy's address: the account stays blocked
    # through it, and the access log names the proxy as the client.
    blocked = login(proxy.url, "ci", "current-secret", DEVELOPER)
    assert blocked.status_code == 429
    assert logged_request(running, blocked)["http.request.remoteaddr"] == "127.0.0.1"


def test_without_trust_a_forwarded_address_is_ignored(
        untrusted: tuple[RunningRegistry, Proxy]) -> None:
    running, _ = untrusted
    fail_until_throttled(running.url, CI_JOB)
    for headers in ({"X-Forwarded-For": "198.51.100.7"}, {"Forwarded": "for=198.51.100.8"},
                    {"X-Real-IP": "198.51.100.9"}):
        spoofed = login(running.url, "ci", "current-secret", CI_JOB, headers)
        assert spoofed.status_code == 429, headers
        assert logged_request(running, spoofed)["http.request.remoteaddr"] == CI_JOB


def test_behind_a_trusted_proxy_the_throttle_applies_per_real_client(
        trusted: tuple[RunningRegistry, Proxy]) -> None:
    running, proxy = trusted
    fail_until_throttled(proxy.url, CI_JOB)
    # The same account from another machine behind the proxy is not blocked.
    elsewhere = login(proxy.url, "ci", "current-secret", DEVELOPER)
    assert elsewhere.status_code == 200
    entry = logged_request(running, elsewhere)
    assert entry["http.request.remoteaddr"] == DEVELOPER
    assert entry["auth.user.name"] == "ci"
    # The blocked client cannot claim another address: nginx appends the real one, and
    # the rightmost address the registry does not trust is the client.
    spoofed = login(proxy.url, "ci", "current-secret", CI_JOB,
                    {"X-Forwarded-For": "198.51.100.7"})
    assert spoofed.status_code == 429
    assert logged_request(running, spoofed)["http.request.remoteaddr"] == CI_JOB
    # Nor by going around the proxy: its own address is not a trusted proxy.
    direct = login(running.url, "ci", "current-secret", CI_JOB,
                   {"X-Forwarded-For": "198.51.100.7", "Forwarded": "for=198.51.100.8"})
    assert direct.status_code == 429
    # The block is logged once, naming the account, the client and the count.
    blocks = [entry for entry in json_log(running) if "throttled" in entry["msg"]]
    assert len(blocks) == 1, blocks
    assert blocks[0]["account"] == "ci"
    assert blocks[0]["client"] == CI_JOB
    assert blocks[0]["failures"] == LIMIT
    assert blocks[0]["level"] == "warning"


@pytest.mark.parametrize("headers,client", [
    ({"X-Forwarded-For": "203.0.113.9, 10.0.0.1"}, "203.0.113.9"),
    ({"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}, "203.0.113.9"),
    ({"X-Forwarded-For": "203.0.113.9:51234"}, "203.0.113.9"),
    ({"X-Forwarded-For": "[2001:db8::7]:443"}, "2001:db8::7"),
    ({"Forwarded": 'for="[2001:db8::8]:4711";proto=https, for=10.0.0.2'}, "2001:db8::8"),
    ({"Forwarded": "for=203.0.113.10;by=10.0.0.1"}, "203.0.113.10"),
    # Garbage from a trusted hop: the nearest address known is the client.
    ({"X-Forwarded-For": "not-an-address, 10.0.0.3"}, "10.0.0.3"),
    ({"X-Forwarded-For": "unknown"}, "127.0.0.1"),
    ({"X-Forwarded-For": ""}, "127.0.0.1"),
])
def test_forwarded_addresses_from_a_trusted_proxy(tmp_path: Path, headers: dict[str, str],
                                                  client: str) -> None:
    config = {"log": {"formatter": "json"}, "http": {
        "workers": 1, "trustedproxies": ["127.0.0.1", "10.0.0.0/8"]}}
    with run_registry(tmp_path, config=config) as running:
        answered = httpx.get(running.url + "/v2/", headers=headers, timeout=60)
        assert answered.status_code == 200
        assert logged_request(running, answered)["http.request.remoteaddr"] == client


def test_trusted_proxies_from_the_environment(tmp_path: Path) -> None:
    env = {"REGISTRY_HTTP_TRUSTEDPROXIES": "10.0.0.0/8, 127.0.0.1"}
    with run_registry(tmp_path, config={"log": {"formatter": "json"}}, env=env) as running:
        answered = httpx.get(running.url + "/v2/", timeout=60,
                             headers={"X-Forwarded-For": "203.0.113.5, 10.1.1.1"})
        assert logged_request(running, answered)["http.request.remoteaddr"] == "203.0.113.5"


@pytest.mark.parametrize("value", [["nonsense"], ["10.0.0.0/33"], "127.0.0.1/32, bad",
                                   {"a": 1}])
def test_invalid_trusted_proxies_name_the_key(tmp_path: Path, value: object) -> None:
    config = {"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path)}},
              "http": {"trustedproxies": value}}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "dockyard", "serve", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "http.trustedproxies" in result.stderr
    assert "Traceback" not in result.stderr
