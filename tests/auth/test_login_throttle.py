"""The failed-login throttle under parallel guesses: every guess is counted before its
password is checked, across worker processes, so parallel connections cannot get more
checks than the limit."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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
