"""The failed-login throttle under parallel guesses: every guess is counted before its
password is checked, across worker processes, so parallel connections cannot get more
checks than the limit."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.oci import error_codes
from tests.support.server import RunningRegistry, require_tool, run_registry

LIMIT = 10  # failed logins a minute per client and account


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[RunningRegistry]:
    htpasswd = require_tool("htpasswd")
    users = tmp_path / "htpasswd"
    subprocess.run([htpasswd, "-Bbc", str(users), "alice", "wonderland"], check=True,
                   capture_output=True)
    subprocess.run([htpasswd, "-Bb", str(users), "bob", "builder"], check=True,
                   capture_output=True)
    config = {"http": {"workers": 2},
              "auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)}}}
    with run_registry(tmp_path, config=config) as running:
        yield running


async def parallel_logins(url: str, credentials: list[tuple[str, str]]) -> list[int]:
    """Each login on a connection of its own, all sent at once."""
    limits = httpx.Limits(max_connections=len(credentials), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        responses = await asyncio.gather(*(client.get("/v2/", auth=auth)
                                           for auth in credentials))
    return [response.status_code for response in responses]


def test_parallel_guesses_get_no_more_checks_than_the_limit(two_workers: RunningRegistry
                                                            ) -> None:
    guesses = [("alice", f"guess-{n}") for n in range(300)]
    statuses = Counter(asyncio.run(parallel_logins(two_workers.url, guesses)))
    # A 401 is a password that was really checked; the rest were refused unchecked.
    assert statuses[401] <= LIMIT, statuses
    assert statuses[429] == 300 - statuses[401], statuses
    throttled = httpx.get(two_workers.url + "/v2/", auth=("alice", "wonderland"))
    assert throttled.status_code == 429
    assert error_codes(throttled) == ["TOOMANYREQUESTS"]
    assert throttled.headers["Retry-After"] == "60"
    # Another account from the same address is not locked out by alice's guesser.
    assert httpx.get(two_workers.url + "/v2/", auth=("bob", "builder")).status_code == 200


def test_parallel_first_logins_with_the_right_password_all_pass(two_workers: RunningRegistry
                                                                ) -> None:
    statuses = asyncio.run(parallel_logins(two_workers.url, [("alice", "wonderland")] * 60))
    assert statuses == [200] * 60
    # None of them counted as a failure: the limit is all there for mistakes.
    mistakes = [httpx.get(two_workers.url + "/v2/", auth=("bob", f"typo-{n}")).status_code
                for n in range(LIMIT)]
    assert mistakes == [401] * LIMIT
    assert httpx.get(two_workers.url + "/v2/", auth=("bob", "typo")).status_code == 429


def throttled_registry(tmp_path: Path, throttle: dict[str, object]
                       ) -> contextlib.AbstractContextManager[RunningRegistry]:
    htpasswd = require_tool("htpasswd")
    users = tmp_path / "htpasswd"
    subprocess.run([htpasswd, "-Bbc", str(users), "alice", "wonderland"], check=True,
                   capture_output=True)
    subprocess.run([htpasswd, "-Bb", str(users), "bob", "builder"], check=True,
                   capture_output=True)
    config = {"http": {"workers": 2},
              "auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)},
                       "throttle": throttle}}
    return run_registry(tmp_path, config=config)


def logins(url: str, user: str, passwords: list[str]) -> list[int]:
    return [httpx.get(url + "/v2/", auth=(user, password), timeout=60).status_code
            for password in passwords]


def test_throttle_limits_are_configurable(tmp_path: Path) -> None:
    with throttled_registry(tmp_path, {"peraccount": 3, "perclient": 5}) as running:
        assert logins(running.url, "alice", [f"guess-{n}" for n in range(4)]) == \
            [401, 401, 401, 429]
        # Two more failures on another account reach the limit for the client as a whole.
        assert logins(running.url, "bob", ["typo-1", "typo-2", "builder"]) == [401, 401, 429]


def test_failures_are_forgotten_after_the_window(tmp_path: Path) -> None:
    with throttled_registry(tmp_path, {"peraccount": 2, "window": "3s"}) as running:
        assert logins(running.url, "alice", ["a", "b", "wonderland"]) == [401, 401, 429]
        time.sleep(5)  # well past the window
        assert logins(running.url, "alice", ["wonderland"]) == [200]


def test_throttle_can_be_switched_off(tmp_path: Path) -> None:
    with throttled_registry(tmp_path, {"enabled": False}) as running:
        guesses = [f"guess-{n}" for n in range(3 * LIMIT)]
        assert logins(running.url, "alice", guesses) == [401] * len(guesses)
        assert logins(running.url, "alice", ["wonderland"]) == [200]


@pytest.mark.parametrize("throttle,key", [
    ({"peraccount": 0}, "auth.throttle.peraccount"),
    ({"perclient": "many"}, "auth.throttle.perclient"),
    ({"window": "soon"}, "auth.throttle.window"),
    ({"window": "0s"}, "auth.throttle.window"),
    ({"enabled": "maybe"}, "auth.throttle.enabled"),
    ({"limit": 5}, "auth.throttle.limit"),
    ("on", "auth.throttle"),
])
def test_invalid_throttle_settings_name_the_key(tmp_path: Path, throttle: object,
                                                key: str) -> None:
    config = {"version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path)}},
              "auth": {"throttle": throttle}}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "dockyard", "serve", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert key in result.stderr
    assert "Traceback" not in result.stderr


def test_a_blocked_client_cannot_test_passwords_others_just_used(tmp_path: Path) -> None:
    """Credentials verified for one client are remembered for that client only: a blocked
    guesser elsewhere gets no answer from them, right password or not."""
    htpasswd = require_tool("htpasswd")
    users = tmp_path / "htpasswd"
    subprocess.run([htpasswd, "-Bbc", str(users), "alice", "wonderland"], check=True,
                   capture_output=True)
    config = {"http": {"workers": 1},
              "auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)}}}

    def login_from(source: str, password: str) -> int:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=60) as client:
            return client.get(running.url + "/v2/", auth=("alice", password)).status_code

    with run_registry(tmp_path, config=config) as running:
        assert login_from("127.0.0.2", "wonderland") == 200  # alice, at her desk
        guesses = [login_from("127.0.0.3", f"guess-{n}") for n in range(LIMIT)]
        assert guesses == [401] * LIMIT
        assert [login_from("127.0.0.3", "wonderland") for _ in range(3)] == [429] * 3
        assert login_from("127.0.0.2", "wonderland") == 200
